//! SQL for the project list: projects are registered by GraphQL `upsertModel` or by their
//! first write.
use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

/// Register projects (those known already are left as they are).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn register(db: impl PgExecutor<'_>, projects: &[&str]) -> Result<(), sqlx::Error> {
    sqlx::query("insert into projects (project_id) select unnest($1::text[]) on conflict do nothing")
        .bind(projects)
        .execute(db)
        .await?;
    Ok(())
}

/// A registered project.
#[derive(Debug, sqlx::FromRow)]
pub struct ProjectRow {
    pub project_id: String,
    pub created_at: DateTime<Utc>,
    /// The start of its earliest visible call.
    pub first_call_at: Option<DateTime<Utc>>,
    /// The start of its latest visible call.
    pub last_call_at: Option<DateTime<Utc>>,
}

/// The columns of a [`ProjectRow`] of `projects p`.
const PROJECT_ROW: &str = "p.project_id, p.created_at,
    (select min(c.started_at) from calls c where c.project_id = p.project_id and c.deleted_at is null) as first_call_at,
    (select max(c.started_at) from calls c where c.project_id = p.project_id and c.deleted_at is null) as last_call_at";

/// The project, if registered.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn get(db: impl PgExecutor<'_>, project: &str) -> Result<Option<ProjectRow>, sqlx::Error> {
    sqlx::query_as(&format!("select {PROJECT_ROW} from projects p where p.project_id = $1"))
        .bind(project)
        .fetch_optional(db)
        .await
}

/// Registered projects of these entities (all with `None`), by name.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn list(db: impl PgExecutor<'_>, entities: Option<&[String]>) -> Result<Vec<ProjectRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        r#"select {PROJECT_ROW} from projects p
           where $1::text[] is null or split_part(p.project_id, '/', 1) = any($1)
           order by p.project_id collate "C""#
    ))
    .bind(entities)
    .fetch_all(db)
    .await
}
