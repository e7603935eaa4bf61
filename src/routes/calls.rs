//! Call ingestion and reads (API.md §2.2): start, end, upsert_batch, read, update, delete,
//! query_stats.
use std::collections::{BTreeMap, HashMap};

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{selection, AppJson, Caller};
use crate::domain::call::{self, Call, EndedCall, StartedCall};
use crate::domain::costs::PriceBook;
use crate::domain::filter::CallsFilter;
use crate::domain::query::Query;
use crate::domain::usage::usage_rows;
use crate::domain::{ProjectId, Timestamp};
use crate::error::{ApiError, Result};
use crate::store::calls::{self as calls_store, CallRow, EndRow, StartRow};
use crate::store::prices as prices_store;
use crate::AppState;

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
pub struct CallEndReq {
    pub end: EndedCall,
}

/// An empty JSON object (no other properties, so a batch result is exactly one of its kinds).
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// One item of an upsert batch: `{"mode": "start", "req": {"start": ...}}` or the same with `end`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "mode", content = "req", rename_all = "lowercase", deny_unknown_fields)]
pub enum BatchItem {
    Start(CallStartReq),
    End(CallEndReq),
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
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
        _ => Err(ApiError::Internal("a start produced no start result".into())),
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

/// Check access, resolve ids, and write a batch in one transaction.
pub(crate) async fn ingest(state: &AppState, caller: &Caller, items: Vec<BatchItem>) -> Result<Vec<BatchItemRes>> {
    for item in &items {
        caller.authorize(match item {
            BatchItem::Start(req) => &req.start.project_id,
            BatchItem::End(req) => &req.end.project_id,
        })?;
    }
    let known_traces = parent_traces_in_db(state, &items).await?;
    let mut batch_traces: HashMap<(String, String), String> = HashMap::new();
    let mut starts = Vec::new();
    let mut ends = Vec::new();
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        match item {
            BatchItem::Start(CallStartReq { start }) => {
                let row = start_row(start, &caller.0.user_id, &batch_traces, &known_traces);
                batch_traces.insert((row.project_id.clone(), row.id.clone()), row.trace_id.clone());
                results.push(BatchItemRes::Start(CallStartRes { id: row.id.clone(), trace_id: row.trace_id.clone() }));
                starts.push(row);
            }
            BatchItem::End(CallEndReq { end }) => {
                ends.push(end_row(end));
                results.push(BatchItemRes::End(Empty {}));
            }
        }
    }
    let (complete, starts, ends) = pair_halves(
        last_per_call(starts, |r| (r.project_id.clone(), r.id.clone())),
        last_per_call(ends, |r| (r.project_id.clone(), r.id.clone())),
    );
    let mut tx = state.db.begin().await?;
    calls_store::upsert_complete(&mut tx, &complete).await?;
    calls_store::upsert_starts(&mut tx, &starts).await?;
    calls_store::upsert_ends(&mut tx, &ends).await?;
    tx.commit().await?;
    state.metrics.add_calls_ingested(complete.len() + starts.len() + ends.len());
    Ok(results)
}

/// Trace ids of the stored parents of starts that name a parent but no trace.
async fn parent_traces_in_db(state: &AppState, items: &[BatchItem]) -> Result<HashMap<(String, String), String>> {
    let mut wanted: HashMap<&str, Vec<String>> = HashMap::new();
    for item in items {
        if let BatchItem::Start(CallStartReq { start }) = item {
            if let (None, Some(parent)) = (&start.trace_id, &start.parent_id) {
                wanted.entry(start.project_id.as_str()).or_default().push(parent.clone());
            }
        }
    }
    let mut found = HashMap::new();
    for (project, parents) in wanted {
        for (id, trace) in calls_store::trace_ids_of(&state.db, project, &parents).await? {
            found.insert((project.to_string(), id), trace);
        }
    }
    Ok(found)
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn start_row(
    start: StartedCall,
    user: &str,
    batch_traces: &HashMap<(String, String), String>,
    known_traces: &HashMap<(String, String), String>,
) -> StartRow {
    let project = start.project_id.as_str().to_string();
    let trace_id = start.trace_id.clone().unwrap_or_else(|| {
        start
            .parent_id
            .as_ref()
            .and_then(|parent| {
                let key = (project.clone(), parent.clone());
                batch_traces.get(&key).or_else(|| known_traces.get(&key)).cloned()
            })
            .unwrap_or_else(new_id)
    });
    let inputs = Value::Object(start.inputs);
    StartRow {
        input_refs: call::find_refs([&inputs]),
        id: start.id.unwrap_or_else(new_id),
        project_id: project,
        trace_id,
        parent_id: start.parent_id,
        thread_id: start.thread_id,
        turn_id: start.turn_id,
        op_name: start.op_name,
        display_name: start.display_name,
        started_at: start.started_at.0,
        attributes: Value::Object(start.attributes),
        inputs,
        otel_dump: start.otel_dump.map(Value::Object),
        wb_user_id: user.to_string(),
        wb_run_id: start.wb_run_id,
        wb_run_step: start.wb_run_step,
    }
}

fn end_row(end: EndedCall) -> EndRow {
    let summary = Value::Object(end.summary);
    let output = end.output.filter(|o| !o.is_null());
    EndRow {
        project_id: end.project_id.as_str().to_string(),
        usage: usage_rows(Some(&summary)),
        output_refs: call::find_refs(output.as_ref()),
        id: end.id,
        trace_id: end.trace_id,
        ended_at: end.ended_at.0,
        exception: end.exception,
        output,
        summary,
        wb_run_step_end: end.wb_run_step_end,
    }
}

/// Split a batch's halves into calls whose start and end both arrived (written as one row) and
/// lone starts and ends. Both inputs are sorted by key, as `last_per_call` leaves them.
#[allow(clippy::type_complexity)]
fn pair_halves(starts: Vec<StartRow>, ends: Vec<EndRow>) -> (Vec<(StartRow, EndRow)>, Vec<StartRow>, Vec<EndRow>) {
    let mut ends_by_key: BTreeMap<(String, String), EndRow> =
        ends.into_iter().map(|e| ((e.project_id.clone(), e.id.clone()), e)).collect();
    let mut complete = Vec::new();
    let mut lone_starts = Vec::new();
    for start in starts {
        match ends_by_key.remove(&(start.project_id.clone(), start.id.clone())) {
            Some(end) => complete.push((start, end)),
            None => lone_starts.push(start),
        }
    }
    (complete, lone_starts, ends_by_key.into_values().collect())
}

/// Keep the last item written for each call (a repeated start or end in one batch: last wins),
/// sorted by key so concurrent batches lock rows in the same order and cannot deadlock.
fn last_per_call<T>(rows: Vec<T>, key: impl Fn(&T) -> (String, String)) -> Vec<T> {
    let mut last: BTreeMap<(String, String), T> = BTreeMap::new();
    for row in rows {
        last.insert(key(&row), row);
    }
    last.into_values().collect()
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
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
    let mut call = call_from_row(row);
    if include_costs {
        let book = PriceBook::new(prices_store::for_project(&state.db, project).await?);
        super::costs::attach_costs(&mut call, super::costs::call_costs(&usage, started_at, &book));
    }
    Ok(Json(CallReadRes { call: Some(call) }))
}

/// The API's view of a stored call.
pub(crate) fn call_from_row(row: CallRow) -> Call {
    let op_name = row.op_name.unwrap_or_default();
    let trace_name = call::trace_name(row.display_name.as_deref(), &op_name).to_string();
    let summary = call::summary_with_computed_fields(
        row.summary,
        row.exception.as_deref(),
        row.ended_at.is_some(),
        row.latency_ms,
        &trace_name,
    );
    Call {
        id: row.id,
        project_id: row.project_id,
        trace_id: row.trace_id.unwrap_or_default(),
        op_name,
        display_name: row.display_name,
        parent_id: row.parent_id,
        thread_id: row.thread_id,
        turn_id: row.turn_id,
        started_at: Timestamp::from(row.started_at),
        ended_at: row.ended_at.map(Timestamp::from),
        exception: row.exception,
        attributes: row.attributes.unwrap_or_else(|| Value::Object(Default::default())),
        inputs: row.inputs.unwrap_or_else(|| Value::Object(Default::default())),
        output: row.output.unwrap_or(Value::Null),
        summary,
        wb_user_id: row.wb_user_id,
        wb_run_id: row.wb_run_id,
        wb_run_step: row.wb_run_step,
        wb_run_step_end: row.wb_run_step_end,
        deleted_at: row.deleted_at.map(Timestamp::from),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallUpdateReq {
    pub project_id: ProjectId,
    pub call_id: String,
    pub display_name: Option<String>,
    /// Accepted and ignored: the key's user acts.
    #[serde(default)]
    pub wb_user_id: Option<String>,
}

/// Rename a call (`display_name`). 404 when the call is not visible.
#[utoipa::path(post, path = "/call/update", request_body = CallUpdateReq, tag = "calls",
    responses((status = 200, body = Empty), (status = 404, description = "No such call", body = crate::error::ErrorBody)))]
async fn update_call(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<CallUpdateReq>,
) -> Result<Json<Empty>> {
    caller.authorize(&req.project_id)?;
    if calls_store::update_display_name(&state.db, req.project_id.as_str(), &req.call_id, req.display_name.as_deref())
        .await?
    {
        Ok(Json(Empty {}))
    } else {
        Err(ApiError::NotFound(format!("Call {} not found", req.call_id)))
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallsDeleteReq {
    pub project_id: ProjectId,
    /// At most 1000 ids.
    #[serde(deserialize_with = "required_bounded_list")]
    pub call_ids: Vec<String>,
    /// Accepted and ignored.
    #[serde(default)]
    pub wb_user_id: Option<String>,
}

pub(crate) fn required_bounded_list<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<String>, D::Error> {
    crate::domain::bounded_list(d).map(Option::unwrap_or_default)
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
    let selection = selection(req.filter, req.query.as_ref())?;
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
