//! SQL for the usage endpoints: the selected calls' parent links and their own usage.
use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool};

use super::filter::Selection;
use super::{visible_calls, VISIBLE};
use crate::domain::usage::UsageRows;

/// What the rollup needs of a call.
#[derive(Debug, sqlx::FromRow)]
pub struct CallLink {
    pub id: String,
    pub parent_id: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// The call's own usage, read from the stored `summary.usage` its usage rows were made
    /// from: with the call, rather than as those rows, which would cost an index probe per call
    /// (10,000 probes, ~27 ms, for the largest trace the benchmark asks about).
    #[sqlx(json)]
    pub usage: UsageRows,
}

/// The columns of [`CallLink`], from `calls c`.
const CALL_LINK_COLUMNS: &str = "c.id, c.parent_id, c.started_at, c.ended_at, coalesce(c.summary -> 'usage', 'null') as usage";

/// The first `limit` visible calls matching `filter` in the default order (start, then id in
/// byte order), in no particular order.
///
/// Most selections are whole traces within the limit, so the calls are first read unordered,
/// one more than the limit: if that many match, they are read again, sorted. A 10,000-call
/// trace's sort took 6 of the query's 12 ms.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn select_calls(
    db: &PgPool,
    project: &str,
    selection: &Selection,
    limit: i64,
) -> Result<Vec<CallLink>, sqlx::Error> {
    let mut qb = visible_calls(format!("select {CALL_LINK_COLUMNS}"), project, selection);
    qb.push(" limit ").push_bind(limit.saturating_add(1));
    let calls: Vec<CallLink> = qb.build_query_as().fetch_all(db).await?;
    if i64::try_from(calls.len()).unwrap_or(i64::MAX) <= limit {
        return Ok(calls);
    }
    let mut qb = visible_calls(format!("select {CALL_LINK_COLUMNS}"), project, selection);
    qb.push(r#" order by c.started_at, c.id collate "C" limit "#).push_bind(limit);
    qb.build_query_as().fetch_all(db).await
}

/// The distinct traces of the given visible calls, each with its number of visible calls.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn traces_of(
    db: impl PgExecutor<'_>,
    project: &str,
    call_ids: &[String],
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as(&format!(
        "with traces as (select distinct c.trace_id from calls c where {VISIBLE} and c.id = any($2))
         select t.trace_id, (select count(*) from calls c where {VISIBLE} and c.trace_id = t.trace_id)
         from traces t"
    ))
    .bind(project)
    .bind(call_ids)
    .fetch_all(db)
    .await
}

/// Every visible call of the given traces.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn calls_of_traces(
    db: impl PgExecutor<'_>,
    project: &str,
    trace_ids: &[String],
) -> Result<Vec<CallLink>, sqlx::Error> {
    sqlx::query_as(&format!(
        "select {CALL_LINK_COLUMNS} from calls c where {VISIBLE} and c.trace_id = any($2)"
    ))
    .bind(project)
    .bind(trace_ids)
    .fetch_all(db)
    .await
}
