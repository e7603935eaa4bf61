//! SQL for versioned objects and ops (`/obj/*`, `/objs/query`).
//!
//! A version is `(project, object_id, digest)`. Its `version_index` is fixed when its digest
//! first arrives (one more than the object's highest, deleted versions included); the latest
//! version is the live one with the highest index. Writers of one object take turns (an
//! advisory lock), so two new versions never get the same number.
use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use sqlx::{PgConnection, PgExecutor, Postgres, QueryBuilder};

use crate::domain::objects::Version;

/// A version to store.
#[derive(Debug, Clone)]
pub struct NewObject<'a> {
    pub project_id: &'a str,
    pub object_id: &'a str,
    pub digest: &'a str,
    pub kind: &'a str,
    pub base_object_class: Option<&'a str>,
    pub leaf_object_class: Option<&'a str>,
    pub val_dump: &'a str,
    pub wb_user_id: &'a str,
}

/// A stored version, as `/obj/read` and `/objs/query` show it.
#[derive(Debug, sqlx::FromRow)]
pub struct ObjectRow {
    pub project_id: String,
    pub object_id: String,
    pub digest: String,
    pub kind: String,
    pub base_object_class: Option<String>,
    pub leaf_object_class: Option<String>,
    /// The canonical JSON text (empty for metadata-only reads).
    pub val_dump: String,
    pub version_index: i32,
    pub is_latest: bool,
    pub created_at: DateTime<Utc>,
    pub wb_user_id: Option<String>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub size_bytes: i64,
}

impl ObjectRow {
    /// The stored value, as the JSON text it was hashed from.
    pub fn val(&self) -> Box<RawValue> {
        RawValue::from_string(self.val_dump.clone())
            .unwrap_or_else(|_| RawValue::from_string("null".into()).expect("null is JSON"))
    }
}

/// Store a version, or revive it if it was deleted; a version stored already is left as it is.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn create(conn: &mut PgConnection, object: &NewObject<'_>) -> Result<(), sqlx::Error> {
    sqlx::query("select pg_advisory_xact_lock(hashtextextended('weave object ' || $1 || '/' || $2, 0))")
        .bind(object.project_id)
        .bind(object.object_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "insert into objects (project_id, object_id, digest, kind, base_object_class, leaf_object_class, val_dump,
                              version_index, wb_user_id)
         values ($1, $2, $3, $4, $5, $6, $7,
                 (select coalesce(max(version_index) + 1, 0) from objects where project_id = $1 and object_id = $2), $8)
         on conflict (project_id, object_id, digest) do update set deleted_at = null
             where objects.deleted_at is not null",
    )
    .bind(object.project_id)
    .bind(object.object_id)
    .bind(object.digest)
    .bind(object.kind)
    .bind(object.base_object_class)
    .bind(object.leaf_object_class)
    .bind(object.val_dump)
    .bind(object.wb_user_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The columns of [`ObjectRow`] on `objects o`; `is_latest` compares with the highest live index.
fn columns(metadata_only: bool) -> String {
    let val = if metadata_only { "'{}'" } else { "o.val_dump" };
    format!(
        "o.project_id, o.object_id, o.digest, o.kind, o.base_object_class, o.leaf_object_class, {val} as val_dump,
         o.version_index, o.created_at, o.wb_user_id, o.deleted_at, octet_length(o.val_dump)::int8 as size_bytes,
         (o.deleted_at is null and o.version_index = (
             select max(l.version_index) from objects l
             where l.project_id = o.project_id and l.object_id = o.object_id and l.deleted_at is null)) as is_latest"
    )
}

/// One version of an object, deleted or not (the caller tells a deleted one apart).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn read(
    db: impl PgExecutor<'_>,
    project: &str,
    object_id: &str,
    version: &Version,
    metadata_only: bool,
) -> Result<Option<ObjectRow>, sqlx::Error> {
    let mut qb = QueryBuilder::<Postgres>::new(format!(
        "select {} from objects o where o.project_id = ",
        columns(metadata_only)
    ));
    qb.push_bind(project).push(" and o.object_id = ").push_bind(object_id);
    match version {
        Version::Latest => {
            qb.push(" and o.deleted_at is null order by o.version_index desc limit 1");
        }
        Version::Index(index) => {
            qb.push(" and o.version_index = ").push_bind(*index);
        }
        Version::Digest(digest) => {
            qb.push(" and o.digest = ").push_bind(digest.clone());
        }
    }
    qb.build_query_as().fetch_optional(db).await
}

/// What `/objs/query` selects.
#[derive(Debug, Clone, Default)]
pub struct ObjectQuery {
    pub object_ids: Option<Vec<String>>,
    /// Some(true): ops only; Some(false): objects only.
    pub is_op: Option<bool>,
    pub latest_only: bool,
    pub base_object_classes: Option<Vec<String>>,
    pub exclude_base_object_classes: Option<Vec<String>>,
    pub leaf_object_classes: Option<Vec<String>>,
    /// `(column, descending)`: `object_id` or `created_at`.
    pub sort: Vec<(&'static str, bool)>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    pub metadata_only: bool,
}

/// The live versions `query` selects.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn query(db: impl PgExecutor<'_>, project: &str, query: &ObjectQuery) -> Result<Vec<ObjectRow>, sqlx::Error> {
    let mut qb = QueryBuilder::<Postgres>::new(format!(
        "select * from (select {} from objects o where o.deleted_at is null and o.project_id = ",
        columns(query.metadata_only)
    ));
    qb.push_bind(project);
    if let Some(ids) = &query.object_ids {
        qb.push(" and o.object_id = any(").push_bind(ids.clone()).push(")");
    }
    match query.is_op {
        Some(true) => {
            qb.push(" and o.kind = 'op'");
        }
        Some(false) => {
            qb.push(" and o.kind <> 'op'");
        }
        None => {}
    }
    if let Some(classes) = &query.base_object_classes {
        qb.push(" and o.base_object_class = any(").push_bind(classes.clone()).push(")");
    }
    if let Some(classes) = &query.exclude_base_object_classes {
        qb.push(" and (o.base_object_class is null or o.base_object_class <> all(")
            .push_bind(classes.clone())
            .push("))");
    }
    if let Some(classes) = &query.leaf_object_classes {
        qb.push(" and o.leaf_object_class = any(").push_bind(classes.clone()).push(")");
    }
    qb.push(") o");
    if query.latest_only {
        qb.push(" where o.is_latest");
    }
    qb.push(" order by ");
    for (column, descending) in &query.sort {
        qb.push(format_args!(
            "o.{column}{} {}, ",
            if *column == "object_id" { r#" collate "C""# } else { "" },
            if *descending { "desc" } else { "asc" }
        ));
    }
    qb.push(r#"o.created_at, o.object_id collate "C", o.version_index"#);
    if let Some(limit) = query.limit {
        qb.push(" limit ").push_bind(limit);
    }
    if let Some(offset) = query.offset {
        qb.push(" offset ").push_bind(offset);
    }
    qb.build_query_as().fetch_all(db).await
}

/// Soft-delete live versions of an object (all, or those named); returns the digests deleted.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn delete(
    conn: &mut PgConnection,
    project: &str,
    object_id: &str,
    digests: Option<&[String]>,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "update objects set deleted_at = now()
         where project_id = $1 and object_id = $2 and deleted_at is null and ($3::text[] is null or digest = any($3))
         returning digest",
    )
    .bind(project)
    .bind(object_id)
    .bind(digests)
    .fetch_all(conn)
    .await
}

/// The stored value of each version named, deleted ones as None (`/refs/read_batch`); versions
/// not stored at all are absent from the answer.
#[tracing::instrument(level = "debug", skip_all, fields(versions = wanted.len()))]
pub async fn values(
    db: impl PgExecutor<'_>,
    project: &str,
    wanted: &[(String, String)],
) -> Result<Vec<(String, String, Option<String>)>, sqlx::Error> {
    let (ids, digests): (Vec<&str>, Vec<&str>) = wanted.iter().map(|(o, d)| (o.as_str(), d.as_str())).unzip();
    sqlx::query_as(
        "select o.object_id, o.digest, case when o.deleted_at is null then o.val_dump end
         from unnest($2::text[], $3::text[]) w(object_id, digest)
         join objects o on o.project_id = $1 and o.object_id = w.object_id and o.digest = w.digest",
    )
    .bind(project)
    .bind(ids)
    .bind(digests)
    .fetch_all(db)
    .await
}
