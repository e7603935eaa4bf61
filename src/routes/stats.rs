//! `POST /calls/stats` (API.md §4): validate, lay the bucket grid, plan what rollups answer,
//! let the store stream rows and slots into the tallies of `stats::tally`, render.
use std::collections::HashSet;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{selection, AppJson, Caller};
use crate::domain::expr::Query;
use crate::domain::filter::CallsFilter;
use crate::domain::{ProjectId, Timestamp};
use crate::error::{ApiError, Result, ValidationDetail};
use crate::state::AppState;
use crate::stats::aggregate::{Aggregation, MetricSpec, ValueKind};
use crate::stats::buckets::BucketGrid;
use crate::stats::granularity;
use crate::stats::slots::{self, Plan as ReadPlan};
use crate::stats::tally::{CallMetric, CallTally, UsageMetric, UsageTally};
use crate::store::prices as prices_store;
use crate::store::slots::{self as slots_store, Stale};
use crate::store::stats as stats_store;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(call_stats))
}

/// One metric to compute per bucket.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricReq<M> {
    pub metric: M,
    /// Default `["sum"]` (also when `[]` and no percentiles are given).
    #[serde(default)]
    pub aggregations: Option<Vec<Aggregation>>,
    /// Each 0 ≤ P ≤ 100; exact, by linear interpolation.
    #[serde(default)]
    pub percentiles: Option<Vec<f64>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"project_id": "demo/app", "start": "2025-03-08T05:00:00Z", "end": "2025-03-11T04:00:00Z", "granularity": 86400, "timezone": "America/New_York", "call_metrics": [{"metric": "latency_ms", "aggregations": ["avg"], "percentiles": [50, 99]}], "usage_metrics": [{"metric": "total_tokens"}, {"metric": "total_cost"}]}))]
pub struct CallStatsReq {
    pub project_id: ProjectId,
    /// Inclusive.
    pub start: Timestamp,
    /// Exclusive; default now.
    #[serde(default)]
    pub end: Option<Timestamp>,
    /// Seconds (≥ 1); default chosen from the window, raised to at most 10,000 buckets.
    #[serde(default)]
    pub granularity: Option<i64>,
    /// IANA timezone the buckets align to; default `UTC`.
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub call_metrics: Option<Vec<MetricReq<CallMetric>>>,
    #[serde(default)]
    pub usage_metrics: Option<Vec<MetricReq<UsageMetric>>>,
    #[serde(default)]
    pub filter: Option<CallsFilter>,
    /// A query expression (`{"$expr": ...}`) further selecting calls (an extension of this server).
    #[serde(default)]
    pub query: Option<Query>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallStatsRes {
    pub start: Timestamp,
    pub end: Timestamp,
    pub granularity: i64,
    pub timezone: String,
    /// One object per bucket: `timestamp`, the metric keys, `count`.
    #[schema(value_type = Vec<Object>)]
    pub call_buckets: Vec<Map<String, Value>>,
    /// One object per (bucket, model): `timestamp`, `model`, the metric keys, `count`.
    #[schema(value_type = Vec<Object>)]
    pub usage_buckets: Vec<Map<String, Value>>,
}

/// A validated request.
struct Plan {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    granularity: i64,
    tz: Tz,
    call_metrics: Vec<(CallMetric, MetricSpec)>,
    usage_metrics: Vec<(UsageMetric, MetricSpec)>,
}

/// Time-bucketed call and usage metrics.
#[utoipa::path(post, path = "/calls/stats", request_body = CallStatsReq, tag = "stats",
    responses((status = 200, body = CallStatsRes)))]
async fn call_stats(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<CallStatsReq>,
) -> Result<Json<CallStatsRes>> {
    caller.authorize(&req.project_id)?;
    let _heavy = state.heavy.enter(&caller.0.key_id).await?;
    let limits = &state.settings.limits;
    let plan = validate(&req, state.settings.max_stats_range, limits.stats_max_percentiles)?;
    let grid = BucketGrid::new(plan.start, plan.end, plan.granularity, plan.tz);
    // The answer's size is known but for the number of models: refuse what cannot fit, and
    // stop a usage answer that outgrows the limit as models turn up.
    let keys = |specs: &mut dyn Iterator<Item = &MetricSpec>| {
        specs.map(|m| m.aggregations.len() + m.percentiles.len()).sum::<usize>()
    };
    let call_values = if plan.call_metrics.is_empty() {
        0
    } else {
        grid.len() * (2 + keys(&mut plan.call_metrics.iter().map(|(_, s)| s)))
    };
    let per_model = grid.len() * (4 + keys(&mut plan.usage_metrics.iter().map(|(_, s)| s)));
    let asked = call_values + if plan.usage_metrics.is_empty() { 0 } else { per_model };
    if asked > limits.stats_max_values {
        return Err(too_big(asked, limits.stats_max_values));
    }
    let max_models = (limits.stats_max_values - call_values) / per_model.max(1);
    let selection = selection(&req.project_id, req.filter, req.query.as_ref())?;
    let project = req.project_id.as_str();
    let db = &state.db;

    let wants_calls = !plan.call_metrics.is_empty() && !grid.is_empty();
    let wants_usage = !plan.usage_metrics.is_empty() && !grid.is_empty();
    let wants_costs = plan.usage_metrics.iter().any(|(m, _)| m.is_cost());
    // Costs are priced in memory from the project's (small) price book.
    let book = if wants_usage && wants_costs {
        Some(prices_store::book(db, &state.default_prices, project).await?)
    } else {
        None
    };

    // Decide before reading what rollups answer: whole quarter hours, when the filter and the
    // grid allow; for usage only sums, averages and counts (rollups hold sums), and never a
    // slot in which a price takes effect (its sums would mix two prices).
    let slot_filter = selection.slot_filter();
    let split = slot_filter.as_ref().and_then(|_| slots::split(&grid, plan.start, plan.end));
    let mut call_plan = ReadPlan::new(split, plan.start, plan.end);
    let summable = plan.usage_metrics.iter().all(|(_, spec)| {
        spec.percentiles.is_empty()
            && spec.aggregations.iter().all(|a| matches!(a, Aggregation::Sum | Aggregation::Avg | Aggregation::Count))
    });
    let mut usage_plan = match &book {
        _ if !summable => ReadPlan::raw(plan.start, plan.end),
        Some(book) => call_plan.without(book.effective_dates()),
        None => call_plan.clone(),
    };
    // Stale slots (changed since their last rebuild by writes that did not append their own
    // rollup rows) are read raw too.
    let refreshed = std::time::Instant::now();
    let mut stale = 0;
    if let Some(span) = call_plan.slot_span().filter(|_| wants_calls || wants_usage) {
        let slots = slots_store::stale_or_refresh(db, project, span, Stale::Uncovered).await?;
        stale = slots.len();
        call_plan = call_plan.without_slots(slots.iter().copied());
        usage_plan = usage_plan.without_slots(slots);
    }
    tracing::debug!(
        call_path = path_name(&call_plan),
        usage_path = path_name(&usage_plan),
        stale_slots = stale,
        refresh_ms = refreshed.elapsed().as_secs_f64() * 1000.0,
        "stats plan"
    );

    let slot_filter = slot_filter.unwrap_or_default();
    let calls = async {
        let mut tally = CallTally::new(&grid, &plan.call_metrics);
        if wants_calls {
            stats_store::tally_calls(db, project, &call_plan, &slot_filter, &selection, &mut tally).await?;
        }
        Ok::<_, ApiError>(if wants_calls { tally.render() } else { Vec::new() })
    };
    let usage = async {
        let mut tally = UsageTally::new(&grid, &plan.usage_metrics, book.as_deref(), max_models);
        if wants_usage {
            stats_store::tally_usage(db, project, &usage_plan, &slot_filter, &selection, &mut tally).await?;
        }
        if tally.models_refused() {
            return Err(too_big(call_values + per_model * (max_models + 1), limits.stats_max_values));
        }
        Ok::<_, ApiError>(if wants_usage { tally.render() } else { Vec::new() })
    };
    // The two streams are independent: run them on two connections at once.
    let (call_buckets, usage_buckets) = tokio::try_join!(calls, usage)?;

    Ok(Json(CallStatsRes {
        start: Timestamp::from(plan.start),
        end: Timestamp::from(plan.end),
        granularity: plan.granularity,
        timezone: req.timezone.unwrap_or_else(|| "UTC".into()),
        call_buckets,
        usage_buckets,
    }))
}

/// The 413 of an answer over the values limit.
fn too_big(values: usize, limit: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "the answer would hold more than {limit} values ({values}: buckets × keys × models); \
         ask for a larger granularity, a shorter window, fewer metrics or percentiles"
    ))
}

/// How a read plan gets its rows, for the log.
fn path_name(plan: &ReadPlan) -> &'static str {
    match (plan.slots.is_empty(), plan.raw.is_empty()) {
        (true, _) => "raw",
        (false, true) => "rollups",
        (false, false) => "rollups+raw",
    }
}

/// Check everything API.md §4.1 asks of a request, reporting every problem found.
fn validate(req: &CallStatsReq, max_range: chrono::Duration, max_percentiles: usize) -> Result<Plan> {
    let mut problems = Vec::new();
    let start = req.start.0;
    let end = req.end.map_or_else(|| Timestamp::now().0, |t| t.0);
    if end < start {
        problems.push(ValidationDetail::new(
            "value_error",
            vec![json!("body")],
            "CallStatsReq end must be after start",
            Value::Null,
        ));
    } else if end - start > max_range {
        let msg = format!("CallStatsReq date range cannot exceed {} days", max_range.num_days());
        problems.push(ValidationDetail::new("value_error", vec![json!("body")], msg, Value::Null));
    }
    problems.extend(req.granularity.and_then(|g| ValidationDetail::at_least("granularity", g, 1)));
    let timezone = req.timezone.as_deref().unwrap_or("UTC");
    let tz = timezone.parse::<Tz>().ok();
    if tz.is_none() {
        problems.push(ValidationDetail::new(
            "value_error",
            vec![json!("body"), json!("timezone")],
            format!("Value error, unknown timezone {timezone:?}: use an IANA name such as America/New_York"),
            json!(timezone),
        ));
    }
    let call_metrics = metric_specs(
        "call_metrics",
        req.call_metrics.as_deref().unwrap_or_default(),
        &mut problems,
        CallMetric::describe,
        max_percentiles,
    );
    let usage_metrics = metric_specs(
        "usage_metrics",
        req.usage_metrics.as_deref().unwrap_or_default(),
        &mut problems,
        UsageMetric::describe,
        max_percentiles,
    );
    match tz {
        Some(tz) if problems.is_empty() => Ok(Plan {
            start,
            end,
            granularity: granularity::choose(end - start, req.granularity),
            tz,
            call_metrics,
            usage_metrics,
        }),
        _ => Err(ApiError::Validation(problems)),
    }
}

/// Resolve defaults and report repeats and out-of-range percentiles of one metric list.
fn metric_specs<M: Copy + Eq + std::hash::Hash>(
    list_name: &str,
    requested: &[MetricReq<M>],
    problems: &mut Vec<ValidationDetail>,
    describe: impl Fn(M) -> (&'static str, ValueKind),
    max_percentiles: usize,
) -> Vec<(M, MetricSpec)> {
    let mut seen_metrics = HashSet::new();
    let mut specs = Vec::new();
    for (index, req) in requested.iter().enumerate() {
        let loc = |tail: &[Value]| {
            let mut loc = vec![json!("body"), json!(list_name), json!(index)];
            loc.extend_from_slice(tail);
            loc
        };
        let (name, kind) = describe(req.metric);
        if !seen_metrics.insert(req.metric) {
            problems.push(ValidationDetail::new(
                "value_error",
                loc(&[json!("metric")]),
                format!("Value error, metric {name} is listed twice"),
                json!(name),
            ));
        }
        let mut percentiles = req.percentiles.clone().unwrap_or_default();
        if percentiles.len() > max_percentiles {
            problems.push(ValidationDetail::new(
                "too_long",
                loc(&[json!("percentiles")]),
                format!("List should have at most {max_percentiles} items after validation, not {}", percentiles.len()),
                Value::Null,
            ));
            percentiles.truncate(max_percentiles);
        }
        let mut seen_percentiles: HashSet<u64> = HashSet::new();
        for (i, &p) in percentiles.iter().enumerate() {
            if !(0.0..=100.0).contains(&p) {
                problems.push(ValidationDetail::new(
                    "value_error",
                    loc(&[json!("percentiles"), json!(i)]),
                    "Value error, percentiles must be between 0 and 100",
                    json!(p),
                ));
            } else if !seen_percentiles.insert((p + 0.0).to_bits()) {
                problems.push(ValidationDetail::new(
                    "value_error",
                    loc(&[json!("percentiles"), json!(i)]),
                    format!("Value error, percentile {p} is listed twice"),
                    json!(p),
                ));
            }
        }
        let mut aggregations = req.aggregations.clone().unwrap_or_else(|| vec![Aggregation::Sum]);
        let mut seen_aggregations = HashSet::new();
        for (i, aggregation) in aggregations.iter().enumerate() {
            if !seen_aggregations.insert(*aggregation) {
                problems.push(ValidationDetail::new(
                    "value_error",
                    loc(&[json!("aggregations"), json!(i)]),
                    format!("Value error, aggregation {} is listed twice", aggregation.name()),
                    json!(aggregation.name()),
                ));
            }
        }
        if aggregations.is_empty() && percentiles.is_empty() {
            aggregations.push(Aggregation::Sum);
        }
        specs.push((req.metric, MetricSpec { metric: name.to_string(), kind, aggregations, percentiles }));
    }
    specs
}
