//! The state every handler shares: the database pool and the runtime settings.
use std::time::Duration;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: sqlx::PgPool,
    pub settings: Settings,
}

impl AppState {
    pub fn new(db: sqlx::PgPool, settings: Settings) -> Self {
        crate::telemetry::metrics_handle();
        Self { db, settings }
    }
}

/// Runtime settings the routes need (a subset of the serve configuration).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Longest `/calls/stats` window.
    pub max_stats_range: chrono::Duration,
    /// Origins allowed by CORS (none by default).
    pub cors_origins: Vec<String>,
    /// Time after which a request is answered 503.
    pub request_timeout: Duration,
    /// The server's public URL (GraphQL `serverInfo.frontendHost`; the dashboard's links).
    pub public_url: String,
    /// Serve `GET /metrics` on the API's port (off when metrics have a listener of their own).
    pub public_metrics: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            body_limit: 32 * 1024 * 1024,
            max_stats_range: chrono::Duration::days(31),
            cors_origins: Vec::new(),
            request_timeout: Duration::from_secs(60),
            public_url: "http://127.0.0.1:6345".into(),
            public_metrics: true,
        }
    }
}
