//! Postgres access. Every SQL statement of the server is in this module, as free functions
//! taking a pool or a transaction, so another backend could replace it without touching the
//! routes or the pure logic.
use std::time::Duration;

use futures_util::TryStreamExt;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{FromRow, PgPool, Postgres, QueryBuilder};
use tokio::sync::mpsc;

use crate::domain::usage::{Counters, UsageRow};
use filter::Selection;

/// What the call rollups count of a call `c`, as a rebuild reads it (`runs::RUN_COLUMNS`) and a
/// write returns it (`slots::WrittenCall`): one definition, so appended and rebuilt rows agree.
macro_rules! call_facts {
    () => {
        "c.started_at, c.latency_ms, c.exception is not null as error, c.parent_id is null as is_root, c.op_name"
    };
}

/// Calls: ingestion, reads, deletes, counts.
pub mod calls;
/// Query expressions → SQL.
pub mod expr;
/// Feedback on calls.
pub mod feedback;
/// Files, by digest.
pub mod files;
/// `CallsFilter` → SQL conditions.
pub mod filter;
/// API keys.
pub mod keys;
/// Versioned objects and ops.
pub mod objects;
/// The integer encoding of packed rollup columns.
mod packed;
/// The price table.
pub mod prices;
/// The project list.
pub mod projects;
/// 15-minute rollups of runs (`/api/v1/runs/stats`): rebuild and read.
pub mod run_slots;
/// Calls read as LangSmith runs (`/api/v1/runs/stats`).
pub mod runs;
/// 15-minute rollups: refresh and read.
pub mod slots;
/// The rows `/calls/stats` aggregates.
pub mod stats;
/// Tables of rows.
pub mod tables;
/// Calls and usage rows for the usage rollups.
pub mod usage;

/// The embedded migrations, run at start-up and by `#[sqlx::test]`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Where the database is and how long to wait for it.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub url: String,
    pub max_connections: u32,
    /// Wait for a pooled connection this long, then fail (503).
    pub acquire_timeout: Duration,
    /// Cancel a statement running longer than this (503).
    pub statement_timeout: Duration,
}

/// A pool whose acquire and statement timeouts turn a dead or stuck database into a 503.
pub async fn connect(config: &PoolConfig) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        .connect_with(connect_options(config)?)
        .await
}

fn connect_options(config: &PoolConfig) -> Result<PgConnectOptions, sqlx::Error> {
    let options: PgConnectOptions = config.url.parse()?;
    Ok(options.application_name("weave-trace-server").options([
        ("statement_timeout", format!("{}ms", config.statement_timeout.as_millis())),
        // No JIT compilation: the planner costs the rollup rebuild (a lateral read per slot)
        // far above its real tens of milliseconds, and compiling it took a quarter of each
        // rebuild (91 of 382 ms at 1M calls); no request of ours runs long enough to repay it.
        ("jit", "off".to_string()),
    ]))
}

/// Connect and migrate, or say in one line what is wrong and what to change (a pool alone would
/// only report that it timed out).
pub async fn open(config: &PoolConfig) -> Result<PgPool, String> {
    let example = "postgres://user:password@127.0.0.1:5432/database";
    if !(config.url.starts_with("postgres://") || config.url.starts_with("postgresql://")) {
        return Err(format!("DATABASE_URL must be a postgres:// URL such as {example}"));
    }
    let options =
        connect_options(config).map_err(|e| format!("DATABASE_URL is not a valid URL ({e}); write it as {example}"))?;
    let target = format!(
        "{}:{} (database {:?}, user {:?})",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or(options.get_username()),
        options.get_username()
    );
    let first =
        tokio::time::timeout(config.acquire_timeout, <sqlx::PgConnection as sqlx::Connection>::connect_with(&options))
            .await;
    match first {
        Err(_) => {
            return Err(format!(
                "cannot reach the database at {target}: no answer within {} s; is Postgres running there? (set DATABASE_URL)",
                config.acquire_timeout.as_secs()
            ))
        }
        Ok(Err(error)) => return Err(format!("cannot connect to the database at {target}: {}", why(&error))),
        Ok(Ok(connection)) => {
            let _ = sqlx::Connection::close(connection).await;
        }
    }
    let pool = connect(config).await.map_err(|e| format!("cannot connect to the database at {target}: {}", why(&e)))?;
    MIGRATOR.run(&pool).await.map_err(|e| format!("the database migrations failed at {target}: {e}"))?;
    Ok(pool)
}

/// A connection failure in words, with what to do about it.
fn why(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused; is Postgres running and listening there? (set DATABASE_URL)".into()
        }
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("3D000") => format!("{}; create it (createdb) or name another in DATABASE_URL", db.message()),
            Some("28P01" | "28000") => format!("{}; check the user and password in DATABASE_URL", db.message()),
            _ => db.message().to_string(),
        },
        other => format!("{other} (check DATABASE_URL)"),
    }
}

/// A pool of one connection, opened when first used: `/health` answers from it, so a busy
/// main pool does not fail the health check.
pub fn health_pool(config: &PoolConfig) -> PgPool {
    let options = connect_options(config).expect("checked when the main pool opened");
    PgPoolOptions::new().max_connections(1).acquire_timeout(config.acquire_timeout).connect_lazy_with(options)
}

/// The visible calls of a project (started, not deleted) on the calls table aliased `c`, with
/// the project as `$1`: for statements written out whole.
pub(crate) const VISIBLE: &str = "c.project_id = $1 and c.started_at is not null and c.deleted_at is null";

/// `<select> from calls c where <visible> <selection>`: the visible calls of `project` that
/// `selection` picks, for statements built piece by piece.
pub(crate) fn visible_calls<'a>(
    select: impl Into<String>,
    project: impl sqlx::Encode<'a, Postgres> + sqlx::Type<Postgres> + Send + 'a,
    selection: &Selection,
) -> QueryBuilder<'a, Postgres> {
    let mut qb = QueryBuilder::new(select);
    qb.push(" from calls c where c.project_id = ").push_bind(project);
    qb.push(" and c.started_at is not null and c.deleted_at is null");
    filter::push_conditions(&mut qb, "c", selection);
    qb
}

/// Feed every row of `qb` to `each`, as rows arrive.
async fn for_each<'c, T>(
    mut qb: QueryBuilder<'_, Postgres>,
    db: impl sqlx::Executor<'c, Database = Postgres>,
    mut each: impl FnMut(T),
) -> Result<(), sqlx::Error>
where
    T: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    let mut rows = qb.build_query_as::<T>().fetch(db);
    while let Some(row) = rows.try_next().await? {
        each(row);
    }
    Ok(())
}

/// Run `qb` on a task of its own and hand its rows over a small channel, so a response can
/// stream them after its handler returned, with memory flat in the result size. The task
/// stops at the first error (sent) or when the receiver is dropped.
pub(crate) fn spawn_rows<T>(
    db: PgPool,
    mut qb: QueryBuilder<'static, Postgres>,
) -> mpsc::Receiver<Result<T, sqlx::Error>>
where
    T: for<'r> FromRow<'r, PgRow> + Send + Unpin + 'static,
{
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut rows = qb.build_query_as::<T>().fetch(&db);
        loop {
            let item = match rows.try_next().await {
                Ok(Some(row)) => Ok(row),
                Ok(None) => break,
                Err(error) => Err(error),
            };
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
    });
    rx
}

impl<'r> FromRow<'r, PgRow> for Counters {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        Ok(Counters {
            requests: row.try_get("requests")?,
            input_tokens: row.try_get("input_tokens")?,
            output_tokens: row.try_get("output_tokens")?,
            total_tokens: row.try_get("total_tokens")?,
            cache_read_input_tokens: row.try_get("cache_read_input_tokens")?,
            cache_creation_input_tokens: row.try_get("cache_creation_input_tokens")?,
        })
    }
}

impl<'r> FromRow<'r, PgRow> for UsageRow {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        Ok(UsageRow { model: row.try_get("model")?, counters: Counters::from_row(row)? })
    }
}

/// The columns of a usage row on `call_usage` aliased `u`.
pub(crate) const USAGE_ROW_COLUMNS: &str = "u.model, u.requests, u.input_tokens, u.output_tokens, u.total_tokens, \
     u.cache_read_input_tokens, u.cache_creation_input_tokens";

/// One round trip to the database, for health checks.
pub async fn ping(db: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("select 1").execute(db).await.map(|_| ())
}
