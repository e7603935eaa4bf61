//! Configuration: one clap struct, every setting a flag with an environment variable.
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::state::Settings;
use crate::store::PoolConfig;
use crate::telemetry::LogFormat;

/// A W&B Weave-compatible trace server on Postgres.
#[derive(Debug, Parser)]
#[command(name = "weave-trace-server", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub database: DatabaseConfig,
    #[command(flatten)]
    pub serve: ServeConfig,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default). Migrations run first.
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; its secret is printed alone on the last line of stdout, once.
    Create {
        /// Entity the key may access (repeat for several).
        #[arg(long, required_unless_present = "admin")]
        entity: Vec<String>,
        /// User written as `wb_user_id` on the calls the key starts.
        #[arg(long)]
        user: String,
        /// Grant access to every entity.
        #[arg(long)]
        admin: bool,
    },
    /// List keys (ids, users, scopes; never secrets).
    List,
    /// Revoke a key by id; it stops working at once.
    Revoke {
        /// The key id shown by `keys list` or `keys create`.
        id: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseConfig {
    /// Postgres connection URL.
    #[arg(
        long = "database-url",
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres",
        global = true
    )]
    pub url: String,
    /// Largest number of pooled database connections.
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 16, global = true)]
    pub max_connections: u32,
    /// Seconds to wait for a pooled connection before answering 503.
    #[arg(long, env = "DB_ACQUIRE_TIMEOUT_SECS", default_value_t = 5, global = true)]
    pub acquire_timeout_secs: u64,
    /// Seconds a single SQL statement may run before it is cancelled (503).
    #[arg(long, env = "DB_STATEMENT_TIMEOUT_SECS", default_value_t = 30, global = true)]
    pub statement_timeout_secs: u64,
}

#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address to listen on.
    #[arg(long, env = "BIND", default_value = "127.0.0.1:6345", global = true)]
    pub bind: String,
    /// Largest request body in bytes (larger: 413).
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 32 * 1024 * 1024, global = true)]
    pub max_body_bytes: usize,
    /// Longest `/calls/stats` window, in days.
    #[arg(long, env = "STATS_MAX_RANGE_DAYS", default_value_t = 31, global = true)]
    pub stats_max_range_days: i64,
    /// Origins allowed to call the API from a browser (comma-separated; none by default).
    #[arg(long, env = "CORS_ORIGINS", value_delimiter = ',', global = true)]
    pub cors_origins: Vec<String>,
    /// Seconds after which a request is abandoned with 503.
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = 60, global = true)]
    pub request_timeout_secs: u64,
    /// The server's public URL, as users reach it (default: `http://` and `BIND`).
    #[arg(long, env = "PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// Serve `GET /metrics` on this address instead of the API's port (e.g. `127.0.0.1:9090`).
    #[arg(long, env = "METRICS_BIND", global = true)]
    pub metrics_bind: Option<String>,
    /// Seconds between background rebuilds of dirty 15-minute rollups (0: only on read).
    #[arg(long, env = "ROLLUP_REFRESH_SECS", default_value_t = 5, global = true)]
    pub rollup_refresh_secs: u64,
    /// An admin key to install when no key exists yet (instead of generating and printing one).
    #[arg(long, env = "BOOTSTRAP_API_KEY", hide_env_values = true, global = true)]
    pub bootstrap_api_key: Option<String>,
}

impl DatabaseConfig {
    /// The pool settings these flags describe.
    pub fn pool(&self) -> PoolConfig {
        PoolConfig {
            url: self.url.clone(),
            max_connections: self.max_connections,
            acquire_timeout: Duration::from_secs(self.acquire_timeout_secs),
            statement_timeout: Duration::from_secs(self.statement_timeout_secs),
        }
    }
}

impl ServeConfig {
    pub fn settings(&self) -> Settings {
        Settings {
            body_limit: self.max_body_bytes,
            max_stats_range: chrono::Duration::days(self.stats_max_range_days),
            cors_origins: self.cors_origins.iter().filter(|o| !o.is_empty()).cloned().collect(),
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            public_url: self
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", self.bind))
                .trim_end_matches('/')
                .to_string(),
            public_metrics: self.metrics_bind.is_none(),
        }
    }
}
