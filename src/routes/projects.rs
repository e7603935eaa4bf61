//! What a key can browse: its projects (`GET /projects`) and a project's op names
//! (`POST /calls/op_names`), for the dashboard's pickers.
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{AppJson, Caller};
use crate::domain::{ProjectId, Timestamp};
use crate::error::Result;
use crate::state::AppState;
use crate::store::{calls as calls_store, projects as projects_store};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_projects)).routes(routes!(op_names))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectInfo {
    pub project_id: String,
    /// When the project was registered (its first write, or `weave.init`).
    pub created_at: Timestamp,
    /// The start of its earliest and latest calls (null without calls).
    pub first_call_at: Option<Timestamp>,
    pub last_call_at: Option<Timestamp>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectsRes {
    pub projects: Vec<ProjectInfo>,
}

/// The projects this key may read, by id.
#[utoipa::path(get, path = "/projects", tag = "calls",
    responses((status = 200, body = ProjectsRes), (status = 401, body = crate::error::ErrorBody)))]
async fn list_projects(State(state): State<AppState>, caller: Caller) -> Result<Json<ProjectsRes>> {
    let rows = projects_store::list(&state.db, caller.0.listable_entities()).await?;
    Ok(Json(ProjectsRes {
        projects: rows
            .into_iter()
            .map(|row| ProjectInfo {
                project_id: row.project_id,
                created_at: Timestamp(row.created_at),
                first_call_at: row.first_call_at.map(Timestamp),
                last_call_at: row.last_call_at.map(Timestamp),
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"project_id": "demo/app"}))]
pub struct OpNamesReq {
    pub project_id: ProjectId,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OpNamesRes {
    /// Distinct `op_name`s of the project's calls, in byte order (at most 1,000).
    pub op_names: Vec<String>,
}

/// Most op names listed.
const MAX_OP_NAMES: i64 = 1000;

/// The op names a project's calls use (every version of an op is its own name).
#[utoipa::path(post, path = "/calls/op_names", tag = "calls", request_body = OpNamesReq,
    responses((status = 200, body = OpNamesRes)))]
async fn op_names(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<OpNamesReq>,
) -> Result<Json<OpNamesRes>> {
    caller.authorize(&req.project_id)?;
    Ok(Json(OpNamesRes { op_names: calls_store::op_names(&state.db, req.project_id.as_str(), MAX_OP_NAMES).await? }))
}
