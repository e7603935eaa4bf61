//! weave-trace-server: a W&B Weave-compatible trace server on Postgres.
//!
//! The crate is three layers that only import downwards: `routes` (HTTP, DTOs, OpenAPI) calls
//! `store` (all SQL) and `domain` / `stats` (pure logic, no axum, no sqlx).
#![forbid(unsafe_code)]

/// Command-line and environment configuration.
pub mod config;
/// Validated domain types shared by every layer: datetimes, project ids, calls, usage.
pub mod domain;
/// The API error type and its JSON bodies.
pub mod error;
/// API keys: generation and hashing.
pub mod keys;
/// Prometheus metrics.
pub mod metrics;
/// HTTP routes, extractors and the OpenAPI document.
pub mod routes;
/// `/calls/stats` logic: buckets, granularity, aggregations (pure).
pub mod stats;
/// Postgres access: every SQL statement lives here.
pub mod store;
/// Logging set-up.
pub mod telemetry;

use std::sync::Arc;
use std::time::Duration;

pub use routes::app;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: sqlx::PgPool,
    pub settings: Settings,
    pub metrics: Arc<metrics::Metrics>,
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
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            body_limit: 32 * 1024 * 1024,
            max_stats_range: chrono::Duration::days(31),
            cors_origins: Vec::new(),
            request_timeout: Duration::from_secs(60),
        }
    }
}

impl AppState {
    pub fn new(db: sqlx::PgPool, settings: Settings) -> Self {
        Self { db, settings, metrics: Arc::default() }
    }
}
