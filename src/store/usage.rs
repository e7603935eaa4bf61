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
const CALL_LINK_COLUMNS: &str =
    "c.id, c.parent_id, c.started_at, c.ended_at, coalesce(c.summary -> 'usage', 'null') as usage";

/// The first `limit` visible calls matching `filter`, in the default order (start, then id in
/// byte order).
///
/// Most selections are whole traces within the limit, so the calls are first read unordered,
/// one more than the limit, and sorted here (Postgres's sort of a 10,000-call trace took 6 of
/// the query's 12 ms); only if that many match are they read again, sorted by Postgres. The
/// order matters beyond the limit: costs are floats, summed in this order.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn select_calls(
    db: &PgPool,
    project: &str,
    selection: &Selection,
    limit: i64,
) -> Result<Vec<CallLink>, sqlx::Error> {
    let mut qb = visible_calls(format!("select {CALL_LINK_COLUMNS}"), project, selection);
    qb.push(" limit ").push_bind(limit.saturating_add(1));
    let mut calls: Vec<CallLink> = qb.build_query_as().fetch_all(db).await?;
    if i64::try_from(calls.len()).unwrap_or(i64::MAX) <= limit {
        sort_in_default_order(&mut calls);
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

/// Every visible call of the given traces, in the default order (costs, floats, are summed in
/// this order: sorted, the answer does not depend on where rows lie on disk).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn calls_of_traces(
    db: impl PgExecutor<'_>,
    project: &str,
    trace_ids: &[String],
) -> Result<Vec<CallLink>, sqlx::Error> {
    let mut calls: Vec<CallLink> =
        sqlx::query_as(&format!("select {CALL_LINK_COLUMNS} from calls c where {VISIBLE} and c.trace_id = any($2)"))
            .bind(project)
            .bind(trace_ids)
            .fetch_all(db)
            .await?;
    sort_in_default_order(&mut calls);
    Ok(calls)
}

/// Start, then id in byte order (ids are unique within a project).
fn sort_in_default_order(calls: &mut [CallLink]) {
    calls.sort_unstable_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
}
