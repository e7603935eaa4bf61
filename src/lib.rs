//! weave-trace-server: a W&B Weave-compatible trace server on Postgres.
//!
//! The crate is three layers that only import downwards: `routes` (HTTP, DTOs, OpenAPI) calls
//! `store` (all SQL) and `domain` / `stats` (pure logic, no axum, no sqlx).
#![forbid(unsafe_code)]

/// Command-line and environment configuration.
pub mod config;
/// The example project of `weave-trace-server demo`.
pub mod demo;
/// Validated domain types shared by every layer: datetimes, project ids, calls, usage.
pub mod domain;
/// The API error type and its JSON bodies.
pub mod error;
/// API keys: generation and hashing.
pub mod keys;
/// HTTP routes, extractors and the OpenAPI document.
pub mod routes;
/// The HTTP server loop, with connection limits.
pub mod serve;
/// What every request can reach: the pool, settings, metrics.
pub mod state;
/// `/calls/stats` logic: buckets, granularity, aggregations (pure).
pub mod stats;
/// Postgres access: every SQL statement lives here.
pub mod store;
/// Logs and Prometheus metrics.
pub mod telemetry;

pub use routes::app;
pub use state::{AppState, Settings};
