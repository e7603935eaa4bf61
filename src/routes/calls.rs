//! Call ingestion and reads (API.md §2.2): start, end, upsert_batch, read, update, delete,
//! query_stats.
use std::collections::HashMap;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{selection, AppJson, Caller};
use super::shared::Empty;
use crate::domain::call::{Call, EndedCall, StartedCall};
use crate::domain::costs;
use crate::domain::expr::Query;
use crate::domain::filter::CallsFilter;
use crate::domain::ingest::{self, Half, Written};
use crate::domain::ProjectId;
use crate::error::{ApiError, Result};
use crate::state::AppState;
use crate::store::calls as calls_store;
use crate::store::prices as prices_store;
use crate::store::projects;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_call))
        .routes(routes!(end_call))
        .routes(routes!(upsert_batch))
        .routes(routes!(read_call))
        .routes(routes!(update_call))
        .routes(routes!(delete_calls))
        .routes(routes!(count_calls))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"start": {"project_id": "demo/app", "id": "example-call", "trace_id": "example-trace", "op_name": "weave:///demo/app/op/example:v1", "started_at": "2025-03-10T12:00:00Z", "attributes": {}, "inputs": {"question": "hello"}}}))]
pub struct CallStartReq {
    pub start: StartedCall,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallStartRes {
    pub id: String,
    pub trace_id: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"end": {"project_id": "demo/app", "id": "example-call", "ended_at": "2025-03-10T12:00:01.5Z", "summary": {"usage": {"gpt-4o": {"prompt_tokens": 10, "completion_tokens": 5}}}, "output": "hi"}}))]
pub struct CallEndReq {
    pub end: EndedCall,
}

/// One item of an upsert batch: `{"mode": "start", "req": {"start": ...}}` or the same with `end`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "mode", content = "req", rename_all = "lowercase", deny_unknown_fields)]
pub enum BatchItem {
    Start(CallStartReq),
    End(CallEndReq),
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"batch": [{"mode": "start", "req": {"start": {"project_id": "demo/app", "id": "example-call", "trace_id": "example-trace", "op_name": "weave:///demo/app/op/example:v1", "started_at": "2025-03-10T12:00:00Z", "attributes": {}, "inputs": {"question": "hello"}}}}, {"mode": "end", "req": {"end": {"project_id": "demo/app", "id": "example-call", "ended_at": "2025-03-10T12:00:01.5Z", "summary": {"usage": {"gpt-4o": {"prompt_tokens": 10, "completion_tokens": 5}}}, "output": "hi"}}}]}))]
pub struct CallUpsertBatchReq {
    pub batch: Vec<BatchItem>,
}

/// `{"id", "trace_id"}` for a start, `{}` for an end, in input order.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum BatchItemRes {
    Start(CallStartRes),
    End(Empty),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallUpsertBatchRes {
    pub res: Vec<BatchItemRes>,
}

/// Start a call.
#[utoipa::path(post, path = "/call/start", request_body = CallStartReq, tag = "calls",
    responses((status = 200, body = CallStartRes)))]
async fn start_call(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<CallStartReq>,
) -> Result<Json<CallStartRes>> {
    let mut res = ingest(&state, &caller, vec![BatchItem::Start(req)]).await?;
    match res.pop() {
        Some(BatchItemRes::Start(started)) => Ok(Json(started)),
        _ => Err(ApiError::internal("a start produced no start result")),
    }
}

/// End a call. The end may arrive before the start.
#[utoipa::path(post, path = "/call/end", request_body = CallEndReq, tag = "calls",
    responses((status = 200, body = Empty)))]
async fn end_call(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<CallEndReq>,
) -> Result<Json<Empty>> {
    ingest(&state, &caller, vec![BatchItem::End(req)]).await?;
    Ok(Json(Empty {}))
}

/// Write starts and ends in one transaction: all apply or none.
#[utoipa::path(post, path = "/call/upsert_batch", request_body = CallUpsertBatchReq, tag = "calls",
    responses((status = 200, body = CallUpsertBatchRes)))]
async fn upsert_batch(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<CallUpsertBatchReq>,
) -> Result<Json<CallUpsertBatchRes>> {
    Ok(Json(CallUpsertBatchRes { res: ingest(&state, &caller, req.batch).await? }))
}

/// Check access, plan the batch, and write it in one transaction.
pub(crate) async fn ingest(state: &AppState, caller: &Caller, items: Vec<BatchItem>) -> Result<Vec<BatchItemRes>> {
    let halves: Vec<Half> = items
        .into_iter()
        .map(|item| match item {
            BatchItem::Start(CallStartReq { start }) => Half::Start(start),
            BatchItem::End(CallEndReq { end }) => Half::End(end),
        })
        .collect();
    for half in &halves {
        caller.authorize(half.project_id())?;
    }
    // Writers wait here, holding no connection, rather than in Postgres for the CPU.
    let _turn = state.writes.acquire().await.map_err(|_| ApiError::Busy("the server is shutting down".into()))?;
    let mut known_traces = HashMap::new();
    for (project, parents) in ingest::parents_to_look_up(&halves) {
        for (id, trace) in calls_store::trace_ids_of(&state.db, project, &parents).await? {
            known_traces.insert((project.to_string(), id), trace);
        }
    }
    let (written, writes) = ingest::plan(halves, &caller.0.user_id, &known_traces);
    let mut projects: Vec<&str> = writes.projects();
    projects.sort_unstable();
    projects.dedup();
    let mut tx = state.db.begin().await?;
    projects::register(&mut *tx, &projects).await?;
    calls_store::write(&mut tx, &writes).await?;
    tx.commit().await?;
    crate::telemetry::calls_ingested(writes.calls());
    Ok(written
        .into_iter()
        .map(|w| match w {
            Written::Start { id, trace_id } => BatchItemRes::Start(CallStartRes { id, trace_id }),
            Written::End => BatchItemRes::End(Empty {}),
        })
        .collect())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"project_id": "demo/app", "id": "q-0000", "include_costs": true}))]
pub struct CallReadReq {
    pub project_id: ProjectId,
    pub id: String,
    /// Adds `summary.weave.costs`: per model, usage, the price used and the costs.
    #[serde(default)]
    pub include_costs: Option<bool>,
    /// Accepted and ignored.
    #[serde(default)]
    pub include_storage_size: Option<bool>,
    /// Accepted and ignored.
    #[serde(default)]
    pub include_total_storage_size: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallReadRes {
    /// Null when the call is unknown, not started yet, or deleted.
    pub call: Option<Call>,
}

/// Read one call, with the computed `summary.weave` fields.
#[utoipa::path(post, path = "/call/read", request_body = CallReadReq, tag = "calls",
    responses((status = 200, body = CallReadRes)))]
async fn read_call(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<CallReadReq>,
) -> Result<Json<CallReadRes>> {
    caller.authorize(&req.project_id)?;
    let project = req.project_id.as_str();
    let include_costs = req.include_costs == Some(true);
    let Some(row) = calls_store::read(&state.db, project, &req.id, include_costs).await? else {
        return Ok(Json(CallReadRes { call: None }));
    };
    let (usage, started_at) = (row.usage(), row.started_at);
    let mut call = Call::from(row);
    if include_costs {
        let book = prices_store::book(&state.db, &state.default_prices, project).await?;
        call.attach_costs(costs::call_costs(&usage, started_at, &book));
    }
    Ok(Json(CallReadRes { call: Some(call) }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"project_id": "demo/app", "call_id": "q-0001", "display_name": "renamed"}))]
pub struct CallUpdateReq {
    pub project_id: ProjectId,
    #[serde(deserialize_with = "crate::domain::call::required_id")]
    pub call_id: String,
    /// The new name; `""` clears it (null is refused, as Weave does).
    pub display_name: Option<String>,
    /// Accepted and ignored: the key's user acts.
    #[serde(default)]
    pub wb_user_id: Option<String>,
}

/// Rename a call (`display_name`; `""` clears it). The call may arrive later: the rename is
/// kept and applies when it does, as Weave's storage allows any order.
#[utoipa::path(post, path = "/call/update", request_body = CallUpdateReq, tag = "calls",
    responses((status = 200, body = Empty)))]
async fn update_call(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<CallUpdateReq>,
) -> Result<Json<Empty>> {
    caller.authorize(&req.project_id)?;
    let Some(display_name) = req.display_name else {
        return Err(ApiError::BadRequest("One of [display_name] is required for call update".into()));
    };
    let display_name = Some(display_name.as_str()).filter(|name| !name.is_empty());
    calls_store::rename(&state.db, req.project_id.as_str(), &req.call_id, display_name).await?;
    Ok(Json(Empty {}))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"project_id": "demo/app", "call_ids": ["q-0002"]}))]
pub struct CallsDeleteReq {
    pub project_id: ProjectId,
    /// At most 1000 ids.
    #[serde(deserialize_with = "crate::domain::required_bounded_list")]
    pub call_ids: Vec<String>,
    /// Accepted and ignored.
    #[serde(default)]
    pub wb_user_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallsDeleteRes {
    /// Calls newly deleted, descendants included.
    pub num_deleted: i64,
}

/// Soft-delete calls and all their descendants.
#[utoipa::path(post, path = "/calls/delete", request_body = CallsDeleteReq, tag = "calls",
    responses((status = 200, body = CallsDeleteRes)))]
async fn delete_calls(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<CallsDeleteReq>,
) -> Result<Json<CallsDeleteRes>> {
    caller.authorize(&req.project_id)?;
    let num_deleted = calls_store::delete_subtrees(&state.db, req.project_id.as_str(), &req.call_ids).await?;
    Ok(Json(CallsDeleteRes { num_deleted }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"project_id": "demo/app", "filter": {"trace_roots_only": true}, "query": {"$expr": {"$eq": [{"$getField": "summary.weave.status"}, {"$literal": "error"}]}}}))]
pub struct CallsQueryStatsReq {
    pub project_id: ProjectId,
    #[serde(default)]
    pub filter: Option<CallsFilter>,
    /// A query expression (`{"$expr": ...}`).
    #[serde(default)]
    pub query: Option<Query>,
    /// Count at most this many; `has_more` says whether there were more.
    #[serde(default)]
    pub limit: Option<u32>,
    /// Accepted and ignored.
    #[serde(default)]
    pub expand_columns: Option<Vec<String>>,
    /// Accepted and ignored.
    #[serde(default)]
    pub include_total_storage_size: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallsQueryStatsRes {
    pub count: i64,
    /// Present with `limit`: whether more calls match than were counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub has_more: Option<bool>,
}

/// Count the calls that match a filter.
#[utoipa::path(post, path = "/calls/query_stats", request_body = CallsQueryStatsReq, tag = "calls",
    responses((status = 200, body = CallsQueryStatsRes)))]
async fn count_calls(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<CallsQueryStatsReq>,
) -> Result<Json<CallsQueryStatsRes>> {
    caller.authorize(&req.project_id)?;
    let selection = selection(&req.project_id, req.filter, req.query.as_ref())?;
    let project = req.project_id.as_str();
    Ok(Json(match req.limit {
        None => CallsQueryStatsRes {
            count: calls_store::count(&state.db, project, &selection, None).await?,
            has_more: None,
        },
        Some(limit) => {
            let limit = i64::from(limit);
            let counted = calls_store::count(&state.db, project, &selection, Some(limit + 1)).await?;
            CallsQueryStatsRes { count: counted.min(limit), has_more: Some(counted > limit) }
        }
    }))
}
