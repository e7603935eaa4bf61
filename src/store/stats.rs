//! SQL for `/calls/stats`: stream the typed columns of the counted calls and their usage rows.
//! Bucketing and aggregation happen in `stats` as rows arrive, so memory holds only the values
//! a bucket needs, never the rows.
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use sqlx::{PgPool, Postgres, QueryBuilder};

use super::filter::Selection;

/// What the call metrics need of one call.
#[derive(Debug, sqlx::FromRow)]
pub struct CallPoint {
    pub started_at: DateTime<Utc>,
    pub latency_ms: Option<f64>,
    pub is_error: bool,
}

/// One usage row of a counted call, timed by the call's start.
#[derive(Debug, sqlx::FromRow)]
pub struct UsagePoint {
    pub started_at: DateTime<Utc>,
    pub model: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub total_tokens: i64,
    pub cache_read_input_tokens: i64,
    pub cache_creation_input_tokens: i64,
}

/// The calls API.md §4.2 counts: in the project, not deleted, `start ≤ started_at < end`, and
/// matching the filter.
fn counted_calls<'a>(
    select: &str,
    project: &'a str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    selection: &Selection,
) -> QueryBuilder<'a, Postgres> {
    let mut qb = QueryBuilder::new(select);
    qb.push(" where c.project_id = ").push_bind(project);
    qb.push(" and c.deleted_at is null and c.started_at >= ").push_bind(start);
    qb.push(" and c.started_at < ").push_bind(end);
    super::filter::push_conditions(&mut qb, "c", selection);
    qb
}

/// Feed every counted call to `each`, in no particular order.
pub async fn for_each_call(
    db: &PgPool,
    project: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    selection: &Selection,
    mut each: impl FnMut(CallPoint),
) -> Result<(), sqlx::Error> {
    let mut qb = counted_calls(
        "select c.started_at, c.latency_ms, c.exception is not null as is_error from calls c",
        project,
        start,
        end,
        selection,
    );
    let mut rows = qb.build_query_as::<CallPoint>().fetch(db);
    while let Some(row) = rows.try_next().await? {
        each(row);
    }
    Ok(())
}

/// Feed every usage row of the counted calls to `each`, in no particular order.
pub async fn for_each_usage(
    db: &PgPool,
    project: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    selection: &Selection,
    mut each: impl FnMut(UsagePoint),
) -> Result<(), sqlx::Error> {
    let mut qb = counted_calls(
        "select c.started_at, u.model, u.input_tokens, u.output_tokens, u.total_tokens,
                u.cache_read_input_tokens, u.cache_creation_input_tokens
         from calls c join call_usage u on u.project_id = c.project_id and u.call_id = c.id",
        project,
        start,
        end,
        selection,
    );
    let mut rows = qb.build_query_as::<UsagePoint>().fetch(db);
    while let Some(row) = rows.try_next().await? {
        each(row);
    }
    Ok(())
}
