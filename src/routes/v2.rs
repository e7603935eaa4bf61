//! The SDK's newer write paths: `weave` 0.54 batches finished calls to
//! `/v2/{entity}/{project}/calls/complete` by default, and sends calls that must show while
//! running to `/v2/{entity}/{project}/call/start|end`. They write exactly what the v1 endpoints
//! write, so the SDK works unchanged whatever its `use_calls_complete` setting.
use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::calls::{ingest, BatchItem, BatchItemRes, CallEndReq, CallStartReq, CallStartRes};
use super::extract::{AppJson, Caller};
use super::shared::Empty;
use crate::domain::call::CompletedCall;
use crate::domain::ProjectId;
use crate::error::{ApiError, Result, ValidationDetail};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(complete_calls)).routes(routes!(start_call_v2)).routes(routes!(end_call_v2))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"batch": [{"project_id": "demo/app", "id": "example-complete", "trace_id": "example-trace", "op_name": "weave:///demo/app/op/example:v1", "started_at": "2025-03-10T12:00:00Z", "attributes": {}, "inputs": {"question": "hello"}, "ended_at": "2025-03-10T12:00:01.5Z", "summary": {}, "output": "hi"}]}))]
pub struct CallsCompleteReq {
    pub batch: Vec<CompletedCall>,
}

/// The project named by the path; every item must belong to it.
fn path_project(entity: &str, project: &str) -> Result<ProjectId> {
    ProjectId::parse(&format!("{entity}/{project}")).ok_or_else(|| {
        ApiError::Validation(vec![ValidationDetail::new(
            "value_error",
            vec![json!("path"), json!("project")],
            "Value error, the path must name entity/project",
            json!(project),
        )])
    })
}

fn check_same_project(expected: &ProjectId, actual: &ProjectId, loc: Vec<serde_json::Value>) -> Result<()> {
    if expected == actual {
        return Ok(());
    }
    Err(ApiError::Validation(vec![ValidationDetail::new(
        "value_error",
        loc,
        format!("Value error, project_id must be {expected} as in the path"),
        json!(actual),
    )]))
}

/// Write finished calls (start and end together) in one transaction.
#[utoipa::path(post, path = "/v2/{entity}/{project}/calls/complete", request_body = CallsCompleteReq, tag = "calls",
    params(("entity" = String, Path), ("project" = String, Path)),
    responses((status = 200, body = Empty)))]
async fn complete_calls(
    State(state): State<AppState>,
    Path((entity, project)): Path<(String, String)>,
    caller: Caller,
    AppJson(req): AppJson<CallsCompleteReq>,
) -> Result<Json<Empty>> {
    let project = path_project(&entity, &project)?;
    let mut items = Vec::with_capacity(req.batch.len() * 2);
    for (index, call) in req.batch.into_iter().enumerate() {
        check_same_project(
            &project,
            &call.project_id,
            vec![json!("body"), json!("batch"), json!(index), json!("project_id")],
        )?;
        let (start, end) = call.split();
        items.push(BatchItem::Start(CallStartReq { start }));
        items.push(BatchItem::End(CallEndReq { end }));
    }
    ingest(&state, &caller, items).await?;
    Ok(Json(Empty {}))
}

/// Start a call (same as `/call/start`).
#[utoipa::path(post, path = "/v2/{entity}/{project}/call/start", request_body = CallStartReq, tag = "calls",
    params(("entity" = String, Path), ("project" = String, Path)),
    responses((status = 200, body = CallStartRes)))]
async fn start_call_v2(
    State(state): State<AppState>,
    Path((entity, project)): Path<(String, String)>,
    caller: Caller,
    AppJson(req): AppJson<CallStartReq>,
) -> Result<Json<CallStartRes>> {
    check_same_project(
        &path_project(&entity, &project)?,
        &req.start.project_id,
        vec![json!("body"), json!("start"), json!("project_id")],
    )?;
    match ingest(&state, &caller, vec![BatchItem::Start(req)]).await?.pop() {
        Some(BatchItemRes::Start(res)) => Ok(Json(res)),
        _ => Err(ApiError::internal("a start produced no start result")),
    }
}

/// End a call (same as `/call/end`).
#[utoipa::path(post, path = "/v2/{entity}/{project}/call/end", request_body = CallEndReq, tag = "calls",
    params(("entity" = String, Path), ("project" = String, Path)),
    responses((status = 200, body = Empty)))]
async fn end_call_v2(
    State(state): State<AppState>,
    Path((entity, project)): Path<(String, String)>,
    caller: Caller,
    AppJson(req): AppJson<CallEndReq>,
) -> Result<Json<Empty>> {
    check_same_project(
        &path_project(&entity, &project)?,
        &req.end.project_id,
        vec![json!("body"), json!("end"), json!("project_id")],
    )?;
    ingest(&state, &caller, vec![BatchItem::End(req)]).await?;
    Ok(Json(Empty {}))
}
