//! Objects and ops (API.md §11.2): `/obj/create`, `/obj/read`, `/objs/query`, `/obj/delete`.
//! Values are content-addressed with Weave's digest, versioned per object name.
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{check_paging, AppJson, Caller};
use super::shared::SortBy;
use crate::domain::digest::{object_classes, value_digest};
use crate::domain::objects::{name_problem, Version};
use crate::domain::{ProjectId, Timestamp};
use crate::error::{ApiError, Result, ValidationDetail};
use crate::state::AppState;
use crate::store::objects::{self as objects_store, NewObject, ObjectQuery, ObjectRow};
use crate::store::projects;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_object))
        .routes(routes!(read_object))
        .routes(routes!(query_objects))
        .routes(routes!(delete_object))
}

/// An object or op version to store (`ObjSchemaForInsert`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ObjForInsert {
    pub project_id: ProjectId,
    /// The object's name: letters, digits, `_`, `.`, `-`; at most 128 characters.
    pub object_id: String,
    /// Any JSON value; `weave.Object` values carry `_class_name` and `_bases`.
    #[schema(value_type = Object)]
    pub val: Value,
    /// The class of a built-in object type, when `val` does not carry its own.
    #[serde(default)]
    pub builtin_object_class: Option<String>,
    /// Accepted and ignored (older clients).
    #[serde(default)]
    pub set_base_object_class: Option<String>,
    /// A digest the client computed; a different one answers 409.
    #[serde(default)]
    pub expected_digest: Option<String>,
    /// Accepted and ignored: the key's user is recorded.
    #[serde(default)]
    pub wb_user_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"obj": {"project_id": "demo/app", "object_id": "cfg", "val": {"a": 1, "b": [1, 2]}}}))]
pub struct ObjCreateReq {
    pub obj: ObjForInsert,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ObjCreateRes {
    /// The version's digest: `weave:///<project>/<object|op>/<object_id>:<digest>` names it.
    pub digest: String,
    pub object_id: String,
}

/// Store a version of an object or op (the same content is the same version).
#[utoipa::path(post, path = "/obj/create", request_body = ObjCreateReq, tag = "objects",
    responses((status = 200, body = ObjCreateRes), (status = 409, description = "`expected_digest` differs from the server's", body = crate::error::ErrorBody)))]
async fn create_object(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<ObjCreateReq>,
) -> Result<Json<ObjCreateRes>> {
    let obj = req.obj;
    caller.authorize(&obj.project_id)?;
    if let Some(problem) = name_problem(&obj.object_id) {
        return Err(ApiError::Validation(vec![ValidationDetail::value_error(
            &["obj", "object_id"],
            problem,
            json!(obj.object_id),
        )]));
    }
    let mut classes = object_classes(&obj.val);
    if let Some(builtin) = obj.builtin_object_class.as_deref() {
        if !obj.val.is_object() {
            return Err(ApiError::BadRequest("object_class cannot be provided for non-dict objects".into()));
        }
        match classes.leaf_object_class.as_deref() {
            Some(leaf) if leaf != builtin => {
                return Err(ApiError::BadRequest(format!(
                    "builtin_object_class {builtin} differs from the value's class {leaf}"
                )))
            }
            Some(_) => {}
            None => {
                classes.base_object_class = Some(builtin.to_string());
                classes.leaf_object_class = Some(builtin.to_string());
            }
        }
    }
    let (digest, val_dump) = value_digest(&obj.val);
    check_expected_digest(obj.expected_digest.as_deref(), &digest, &format!("obj '{}'", obj.object_id))?;
    let project = obj.project_id.as_str();
    let mut tx = state.db.begin().await?;
    projects::register(&mut *tx, &[project]).await?;
    objects_store::create(
        &mut tx,
        &NewObject {
            project_id: project,
            object_id: &obj.object_id,
            digest: &digest,
            kind: classes.kind,
            base_object_class: classes.base_object_class.as_deref(),
            leaf_object_class: classes.leaf_object_class.as_deref(),
            val_dump: &val_dump,
            wb_user_id: &caller.0.user_id,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Json(ObjCreateRes { digest, object_id: obj.object_id }))
}

/// 409 when a client-computed digest is not ours.
pub(crate) fn check_expected_digest(expected: Option<&str>, actual: &str, what: &str) -> Result<()> {
    match expected {
        Some(expected) if expected != actual => {
            Err(ApiError::Conflict(format!("Client {what} digest {expected} != server digest {actual}")))
        }
        _ => Ok(()),
    }
}

/// A stored version (`ObjSchema`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Obj {
    pub project_id: String,
    pub object_id: String,
    pub created_at: Timestamp,
    pub deleted_at: Option<Timestamp>,
    pub digest: String,
    /// 0 for the first version of the name, then 1, 2, ... in the order digests first arrived.
    pub version_index: i32,
    /// 1 for the live version with the highest index, else 0.
    pub is_latest: i32,
    /// `object` or `op`.
    pub kind: String,
    pub base_object_class: Option<String>,
    pub leaf_object_class: Option<String>,
    /// The value, keys sorted (`{}` when only metadata was asked for).
    #[schema(value_type = Object)]
    pub val: Box<RawValue>,
    pub wb_user_id: Option<String>,
    /// Bytes of the stored value, with `include_storage_size`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
}

impl Obj {
    fn from_row(row: ObjectRow, with_size: bool) -> Self {
        Obj {
            val: row.val(),
            project_id: row.project_id,
            object_id: row.object_id,
            created_at: Timestamp::from(row.created_at),
            deleted_at: row.deleted_at.map(Timestamp::from),
            digest: row.digest,
            version_index: row.version_index,
            is_latest: i32::from(row.is_latest),
            kind: row.kind,
            base_object_class: row.base_object_class,
            leaf_object_class: row.leaf_object_class,
            wb_user_id: row.wb_user_id,
            size_bytes: with_size.then_some(row.size_bytes),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"project_id": "demo/app", "object_id": "cfg", "digest": "latest"}))]
pub struct ObjReadReq {
    pub project_id: ProjectId,
    pub object_id: String,
    /// A digest, `latest`, or `v<index>`.
    pub digest: String,
    /// Return `val` as `{}`.
    #[serde(default)]
    pub metadata_only: Option<bool>,
    /// Accepted and ignored (no tags or aliases are stored).
    #[serde(default)]
    pub include_tags_and_aliases: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ObjReadRes {
    pub obj: Obj,
}

/// Read one version (404 when there is none; 404 with `deleted_at` when it was deleted).
#[utoipa::path(post, path = "/obj/read", request_body = ObjReadReq, tag = "objects",
    responses((status = 200, body = ObjReadRes), (status = 404, description = "No such version, or deleted", body = crate::error::ErrorBody)))]
async fn read_object(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<ObjReadReq>,
) -> Result<Json<ObjReadRes>> {
    caller.authorize(&req.project_id)?;
    let version = Version::parse(&req.digest);
    let metadata_only = req.metadata_only == Some(true);
    let row = objects_store::read(&state.db, req.project_id.as_str(), &req.object_id, &version, metadata_only).await?;
    let name = format!("{}:{}", req.object_id, req.digest);
    match row {
        None => Err(ApiError::NotFound(format!("Obj {name} not found"))),
        Some(row) => match row.deleted_at {
            Some(at) => {
                let at = Timestamp::from(at).to_string();
                Err(ApiError::Deleted { reason: format!("{name} was deleted at {at}"), deleted_at: at })
            }
            None => Ok(Json(ObjReadRes { obj: Obj::from_row(row, false) })),
        },
    }
}

/// Which versions `/objs/query` lists (all fields optional, ANDed; lists ≤ 1000 values).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ObjectVersionFilter {
    #[serde(default, deserialize_with = "crate::domain::bounded_list")]
    pub base_object_classes: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::domain::bounded_list")]
    pub exclude_base_object_classes: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::domain::bounded_list")]
    pub leaf_object_classes: Option<Vec<String>>,
    #[serde(default, deserialize_with = "crate::domain::bounded_list")]
    pub object_ids: Option<Vec<String>>,
    /// true: ops only; false: objects only.
    #[serde(default)]
    pub is_op: Option<bool>,
    /// Only the latest version of each name.
    #[serde(default)]
    pub latest_only: Option<bool>,
    /// No tags are stored: a non-empty list matches nothing.
    #[serde(default, deserialize_with = "crate::domain::bounded_list")]
    pub tags: Option<Vec<String>>,
    /// No aliases are stored but `latest`: a list without it matches nothing.
    #[serde(default, deserialize_with = "crate::domain::bounded_list")]
    pub aliases: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"project_id": "demo/app", "filter": {"latest_only": true}, "limit": 10}))]
pub struct ObjQueryReq {
    pub project_id: ProjectId,
    #[serde(default)]
    pub filter: Option<ObjectVersionFilter>,
    #[serde(default)]
    pub limit: Option<i64>,
    #[serde(default)]
    pub offset: Option<i64>,
    /// `object_id` or `created_at`; other fields are ignored, as Weave does.
    #[serde(default)]
    pub sort_by: Option<Vec<SortBy>>,
    #[serde(default)]
    pub metadata_only: Option<bool>,
    #[serde(default)]
    pub include_storage_size: Option<bool>,
    /// Accepted and ignored.
    #[serde(default)]
    pub include_tags_and_aliases: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ObjQueryRes {
    pub objs: Vec<Obj>,
}

/// Live versions matching a filter, oldest first by default.
#[utoipa::path(post, path = "/objs/query", request_body = ObjQueryReq, tag = "objects",
    responses((status = 200, body = ObjQueryRes)))]
async fn query_objects(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<ObjQueryReq>,
) -> Result<Json<ObjQueryRes>> {
    caller.authorize(&req.project_id)?;
    check_paging(req.limit, req.offset)?;
    let filter = req.filter.unwrap_or_default();
    let active = |list: &Option<Vec<String>>| list.clone().filter(|l| !l.is_empty());
    let matches_nothing = active(&filter.tags).is_some()
        || active(&filter.aliases).is_some_and(|aliases| !aliases.iter().any(|a| a == "latest"));
    if matches_nothing {
        return Ok(Json(ObjQueryRes { objs: Vec::new() }));
    }
    let sort = req
        .sort_by
        .unwrap_or_default()
        .iter()
        .filter_map(|s| match s.field.as_str() {
            "object_id" => Some(("object_id", s.direction.is_descending())),
            "created_at" => Some(("created_at", s.direction.is_descending())),
            _ => None,
        })
        .collect();
    let query = ObjectQuery {
        object_ids: active(&filter.object_ids),
        is_op: filter.is_op,
        latest_only: filter.latest_only == Some(true) || active(&filter.aliases).is_some(),
        base_object_classes: active(&filter.base_object_classes),
        exclude_base_object_classes: active(&filter.exclude_base_object_classes),
        leaf_object_classes: active(&filter.leaf_object_classes),
        sort,
        limit: req.limit,
        offset: req.offset,
        metadata_only: req.metadata_only == Some(true),
    };
    let with_size = req.include_storage_size == Some(true);
    let rows = objects_store::query(&state.db, req.project_id.as_str(), &query).await?;
    Ok(Json(ObjQueryRes { objs: rows.into_iter().map(|row| Obj::from_row(row, with_size)).collect() }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"project_id": "demo/app", "object_id": "cfg", "digests": ["5vIL3DdX5eeXTjFt7YQZbxnPWVTYx2sYliKGgPze9mw"]}))]
pub struct ObjDeleteReq {
    pub project_id: ProjectId,
    pub object_id: String,
    /// Versions to delete (digests, `latest` or `v<index>`; at most 100); all when absent.
    #[serde(default)]
    pub digests: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ObjDeleteRes {
    pub num_deleted: i64,
}

/// Most versions one `/obj/delete` may name.
const MAX_DELETE_DIGESTS: usize = 100;

/// Soft-delete versions of an object (404 when one named is not a live version).
#[utoipa::path(post, path = "/obj/delete", request_body = ObjDeleteReq, tag = "objects",
    responses((status = 200, body = ObjDeleteRes), (status = 404, description = "A version named is not live", body = crate::error::ErrorBody)))]
async fn delete_object(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<ObjDeleteReq>,
) -> Result<Json<ObjDeleteRes>> {
    caller.authorize(&req.project_id)?;
    let project = req.project_id.as_str();
    if req.digests.as_ref().is_some_and(|d| d.len() > MAX_DELETE_DIGESTS) {
        return Err(ApiError::BadRequest(format!("Please delete {MAX_DELETE_DIGESTS} or fewer digests at a time")));
    }
    let mut tx = state.db.begin().await?;
    // Names (`latest`, `v2`) become digests first, so the delete names exactly what was asked.
    let digests = match &req.digests {
        None => None,
        Some(names) => {
            let mut digests = Vec::with_capacity(names.len());
            for name in names {
                match objects_store::read(&mut *tx, project, &req.object_id, &Version::parse(name), true).await? {
                    Some(row) if row.deleted_at.is_none() => digests.push(row.digest),
                    _ => {
                        return Err(ApiError::NotFound(format!(
                            "Object {} ({name}) not found when deleting.",
                            req.object_id
                        )))
                    }
                }
            }
            digests.sort();
            digests.dedup();
            Some(digests)
        }
    };
    let deleted = objects_store::delete(&mut tx, project, &req.object_id, digests.as_deref()).await?;
    if deleted.is_empty() {
        return Err(ApiError::NotFound(format!("Object {} not found when deleting.", req.object_id)));
    }
    tx.commit().await?;
    Ok(Json(ObjDeleteRes { num_deleted: deleted.len() as i64 }))
}
