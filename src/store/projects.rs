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
}

/// The project, if registered.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn get(db: impl PgExecutor<'_>, project: &str) -> Result<Option<ProjectRow>, sqlx::Error> {
    sqlx::query_as("select project_id, created_at from projects where project_id = $1")
        .bind(project)
        .fetch_optional(db)
        .await
}

/// Registered projects of these entities (all with `None`), by name.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn list(db: impl PgExecutor<'_>, entities: Option<&[String]>) -> Result<Vec<ProjectRow>, sqlx::Error> {
    sqlx::query_as(
        r#"select project_id, created_at from projects
           where $1::text[] is null or split_part(project_id, '/', 1) = any($1)
           order by project_id collate "C""#,
    )
    .bind(entities)
    .fetch_all(db)
    .await
}
