//! SQL for API keys.
use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool};

#[derive(Debug, sqlx::FromRow)]
pub struct KeyRow {
    pub id: String,
    pub secret_hash: Vec<u8>,
    pub user_id: String,
    pub entities: Vec<String>,
    pub is_admin: bool,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub async fn insert(
    db: impl PgExecutor<'_>,
    id: &str,
    lookup: &str,
    secret_hash: &[u8; 32],
    user: &str,
    entities: &[String],
    admin: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        r#"insert into api_keys (id, lookup, secret_hash, user_id, entities, is_admin)
           values ($1, $2, $3, $4, $5, $6)"#,
    )
    .bind(id)
    .bind(lookup)
    .bind(secret_hash.as_slice())
    .bind(user)
    .bind(entities)
    .bind(admin)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn any_exists(db: &PgPool) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("select exists (select 1 from api_keys)").fetch_one(db).await
}

/// Live keys whose hash starts with `lookup`.
pub async fn find_active(db: &PgPool, lookup: &str) -> Result<Vec<KeyRow>, sqlx::Error> {
    sqlx::query_as(
        r#"select id, secret_hash, user_id, entities, is_admin, created_at, revoked_at
           from api_keys where lookup = $1 and revoked_at is null"#,
    )
    .bind(lookup)
    .fetch_all(db)
    .await
}

pub async fn list(db: &PgPool) -> Result<Vec<KeyRow>, sqlx::Error> {
    sqlx::query_as(
        r#"select id, secret_hash, user_id, entities, is_admin, created_at, revoked_at
           from api_keys order by created_at, id"#,
    )
    .fetch_all(db)
    .await
}

/// Revoke a live key; false when there is none with that id.
pub async fn revoke(db: &PgPool, id: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("update api_keys set revoked_at = now() where id = $1 and revoked_at is null")
        .bind(id)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}
