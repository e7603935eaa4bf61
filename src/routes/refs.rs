//! `POST /refs/read_batch` (API.md §11.2): the values refs name, following their extra paths
//! into objects and table rows, and through the refs met on the way.
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{AppJson, Caller};
use crate::domain::refs::{walk, Edge, Ref, Target, Walk};
use crate::error::{ApiError, Result};
use crate::state::AppState;
use crate::store::{objects as objects_store, tables as tables_store};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(read_refs))
}

/// Most refs one request may read.
const MAX_REFS: usize = 1000;
/// Most refs followed while resolving one ref (a cycle of refs stops here).
const MAX_HOPS: usize = 64;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"refs": ["weave:///demo/app/object/cfg:5vIL3DdX5eeXTjFt7YQZbxnPWVTYx2sYliKGgPze9mw/key/b/index/1"]}))]
pub struct RefsReadBatchReq {
    /// `weave:///entity/project/object/name:digest[/edge/value]...` (at most 1000).
    pub refs: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefsReadBatchRes {
    /// One value per ref, in order: null where a version was deleted or the path leads nowhere.
    pub vals: Vec<Value>,
}

/// Read the values refs name.
#[utoipa::path(post, path = "/refs/read_batch", request_body = RefsReadBatchReq, tag = "objects",
    responses((status = 200, body = RefsReadBatchRes), (status = 404, description = "A ref names a version that was never stored", body = crate::error::ErrorBody)))]
async fn read_refs(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<RefsReadBatchReq>,
) -> Result<Json<RefsReadBatchRes>> {
    if req.refs.len() > MAX_REFS {
        return Err(ApiError::BadRequest(format!("Too many refs: at most {MAX_REFS} per request")));
    }
    let refs = req.refs.iter().map(|r| Ref::parse(r).map_err(ApiError::BadRequest)).collect::<Result<Vec<_>>>()?;
    for r in &refs {
        caller.authorize(&r.project)?;
        match &r.target {
            Target::Object { version, .. } if version == "latest" => {
                return Err(ApiError::BadRequest("Reading refs with `latest` is not supported".into()))
            }
            Target::Object { .. } => {}
            Target::Table { .. } => return Err(ApiError::BadRequest("Table refs not supported".into())),
            Target::Call { .. } => return Err(ApiError::BadRequest("Call refs not supported in batch read".into())),
        }
    }
    let mut vals = Vec::with_capacity(refs.len());
    for r in refs {
        let Target::Object { name, version, .. } = &r.target else { unreachable!("checked above") };
        let project = r.project.as_str();
        // A root that was never stored fails the request; a deleted one reads as null.
        let found = objects_store::values(&state.db, project, &[(name.clone(), version.clone())]).await?;
        let Some((_, _, dump)) = found.into_iter().next() else {
            return Err(ApiError::NotFound(format!("Obj {name}:{version} not found")));
        };
        let root = dump.and_then(|d| serde_json::from_str(&d).ok()).unwrap_or(Value::Null);
        vals.push(resolve(&state, &r.project, root, r.extra).await?);
    }
    Ok(Json(RefsReadBatchRes { vals }))
}

/// Walk `edges` into `value`, reading what refs met on the way name (within the project).
async fn resolve(
    state: &AppState,
    project: &crate::domain::ProjectId,
    mut value: Value,
    mut edges: Vec<Edge>,
) -> Result<Value> {
    for _ in 0..MAX_HOPS {
        let (target, rest) = match walk(value, &edges) {
            Walk::Done(value) => return Ok(value),
            Walk::Invalid(why) => return Err(ApiError::BadRequest(why)),
            Walk::Follow { target, rest } => (target, rest),
        };
        if &target.project != project {
            return Ok(Value::Null);
        }
        let p = project.as_str();
        let (next, next_edges) = match target.target {
            Target::Object { name, version, .. } => {
                let found = objects_store::values(&state.db, p, &[(name, version)]).await?;
                (found.into_iter().next().and_then(|(_, _, dump)| dump), rest)
            }
            Target::Table { digest } => match rest.split_first() {
                Some((Edge::Id(row), tail)) => {
                    (tables_store::row_of_table(&state.db, p, &digest, row).await?, tail.to_vec())
                }
                _ => return Err(ApiError::BadRequest("Table refs must have id extra".into())),
            },
            Target::Call { .. } => return Ok(Value::Null),
        };
        let Some(dump) = next else { return Ok(Value::Null) };
        value = serde_json::from_str(&dump).unwrap_or(Value::Null);
        edges = next_edges;
    }
    Err(ApiError::BadRequest(format!("a ref chain longer than {MAX_HOPS} refs")))
}
