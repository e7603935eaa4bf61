//! Configuration: one clap struct, every setting a flag with an environment variable. Values
//! are checked here, before anything starts, so a typo is one clear line at start-up.
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::serve::ConnectionLimits;
use crate::state::{Limits, Settings};
use crate::store::PoolConfig;
use crate::telemetry::LogFormat;

/// A W&B Weave-compatible trace server on Postgres.
#[derive(Debug, Parser)]
#[command(name = "weave-trace-server", version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// Without a subcommand, the server runs with these settings.
    #[command(flatten)]
    pub serve: ServeConfig,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default). Migrations run first.
    Serve(ServeConfig),
    /// Apply the database migrations and exit.
    Migrate,
    /// Load an example project (nested traces, several models, errors, a DST day) for trying the
    /// README's examples and the dashboard.
    Demo {
        /// The project to fill (`entity/project`); its calls are replaced.
        #[arg(long, default_value = "demo/app")]
        project: String,
    },
    /// Exit 0 when the server at `--address` answers `GET /health` with 200 (for container
    /// health checks: no curl needed).
    Healthcheck {
        /// host:port of the server.
        #[arg(long, default_value = "127.0.0.1:6345")]
        address: String,
    },
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
    /// Postgres connection URL (`postgres://user:password@host:port/database`).
    #[arg(
        long = "database-url",
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres",
        hide_env_values = true,
        hide_default_value = true,
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
    #[arg(long, env = "BIND", default_value = "127.0.0.1:6345")]
    pub bind: String,
    /// The server's public URL, as users reach it (default: `http://` and `BIND`).
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Largest request body in bytes (larger: 413).
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Longest `/calls/stats` window, in days.
    #[arg(long, env = "STATS_MAX_RANGE_DAYS", default_value_t = 31)]
    pub stats_max_range_days: i64,
    /// Most values one `/calls/stats` answer may hold (buckets × keys × models; larger: 413).
    #[arg(long, env = "STATS_MAX_VALUES", default_value_t = 2_000_000)]
    pub stats_max_values: usize,
    /// Most percentiles one metric of `/calls/stats` may ask for (more: 422).
    #[arg(long, env = "STATS_MAX_PERCENTILES", default_value_t = 20)]
    pub stats_max_percentiles: usize,
    /// Origins allowed to call the API from a browser (comma-separated `scheme://host[:port]`;
    /// none by default).
    #[arg(long, env = "CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Seconds after which a request is abandoned with 503.
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = 60)]
    pub request_timeout_secs: u64,
    /// Heavy requests (stats, usage, stream queries) served at once; more wait briefly, then 503.
    #[arg(long, env = "MAX_HEAVY_REQUESTS", default_value_t = 8)]
    pub max_heavy_requests: usize,
    /// Heavy requests one API key may have running at once (more: 503 with Retry-After).
    #[arg(long, env = "MAX_HEAVY_REQUESTS_PER_KEY", default_value_t = 4)]
    pub max_heavy_requests_per_key: usize,
    /// Call writes (`/call/upsert_batch`, `/call/start`, `/call/end`, and the v2 forms) run at once;
    /// more queue in the server until one finishes. Default: 4 per CPU core; 0: no limit.
    #[arg(long, env = "MAX_WRITE_TRANSACTIONS")]
    pub max_write_transactions: Option<usize>,
    /// Client connections served at once (more wait in the listen backlog).
    #[arg(long, env = "MAX_CLIENT_CONNECTIONS", default_value_t = 1024)]
    pub max_client_connections: usize,
    /// Seconds a client has to send a request's headers; also how long an idle keep-alive
    /// connection stays open.
    #[arg(long, env = "HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,
    /// Seconds between background rebuilds of dirty 15-minute rollups (0: only on read).
    #[arg(long, env = "ROLLUP_REFRESH_SECS", default_value_t = 5)]
    pub rollup_refresh_secs: u64,
    /// An admin key to install when no key exists yet (instead of generating and printing one).
    #[arg(long, env = "BOOTSTRAP_API_KEY", hide_env_values = true)]
    pub bootstrap_api_key: Option<String>,
    /// Serve `GET /metrics` on this address instead of the API's port (e.g. `127.0.0.1:9090`).
    #[arg(long, env = "METRICS_BIND")]
    pub metrics_bind: Option<String>,
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
    /// The runtime settings, or the one line that says which setting is wrong and how.
    pub fn settings(&self) -> Result<Settings, String> {
        let public_url = self.public_url.clone().unwrap_or_else(|| format!("http://{}", self.bind));
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(format!("PUBLIC_URL must start with http:// or https:// (got {public_url:?})"));
        }
        Ok(Settings {
            body_limit: self.max_body_bytes,
            max_stats_range: chrono::Duration::days(self.stats_max_range_days),
            cors_origins: cors_origins(&self.cors_origins)?,
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            public_url: public_url.trim_end_matches('/').to_string(),
            public_metrics: self.metrics_bind.is_none(),
            limits: Limits {
                stats_max_values: self.stats_max_values,
                stats_max_percentiles: self.stats_max_percentiles,
                heavy_requests: self.max_heavy_requests.max(1),
                heavy_requests_per_key: self.max_heavy_requests_per_key.max(1),
                write_transactions: self.max_write_transactions.unwrap_or_else(Limits::write_transactions_per_cores),
            },
        })
    }

    /// The connection limits.
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: self.max_client_connections.max(1),
            header_timeout: Duration::from_secs(self.header_timeout_secs.max(1)),
            ..ConnectionLimits::default()
        }
    }
}

/// Origins as CORS compares them: `scheme://host[:port]`, no path, no wildcard (the API takes
/// credentials, and browsers refuse credentials with `*`).
fn cors_origins(origins: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for origin in origins.iter().map(|o| o.trim()).filter(|o| !o.is_empty()) {
        let fix = "list origins like https://ui.example.com (comma-separated)";
        if origin == "*" {
            return Err(format!("CORS_ORIGINS=* is not allowed: the API takes credentials; {fix}"));
        }
        let rest = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
        let valid = rest
            .is_some_and(|host| !host.is_empty() && !host.contains('/') && host.bytes().all(|b| b.is_ascii_graphic()));
        if !valid {
            return Err(format!("CORS_ORIGINS has {origin:?}, which is not an origin; {fix}"));
        }
        out.push(origin.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_and_host_and_a_wildcard_is_refused() {
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            cors_origins(&list(&["https://a.example", " http://b:8080 ", ""])).unwrap(),
            ["https://a.example", "http://b:8080"]
        );
        assert!(cors_origins(&list(&["*"])).unwrap_err().contains("CORS_ORIGINS=*"));
        for bad in ["a.example", "https://a.example/path", "ftp://a", "https://"] {
            assert!(cors_origins(&list(&[bad])).is_err(), "{bad}");
        }
    }
}
