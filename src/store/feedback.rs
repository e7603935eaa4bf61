//! SQL for feedback (`/feedback/*`): one row per reaction, note or score on a call.
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor, Postgres, QueryBuilder};

use super::expr::Condition;

/// A feedback row; its JSON form is the API's (`extra` spread into it).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FeedbackRow {
    pub id: String,
    pub project_id: String,
    pub weave_ref: String,
    pub feedback_type: String,
    pub payload: Value,
    pub creator: Option<String>,
    pub created_at: crate::domain::Timestamp,
    pub wb_user_id: String,
    pub annotation_ref: Option<String>,
    pub runnable_ref: Option<String>,
    pub call_ref: Option<String>,
    pub trigger_ref: Option<String>,
    pub queue_id: Option<String>,
    /// The request's other fields (`scorer_*`, `span_*`), returned as they came.
    #[serde(default)]
    pub extra: Value,
}

/// Insert feedback rows (one statement for a batch).
#[tracing::instrument(level = "debug", skip_all, fields(rows = rows.len()))]
pub async fn insert(conn: &mut PgConnection, rows: &[FeedbackRow]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into feedback (project_id, id, weave_ref, feedback_type, payload, creator, created_at, wb_user_id,
                               annotation_ref, runnable_ref, call_ref, trigger_ref, queue_id, extra)
         select project_id, id, weave_ref, feedback_type, payload, creator, created_at, wb_user_id,
                annotation_ref, runnable_ref, call_ref, trigger_ref, queue_id, coalesce(extra, '{}')
         from jsonb_populate_recordset(null::feedback, $1)
         on conflict (project_id, id) do update set
             weave_ref = excluded.weave_ref, feedback_type = excluded.feedback_type, payload = excluded.payload,
             creator = excluded.creator, created_at = excluded.created_at, wb_user_id = excluded.wb_user_id,
             annotation_ref = excluded.annotation_ref, runnable_ref = excluded.runnable_ref, call_ref = excluded.call_ref,
             trigger_ref = excluded.trigger_ref, queue_id = excluded.queue_id, extra = excluded.extra",
    )
    .bind(Json(rows))
    .execute(conn)
    .await?;
    Ok(())
}

/// Feedback of a project matching `query`, sorted by `sort` (columns or payload paths, allow-
/// listed by the caller) then creation and id.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn query(
    db: impl PgExecutor<'_>,
    project: &str,
    query: Option<&Condition>,
    sort: &[(SortKey, bool)],
    limit: Option<i64>,
    offset: Option<i64>,
) -> Result<Vec<FeedbackRow>, sqlx::Error> {
    let mut qb = QueryBuilder::<Postgres>::new("select to_jsonb(f) from feedback f where f.project_id = ");
    qb.push_bind(project.to_string());
    if let Some(condition) = query {
        condition.push(&mut qb, "f");
    }
    qb.push(" order by ");
    for (key, descending) in sort {
        let direction = if *descending { "desc" } else { "asc" };
        match key {
            SortKey::Column(column) => {
                let collate = if *column == "created_at" { "" } else { r#" collate "C""# };
                qb.push(format_args!("f.{column}{collate} {direction}, "));
            }
            SortKey::Payload(path) => {
                qb.push("weave_json_sort_rank(f.payload #> ").push_bind(path.clone()).push("::text[]), ");
                qb.push("weave_json_sort_number(f.payload #> ")
                    .push_bind(path.clone())
                    .push(format_args!("::text[]) {direction}, "));
                qb.push("weave_json_text(f.payload #> ")
                    .push_bind(path.clone())
                    .push(format_args!(r#"::text[]) collate "C" {direction}, "#));
            }
        }
    }
    qb.push(r#"f.created_at, f.id collate "C""#);
    if let Some(limit) = limit {
        qb.push(" limit ").push_bind(limit);
    }
    if let Some(offset) = offset {
        qb.push(" offset ").push_bind(offset);
    }
    let rows: Vec<Json<FeedbackRow>> = qb.build_query_scalar().fetch_all(db).await?;
    Ok(rows.into_iter().map(|row| row.0).collect())
}

/// How feedback is sorted: a column (allow-listed) or a path under `payload`.
#[derive(Debug, Clone)]
pub enum SortKey {
    Column(&'static str),
    Payload(Vec<String>),
}

/// Delete feedback by id; returns how many rows went.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn delete(conn: &mut PgConnection, project: &str, ids: &[String]) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("delete from feedback where project_id = $1 and id = any($2)")
        .bind(project)
        .bind(ids)
        .execute(conn)
        .await?
        .rows_affected())
}

/// Feedback counts per type of the given calls' refs (`weave:///e/p/call/<id>`).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn counts_by_type(
    db: impl PgExecutor<'_>,
    project: &str,
    refs: &[String],
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        r#"select feedback_type, count(*) from feedback where project_id = $1 and weave_ref = any($2)
           group by feedback_type order by feedback_type collate "C""#,
    )
    .bind(project)
    .bind(refs)
    .fetch_all(db)
    .await
}
