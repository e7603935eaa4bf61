//! SQL for files (`/file/create`, `/file/content`): content-addressed bytes.
use sqlx::PgExecutor;

/// Store a file's bytes under its digest (once).
#[tracing::instrument(level = "debug", skip_all, fields(bytes = content.len()))]
pub async fn create(db: impl PgExecutor<'_>, project: &str, digest: &str, content: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query("insert into files (project_id, digest, content) values ($1, $2, $3) on conflict do nothing")
        .bind(project)
        .bind(digest)
        .bind(content)
        .execute(db)
        .await?;
    Ok(())
}

/// A file's bytes.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn content(db: impl PgExecutor<'_>, project: &str, digest: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar("select content from files where project_id = $1 and digest = $2")
        .bind(project)
        .bind(digest)
        .fetch_optional(db)
        .await
}
