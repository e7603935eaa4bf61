//! SQL for the usage endpoints: the selected calls' parent links and their own usage rows.
use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, Postgres, QueryBuilder};

use super::filter::Selection;

/// What the rollup needs of a call.
#[derive(Debug, sqlx::FromRow)]
pub struct CallLink {
    pub id: String,
    pub parent_id: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// One usage row (API.md §3) of a call.
#[derive(Debug, sqlx::FromRow)]
pub struct OwnUsage {
    pub call_id: String,
    pub model: String,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub total_tokens: i64,
    pub cache_read_input_tokens: i64,
    pub cache_creation_input_tokens: i64,
}

/// The first `limit` visible calls matching `filter`, in the default order (start, then id in
/// byte order).
pub async fn select_calls(
    db: impl PgExecutor<'_>,
    project: &str,
    selection: &Selection,
    limit: i64,
) -> Result<Vec<CallLink>, sqlx::Error> {
    let mut qb: QueryBuilder<Postgres> =
        QueryBuilder::new("select c.id, c.parent_id, c.started_at, c.ended_at from calls c where c.project_id = ");
    qb.push_bind(project).push(" and c.started_at is not null and c.deleted_at is null");
    super::filter::push_conditions(&mut qb, "c", selection);
    qb.push(r#" order by c.started_at, c.id collate "C" limit "#).push_bind(limit);
    qb.build_query_as().fetch_all(db).await
}

/// The usage rows of the given calls.
pub async fn own_usage(
    db: impl PgExecutor<'_>,
    project: &str,
    call_ids: &[String],
) -> Result<Vec<OwnUsage>, sqlx::Error> {
    sqlx::query_as(
        // One primary-key lookup per id (`offset 0` keeps the planner from turning it into a
        // hash join over the whole table), not `= any($2)`: an index scan over an array first
        // sorts it with the column's collation, which costs more than the lookups.
        "select u.call_id, u.model, u.requests, u.input_tokens, u.output_tokens, u.total_tokens,
                u.cache_read_input_tokens, u.cache_creation_input_tokens
         from unnest($2::text[]) as i(id), lateral (
             select * from call_usage u where u.project_id = $1 and u.call_id = i.id offset 0
         ) u",
    )
    .bind(project)
    .bind(call_ids)
    .fetch_all(db)
    .await
}

/// The distinct traces of the given visible calls, each with its number of visible calls.
pub async fn traces_of(
    db: impl PgExecutor<'_>,
    project: &str,
    call_ids: &[String],
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "with traces as (
             select distinct trace_id from calls
             where project_id = $1 and id = any($2) and started_at is not null and deleted_at is null
         )
         select t.trace_id, (select count(*) from calls c where c.project_id = $1 and c.trace_id = t.trace_id
                             and c.started_at is not null and c.deleted_at is null)
         from traces t",
    )
    .bind(project)
    .bind(call_ids)
    .fetch_all(db)
    .await
}

/// Every visible call of the given traces.
pub async fn calls_of_traces(
    db: impl PgExecutor<'_>,
    project: &str,
    trace_ids: &[String],
) -> Result<Vec<CallLink>, sqlx::Error> {
    sqlx::query_as(
        "select id, parent_id, started_at, ended_at from calls
         where project_id = $1 and trace_id = any($2) and started_at is not null and deleted_at is null",
    )
    .bind(project)
    .bind(trace_ids)
    .fetch_all(db)
    .await
}
