//! `POST /trace/usage` and `POST /calls/usage` (API.md §5): per-call usage with descendant
//! rollup. One query fetches the set's parent links and each call's own usage; the rollup is
//! one post-order pass in Rust (`domain::subtree`), cheaper than a recursive CTE that would
//! re-aggregate every subtree.
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{selection, AppJson, Caller};
use crate::domain::costs::{self, Cost};
use crate::domain::expr::Query;
use crate::domain::filter::CallsFilter;
use crate::domain::subtree::{subtree_totals, UsageMap, UsageTotals};
use crate::domain::usage::UsageRow;
use crate::domain::ProjectId;
use crate::error::{ApiError, Result, ValidationDetail};
use crate::state::AppState;
use crate::store::prices as prices_store;
use crate::store::usage::{self as usage_store, CallLink};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(trace_usage)).routes(routes!(calls_usage))
}

fn default_limit() -> i64 {
    10_000
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"project_id": "demo/app", "filter": {"trace_ids": ["trace-0000"]}, "include_costs": true}))]
pub struct TraceUsageReq {
    pub project_id: ProjectId,
    #[serde(default)]
    pub filter: Option<CallsFilter>,
    /// A query expression (`{"$expr": ...}`).
    #[serde(default)]
    pub query: Option<Query>,
    #[serde(default)]
    pub include_costs: bool,
    /// At most this many calls are selected (≥ 1).
    #[serde(default = "default_limit")]
    pub limit: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"project_id": "demo/app", "call_ids": ["q-0000"], "include_costs": true}))]
pub struct CallsUsageReq {
    pub project_id: ProjectId,
    /// Any calls of the traces to sum (≤ 1000).
    #[serde(deserialize_with = "crate::domain::required_bounded_list")]
    pub call_ids: Vec<String>,
    #[serde(default)]
    pub include_costs: bool,
    /// Most non-deleted calls one trace may have (≥ 1); a larger trace answers 413.
    #[serde(default = "default_limit")]
    pub limit: i64,
}

/// Usage of one model, summed over a call and its descendants.
#[derive(Debug, Serialize, ToSchema)]
pub struct LlmAggregatedUsage {
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    pub cache_read_input_tokens: i64,
    pub cache_creation_input_tokens: i64,
    /// Null unless `include_costs`.
    pub prompt_tokens_total_cost: Option<f64>,
    pub completion_tokens_total_cost: Option<f64>,
    pub cache_read_input_tokens_total_cost: Option<f64>,
    pub cache_creation_input_tokens_total_cost: Option<f64>,
}

impl LlmAggregatedUsage {
    fn of(u: &UsageTotals, include_costs: bool) -> Self {
        let priced = |v: f64| include_costs.then_some(v);
        let c = &u.counters;
        LlmAggregatedUsage {
            requests: c.requests,
            prompt_tokens: c.input_tokens,
            completion_tokens: c.output_tokens,
            total_tokens: c.total_tokens,
            cache_read_input_tokens: c.cache_read_input_tokens,
            cache_creation_input_tokens: c.cache_creation_input_tokens,
            prompt_tokens_total_cost: priced(u.cost.input),
            completion_tokens_total_cost: priced(u.cost.output),
            cache_read_input_tokens_total_cost: priced(u.cost.cache_read),
            cache_creation_input_tokens_total_cost: priced(u.cost.cache_creation),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageRes {
    /// Call id → model → usage.
    #[schema(value_type = std::collections::BTreeMap<String, std::collections::BTreeMap<String, LlmAggregatedUsage>>)]
    pub call_usage: CallUsage,
    /// Calls without an end, ascending.
    pub unfinished_call_ids: Vec<String>,
}

/// Call id → model → usage, written as that map straight from the rollup's totals: a 10,000-call
/// trace would otherwise build (and free) 10,000 maps only to serialize them.
#[derive(Debug)]
pub struct CallUsage {
    /// By id, ascending, each id once.
    calls: Vec<(String, UsageMap)>,
    include_costs: bool,
}

impl CallUsage {
    fn new(mut calls: Vec<(String, UsageMap)>, include_costs: bool) -> Self {
        calls.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        calls.dedup_by(|a, b| a.0 == b.0);
        CallUsage { calls, include_costs }
    }
}

impl Serialize for CallUsage {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        struct Models<'a>(&'a UsageMap, bool);
        impl Serialize for Models<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
                serializer.collect_map(self.0.iter().map(|(model, u)| (model, LlmAggregatedUsage::of(u, self.1))))
            }
        }
        serializer.collect_map(self.calls.iter().map(|(id, usage)| (id, Models(usage, self.include_costs))))
    }
}

fn check_limit(limit: i64) -> Result<()> {
    match ValidationDetail::at_least("limit", limit, 1) {
        Some(problem) => Err(ApiError::Validation(vec![problem])),
        None => Ok(()),
    }
}

/// Usage of every selected call, each with its descendants within the selection.
#[utoipa::path(post, path = "/trace/usage", request_body = TraceUsageReq, tag = "usage",
    responses((status = 200, body = UsageRes)))]
async fn trace_usage(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<TraceUsageReq>,
) -> Result<Json<UsageRes>> {
    caller.authorize(&req.project_id)?;
    let _heavy = state.heavy.enter(&caller.0.key_id).await?;
    check_limit(req.limit)?;
    let project = req.project_id.as_str();
    let selection = selection(&req.project_id, req.filter, req.query.as_ref())?;
    let calls = usage_store::select_calls(&state.db, project, &selection, req.limit).await?;
    let totals = rolled_up(&state, project, &calls, req.include_costs).await?;
    let unfinished_call_ids = unfinished(&calls);
    let call_usage = CallUsage::new(calls.into_iter().map(|call| call.id).zip(totals).collect(), req.include_costs);
    Ok(Json(UsageRes { call_usage, unfinished_call_ids }))
}

/// Usage of the given calls, each over its complete subtree (all of its trace is loaded).
#[utoipa::path(post, path = "/calls/usage", request_body = CallsUsageReq, tag = "usage",
    responses((status = 200, body = UsageRes), (status = 413, description = "A trace has more calls than `limit`", body = crate::error::ErrorBody)))]
async fn calls_usage(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<CallsUsageReq>,
) -> Result<Json<UsageRes>> {
    caller.authorize(&req.project_id)?;
    let _heavy = state.heavy.enter(&caller.0.key_id).await?;
    check_limit(req.limit)?;
    let project = req.project_id.as_str();
    if req.call_ids.is_empty() {
        return Ok(Json(UsageRes { call_usage: CallUsage::new(Vec::new(), false), unfinished_call_ids: Vec::new() }));
    }
    let traces = usage_store::traces_of(&state.db, project, &req.call_ids).await?;
    if traces.iter().any(|(_, size)| *size > req.limit) {
        return Err(ApiError::PayloadTooLarge(format!(
            "a trace exceeds the usage limit of {} calls; raise limit",
            req.limit
        )));
    }
    let trace_ids: Vec<String> = traces.into_iter().map(|(id, _)| id).collect();
    let calls = usage_store::calls_of_traces(&state.db, project, &trace_ids).await?;
    let totals = rolled_up(&state, project, &calls, req.include_costs).await?;
    let mut totals: HashMap<String, UsageMap> = calls.iter().map(|c| c.id.clone()).zip(totals).collect();
    let asked: BTreeSet<String> = req.call_ids.into_iter().collect();
    let call_usage = asked
        .into_iter()
        .map(|id| {
            let usage = totals.remove(&id).unwrap_or_default();
            (id, usage)
        })
        .collect();
    Ok(Json(UsageRes {
        call_usage: CallUsage::new(call_usage, req.include_costs),
        unfinished_call_ids: unfinished(&calls),
    }))
}

/// Each call's usage with its in-set descendants, in the order of `calls`.
async fn rolled_up(state: &AppState, project: &str, calls: &[CallLink], include_costs: bool) -> Result<Vec<UsageMap>> {
    let book = if include_costs {
        prices_store::book(&state.db, &state.default_prices, project).await?
    } else {
        Default::default()
    };
    // Each model's name once per request, shared by every call that names it.
    let mut names: HashMap<&str, Arc<str>> = HashMap::new();
    let own = calls
        .iter()
        .map(|call| {
            let mut own = UsageMap::default();
            for UsageRow { model, counters } in &call.usage.0 {
                let cost = if include_costs {
                    costs::cost(counters, book.price_for(model, call.started_at))
                } else {
                    Cost::default()
                };
                let totals = UsageTotals { counters: *counters, cost };
                // An entry whose six counters are all zero is dropped, unless it costs something (§5.1).
                if !totals.counters.is_zero() || totals.cost.total() != 0.0 {
                    let name = names.entry(model.as_str()).or_insert_with(|| Arc::from(model.as_str()));
                    own.add(name, &totals);
                }
            }
            own
        })
        .collect();
    let links: Vec<(&str, Option<&str>)> = calls.iter().map(|c| (c.id.as_str(), c.parent_id.as_deref())).collect();
    Ok(subtree_totals(&links, own))
}

fn unfinished(calls: &[CallLink]) -> Vec<String> {
    calls.iter().filter(|c| c.ended_at.is_none()).map(|c| c.id.clone()).collect::<BTreeSet<_>>().into_iter().collect()
}
