//! `POST /calls/stats` (API.md §4): validate, lay the bucket grid, stream the counted calls and
//! usage rows from the store into per-bucket values, render each bucket's keys.
use std::collections::{BTreeMap, HashSet};

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{selection, AppJson, Caller};
use crate::domain::costs::{self, PriceBook, Tokens};
use crate::domain::filter::CallsFilter;
use crate::domain::query::Query;
use crate::domain::{ProjectId, Timestamp};
use crate::error::{ApiError, Result, ValidationDetail};
use crate::stats::buckets::BucketGrid;
use crate::stats::granularity;
use crate::stats::metrics::{render, Aggregation, MetricSpec, ValueKind, Values};
use crate::store::filter::Selection;
use crate::store::prices as prices_store;
use crate::store::stats as stats_store;
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(call_stats))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallMetric {
    LatencyMs,
    CallCount,
    ErrorCount,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UsageMetric {
    InputTokens,
    OutputTokens,
    TotalTokens,
    CacheReadInputTokens,
    CacheCreationInputTokens,
    InputCost,
    OutputCost,
    TotalCost,
}

impl UsageMetric {
    fn is_cost(self) -> bool {
        matches!(self, Self::InputCost | Self::OutputCost | Self::TotalCost)
    }
}

/// One model's usage rows in one bucket.
struct UsageBucket {
    rows: i64,
    /// Rows without a price (their costs count as 0 and are reported, never hidden).
    unpriced: i64,
    values: Vec<Values>,
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
    responses((status = 200, body = CallStatsRes), (status = 422, description = "Invalid request")))]
async fn call_stats(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<CallStatsReq>,
) -> Result<Json<CallStatsRes>> {
    caller.authorize(&req.project_id)?;
    let plan = validate(&req, state.settings.max_stats_range)?;
    let grid = BucketGrid::new(plan.start, plan.end, plan.granularity, plan.tz);
    let selection = selection(req.filter, req.query.as_ref())?;
    let project = req.project_id.as_str();

    // The two streams are independent: run them on two connections at once.
    let (call_buckets, usage_buckets) = tokio::try_join!(
        call_buckets(&state, project, &plan, &grid, &selection),
        usage_buckets(&state, project, &plan, &grid, &selection),
    )?;

    Ok(Json(CallStatsRes {
        start: Timestamp::from(plan.start),
        end: Timestamp::from(plan.end),
        granularity: plan.granularity,
        timezone: req.timezone.unwrap_or_else(|| "UTC".into()),
        call_buckets,
        usage_buckets,
    }))
}

/// One object per bucket with the call metrics (`[]` when none are asked).
async fn call_buckets(
    state: &AppState,
    project: &str,
    plan: &Plan,
    grid: &BucketGrid,
    selection: &Selection,
) -> Result<Vec<Map<String, Value>>> {
    let mut call_buckets = Vec::new();
    if !plan.call_metrics.is_empty() && !grid.is_empty() {
        let mut counts = vec![0i64; grid.len()];
        let mut values: Vec<Vec<Values>> = vec![vec![Values::default(); plan.call_metrics.len()]; grid.len()];
        stats_store::for_each_call(&state.db, project, plan.start, plan.end, selection, |call| {
            let Some(bucket) = grid.bucket_of(call.started_at) else { return };
            counts[bucket] += 1;
            for (slot, (metric, _)) in values[bucket].iter_mut().zip(&plan.call_metrics) {
                match metric {
                    CallMetric::LatencyMs => {
                        if let Some(latency) = call.latency_ms {
                            slot.push_float(latency);
                        }
                    }
                    CallMetric::CallCount => slot.push_int(1),
                    CallMetric::ErrorCount => slot.push_int(i64::from(call.is_error)),
                }
            }
        })
        .await?;
        for (bucket, bucket_values) in values.iter_mut().enumerate() {
            let mut out = Map::new();
            out.insert("timestamp".into(), Value::from(grid.timestamp(bucket)));
            for ((_, spec), slot) in plan.call_metrics.iter().zip(bucket_values.iter_mut()) {
                render(spec, slot, &mut out);
            }
            out.insert("count".into(), Value::from(counts[bucket]));
            call_buckets.push(out);
        }
    }

    Ok(call_buckets)
}

/// One object per (bucket, model) with the usage metrics (`[]` when none are asked or no
/// usage row falls in the window).
async fn usage_buckets(
    state: &AppState,
    project: &str,
    plan: &Plan,
    grid: &BucketGrid,
    selection: &Selection,
) -> Result<Vec<Map<String, Value>>> {
    if plan.usage_metrics.is_empty() || grid.is_empty() {
        return Ok(Vec::new());
    }
    let wants_costs = plan.usage_metrics.iter().any(|(m, _)| m.is_cost());
    // Costs are priced per row in memory from the project's (small) price book.
    let book = if wants_costs {
        PriceBook::new(prices_store::for_project(&state.db, project).await?)
    } else {
        PriceBook::default()
    };
    // model → per bucket: rows, unpriced rows, values per metric; BTreeMap orders models by bytes.
    let empty = || UsageBucket { rows: 0, unpriced: 0, values: vec![Values::default(); plan.usage_metrics.len()] };
    let mut by_model: BTreeMap<String, Vec<UsageBucket>> = BTreeMap::new();
    stats_store::for_each_usage(&state.db, project, plan.start, plan.end, selection, |row| {
        let Some(bucket) = grid.bucket_of(row.started_at) else { return };
        let buckets = by_model.entry(row.model.clone()).or_insert_with(|| (0..grid.len()).map(|_| empty()).collect());
        let bucket = &mut buckets[bucket];
        bucket.rows += 1;
        let cost = wants_costs.then(|| {
            let price = book.price_for(&row.model, row.started_at);
            if price.is_none() {
                bucket.unpriced += 1;
            }
            let tokens = Tokens {
                input: row.input_tokens,
                output: row.output_tokens,
                cache_read: row.cache_read_input_tokens,
                cache_creation: row.cache_creation_input_tokens,
            };
            costs::cost(tokens, price)
        });
        for (slot, (metric, _)) in bucket.values.iter_mut().zip(&plan.usage_metrics) {
            match (metric, cost) {
                (UsageMetric::InputTokens, _) => slot.push_int(row.input_tokens),
                (UsageMetric::OutputTokens, _) => slot.push_int(row.output_tokens),
                (UsageMetric::TotalTokens, _) => slot.push_int(row.total_tokens),
                (UsageMetric::CacheReadInputTokens, _) => slot.push_int(row.cache_read_input_tokens),
                (UsageMetric::CacheCreationInputTokens, _) => slot.push_int(row.cache_creation_input_tokens),
                (UsageMetric::InputCost, Some(c)) => slot.push_float(c.input),
                (UsageMetric::OutputCost, Some(c)) => slot.push_float(c.output),
                (UsageMetric::TotalCost, Some(c)) => slot.push_float(c.total()),
                (_, None) => {}
            }
        }
    })
    .await?;
    let mut usage_buckets = Vec::new();
    for bucket in 0..grid.len() {
        for (model, buckets) in by_model.iter_mut() {
            let entry = &mut buckets[bucket];
            let mut out = Map::new();
            out.insert("timestamp".into(), Value::from(grid.timestamp(bucket)));
            out.insert("model".into(), Value::from(model.as_str()));
            for ((_, spec), slot) in plan.usage_metrics.iter().zip(entry.values.iter_mut()) {
                render(spec, slot, &mut out);
            }
            out.insert("count".into(), Value::from(entry.rows));
            if wants_costs {
                out.insert("unpriced_count".into(), Value::from(entry.unpriced));
            }
            usage_buckets.push(out);
        }
    }
    Ok(usage_buckets)
}

/// Check everything API.md §4.1 asks of a request, reporting every problem found.
fn validate(req: &CallStatsReq, max_range: chrono::Duration) -> Result<Plan> {
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
    let call_metrics =
        metric_specs("call_metrics", req.call_metrics.as_deref().unwrap_or_default(), &mut problems, |m| match m {
            CallMetric::LatencyMs => ("latency_ms", ValueKind::Float),
            CallMetric::CallCount => ("call_count", ValueKind::Int),
            CallMetric::ErrorCount => ("error_count", ValueKind::Int),
        });
    let usage_metrics =
        metric_specs("usage_metrics", req.usage_metrics.as_deref().unwrap_or_default(), &mut problems, |m| match m {
            UsageMetric::InputTokens => ("input_tokens", ValueKind::Int),
            UsageMetric::OutputTokens => ("output_tokens", ValueKind::Int),
            UsageMetric::TotalTokens => ("total_tokens", ValueKind::Int),
            UsageMetric::CacheReadInputTokens => ("cache_read_input_tokens", ValueKind::Int),
            UsageMetric::CacheCreationInputTokens => ("cache_creation_input_tokens", ValueKind::Int),
            UsageMetric::InputCost => ("input_cost", ValueKind::Float),
            UsageMetric::OutputCost => ("output_cost", ValueKind::Float),
            UsageMetric::TotalCost => ("total_cost", ValueKind::Float),
        });
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
        let percentiles = req.percentiles.clone().unwrap_or_default();
        let mut seen_percentiles: Vec<f64> = Vec::new();
        for (i, &p) in percentiles.iter().enumerate() {
            if !(0.0..=100.0).contains(&p) {
                problems.push(ValidationDetail::new(
                    "value_error",
                    loc(&[json!("percentiles"), json!(i)]),
                    "Value error, percentiles must be between 0 and 100",
                    json!(p),
                ));
            } else if seen_percentiles.contains(&p) {
                problems.push(ValidationDetail::new(
                    "value_error",
                    loc(&[json!("percentiles"), json!(i)]),
                    format!("Value error, percentile {p} is listed twice"),
                    json!(p),
                ));
            }
            seen_percentiles.push(p);
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
