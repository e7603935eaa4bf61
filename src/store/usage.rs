//! SQL for the usage endpoints: the selected calls' parent links and their own usage rows.
use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use super::filter::Selection;
use super::{visible_calls, USAGE_ROW_COLUMNS, VISIBLE};
use crate::domain::usage::UsageRow;

/// What the rollup needs of a call.
#[derive(Debug, sqlx::FromRow)]
pub struct CallLink {
    pub id: String,
    pub parent_id: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// One usage row (API.md §3) of the `call`-th of the ids [`own_usage`] was given.
#[derive(Debug, sqlx::FromRow)]
pub struct OwnUsage {
    pub call: i64,
    #[sqlx(flatten)]
    pub usage: UsageRow,
}

/// The first `limit` visible calls matching `filter`, in the default order (start, then id in
/// byte order).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn select_calls(
    db: impl PgExecutor<'_>,
    project: &str,
    selection: &Selection,
    limit: i64,
) -> Result<Vec<CallLink>, sqlx::Error> {
    let mut qb = visible_calls("select c.id, c.parent_id, c.started_at, c.ended_at", project, selection);
    qb.push(r#" order by c.started_at, c.id collate "C" limit "#).push_bind(limit);
    qb.build_query_as().fetch_all(db).await
}

/// The usage rows of the given calls, each naming its call by position in `call_ids` (no id
/// to send back, decode and look up).
#[tracing::instrument(level = "debug", skip_all, fields(calls = call_ids.len()))]
pub async fn own_usage(
    db: impl PgExecutor<'_>,
    project: &str,
    call_ids: &[&str],
) -> Result<Vec<OwnUsage>, sqlx::Error> {
    sqlx::query_as(&format!(
        // One primary-key lookup per id (`offset 0` keeps the planner from turning it into a
        // hash join over the whole table), not `= any($2)`: an index scan over an array first
        // sorts it with the column's collation, which costs more than the lookups.
        "select i.n - 1 as call, {USAGE_ROW_COLUMNS}
         from unnest($2::text[]) with ordinality as i(id, n), lateral (
             select * from call_usage u where u.project_id = $1 and u.call_id = i.id offset 0
         ) u"
    ))
    .bind(project)
    .bind(call_ids)
    .fetch_all(db)
    .await
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
        "select c.id, c.parent_id, c.started_at, c.ended_at from calls c where {VISIBLE} and c.trace_id = any($2)"
    ))
    .bind(project)
    .bind(trace_ids)
    .fetch_all(db)
    .await
}
