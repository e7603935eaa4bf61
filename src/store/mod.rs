//! Postgres access. Every SQL statement of the server is in this module, as free functions
//! taking a pool or a transaction, so another backend could replace it without touching the
//! routes or the pure logic.
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use crate::config::DatabaseConfig;

/// Calls: ingestion, reads, deletes, counts.
pub mod calls;
/// `CallsFilter` → SQL conditions.
pub mod filter;
/// API keys.
pub mod keys;
/// The price table.
pub mod prices;
/// Query expressions → SQL.
pub mod query;
/// 15-minute rollups: refresh and read.
pub mod rollups;
/// The rows `/calls/stats` aggregates.
pub mod stats;
/// Calls and usage rows for the usage rollups.
pub mod usage;

/// The embedded migrations, run at start-up and by `#[sqlx::test]`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A pool whose acquire and statement timeouts turn a dead or stuck database into a 503.
pub async fn connect(config: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = config.url.parse()?;
    let options = options
        .application_name("weave-trace-server")
        .options([("statement_timeout", format!("{}s", config.statement_timeout_secs))]);
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(Duration::from_secs(config.acquire_timeout_secs))
        .connect_with(options)
        .await
}

/// One round trip to the database, for health checks.
pub async fn ping(db: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("select 1").execute(db).await.map(|_| ())
}
