//! `POST /calls/stats` (API.md §4): validate, lay the bucket grid, stream the counted calls and
//! usage rows from the store into per-bucket values, render each bucket's keys.
use std::collections::{BTreeMap, HashSet};

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sqlx::PgPool;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{selection, AppJson, Caller};
use crate::domain::costs::{Cost, Price, PriceBook, TokenSums, Tokens};
use crate::domain::filter::CallsFilter;
use crate::domain::query::Query;
use crate::domain::{ProjectId, Timestamp};
use crate::error::{ApiError, Result, ValidationDetail};
use crate::stats::buckets::BucketGrid;
use crate::stats::granularity;
use crate::stats::metrics::{render, Aggregation, MetricSpec, ValueKind, Values};
use crate::stats::slots::{self, Split};
use crate::store::filter::{Selection, SlotFilter};
use crate::store::prices as prices_store;
use crate::store::rollups::{self as rollups_store, CallSlot, UsageSlot};
use crate::store::stats::{self as stats_store, CallPoint, UsagePoint};
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
    responses((status = 200, body = CallStatsRes)))]
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
    // Rollups answer the whole quarter hours when the filter and the grid allow it.
    let rollup = selection.slot_filter().zip(slots::split(&grid, plan.start, plan.end));
    if let Some((_, split)) = &rollup {
        rollups_store::refresh(&state.db, project, split.slots.0, split.slots.1).await?;
    }
    let source =
        Source { db: &state.db, project, plan: &plan, grid: &grid, selection: &selection, rollup: rollup.as_ref() };

    // The two streams are independent: run them on two connections at once.
    let (call_buckets, usage_buckets) = tokio::try_join!(call_buckets(&source), usage_buckets(&source))?;

    Ok(Json(CallStatsRes {
        start: Timestamp::from(plan.start),
        end: Timestamp::from(plan.end),
        granularity: plan.granularity,
        timezone: req.timezone.unwrap_or_else(|| "UTC".into()),
        call_buckets,
        usage_buckets,
    }))
}

/// Where one request's rows come from.
struct Source<'a> {
    db: &'a PgPool,
    project: &'a str,
    plan: &'a Plan,
    grid: &'a BucketGrid,
    selection: &'a Selection,
    /// The rollups' filter and the window's split, when rollups can answer.
    rollup: Option<&'a (SlotFilter, Split)>,
}

impl Source<'_> {
    /// What to read: the whole quarter hours from rollups (filter and range) when `use_rollups`
    /// and the request allow, and the ranges to read raw rows for.
    fn reads(&self, use_rollups: bool) -> (Option<(&SlotFilter, Range)>, Vec<Range>) {
        match self.rollup.filter(|_| use_rollups) {
            Some((filter, split)) => (Some((filter, split.slots)), split.raw.clone()),
            None => (None, vec![(self.plan.start, self.plan.end)]),
        }
    }

    /// Feed the counted calls to `tally`.
    async fn calls(&self, tally: &mut CallTally<'_>) -> Result<()> {
        let (slots, raw) = self.reads(true);
        if let Some((filter, (from, to))) = slots {
            rollups_store::for_each_call_slot(self.db, self.project, from, to, filter, |slot| tally.add_slot(&slot))
                .await?;
        }
        for (from, to) in raw {
            stats_store::for_each_call(self.db, self.project, from, to, self.selection, |call| tally.add_call(&call))
                .await?;
        }
        Ok(())
    }

    /// Feed the counted usage rows to `tally` (rollups only when `use_rollups`).
    async fn usage(&self, tally: &mut UsageTally<'_>, use_rollups: bool) -> Result<()> {
        let (slots, raw) = self.reads(use_rollups);
        if let Some((filter, (from, to))) = slots {
            rollups_store::for_each_usage_slot(self.db, self.project, from, to, filter, |slot| tally.add_slot(&slot))
                .await?;
        }
        for (from, to) in raw {
            stats_store::for_each_usage(self.db, self.project, from, to, self.selection, |row| tally.add_row(&row))
                .await?;
        }
        Ok(())
    }
}

/// `[from, to)`.
type Range = (DateTime<Utc>, DateTime<Utc>);

/// One object per bucket with the call metrics (`[]` when none are asked).
async fn call_buckets(source: &Source<'_>) -> Result<Vec<Map<String, Value>>> {
    if source.plan.call_metrics.is_empty() || source.grid.is_empty() {
        return Ok(Vec::new());
    }
    let mut tally = CallTally::new(source.grid, &source.plan.call_metrics);
    source.calls(&mut tally).await?;
    Ok(tally.render())
}

/// One object per (bucket, model) with the usage metrics (`[]` when none are asked or no
/// usage row falls in the window).
async fn usage_buckets(source: &Source<'_>) -> Result<Vec<Map<String, Value>>> {
    let plan = source.plan;
    if plan.usage_metrics.is_empty() || source.grid.is_empty() {
        return Ok(Vec::new());
    }
    let wants_costs = plan.usage_metrics.iter().any(|(m, _)| m.is_cost());
    // Costs are priced in memory from the project's (small) price book.
    let book = if wants_costs {
        PriceBook::new(prices_store::for_project(source.db, source.project).await?)
    } else {
        PriceBook::default()
    };
    // Rollups hold sums, so they serve only sums, averages and counts.
    let summable = plan.usage_metrics.iter().all(|(_, spec)| {
        spec.percentiles.is_empty()
            && spec.aggregations.iter().all(|a| matches!(a, Aggregation::Sum | Aggregation::Avg | Aggregation::Count))
    });
    let mut tally = UsageTally::new(source.grid, &plan.usage_metrics, wants_costs.then_some(&book));
    source.usage(&mut tally, summable).await?;
    if tally.needs_raw_rows {
        tally = UsageTally::new(source.grid, &plan.usage_metrics, wants_costs.then_some(&book));
        source.usage(&mut tally, false).await?;
    }
    Ok(tally.render())
}

/// The call metrics of every bucket, as rows and slots arrive.
struct CallTally<'a> {
    grid: &'a BucketGrid,
    metrics: &'a [(CallMetric, MetricSpec)],
    counts: Vec<i64>,
    values: Vec<Vec<Values>>,
    /// Latencies summed in whole microseconds (what timestamps hold): exact in any order, and
    /// far cheaper than an exact float sum.
    latency_micros: Vec<i128>,
}

impl<'a> CallTally<'a> {
    fn new(grid: &'a BucketGrid, metrics: &'a [(CallMetric, MetricSpec)]) -> Self {
        Self {
            grid,
            metrics,
            counts: vec![0; grid.len()],
            values: vec![vec![Values::default(); metrics.len()]; grid.len()],
            latency_micros: vec![0; grid.len()],
        }
    }

    fn add_call(&mut self, call: &CallPoint) {
        let Some(bucket) = self.grid.bucket_of(call.started_at) else { return };
        self.counts[bucket] += 1;
        for (values, (metric, _)) in self.values[bucket].iter_mut().zip(self.metrics) {
            match metric {
                CallMetric::LatencyMs => {
                    if let Some(latency) = call.latency_ms {
                        values.push_float(latency);
                        self.latency_micros[bucket] += micros(latency);
                    }
                }
                CallMetric::CallCount => values.push_int(1),
                CallMetric::ErrorCount => values.push_int(i64::from(call.is_error)),
            }
        }
    }

    fn add_slot(&mut self, slot: &CallSlot) {
        let Some(bucket) = self.grid.bucket_of(slot.slot) else { return };
        self.counts[bucket] += slot.calls;
        let (calls, errors) = (slot.calls.max(0) as u64, slot.errors.max(0) as u64);
        for (values, (metric, _)) in self.values[bucket].iter_mut().zip(self.metrics) {
            match metric {
                CallMetric::LatencyMs => slot.latencies().for_each(|latency| {
                    values.push_float(latency);
                    self.latency_micros[bucket] += micros(latency);
                }),
                CallMetric::CallCount => values.push_int_times(1, calls),
                CallMetric::ErrorCount => {
                    values.push_int_times(1, errors);
                    values.push_int_times(0, calls - errors);
                }
            }
        }
    }

    fn render(mut self) -> Vec<Map<String, Value>> {
        let mut buckets = Vec::with_capacity(self.grid.len());
        for (bucket, bucket_values) in self.values.iter_mut().enumerate() {
            let mut out = Map::new();
            out.insert("timestamp".into(), Value::from(self.grid.timestamp(bucket)));
            for ((metric, spec), values) in self.metrics.iter().zip(bucket_values.iter_mut()) {
                if *metric == CallMetric::LatencyMs {
                    values.set_sum(self.latency_micros[bucket] as f64 / 1000.0);
                }
                render(spec, values, &mut out);
            }
            out.insert("count".into(), Value::from(self.counts[bucket]));
            buckets.push(out);
        }
        buckets
    }
}

/// A latency in whole microseconds: latencies are differences of microsecond timestamps, so
/// `ms × 1000` is within rounding of an integer.
fn micros(latency_ms: f64) -> i128 {
    (latency_ms * 1000.0).round() as i128
}

/// One model's usage rows in one bucket.
struct UsageBucket<'b> {
    rows: i64,
    /// Rows without a price (their costs count as 0 and are reported, never hidden).
    unpriced: i64,
    values: Vec<Values>,
    /// Tokens by the price they are billed at (None: unpriced), keyed by price id.
    billed: BTreeMap<Option<&'b str>, (Option<&'b Price>, TokenSums)>,
}

/// The usage metrics of every (bucket, model), as rows and slots arrive.
struct UsageTally<'b> {
    grid: &'b BucketGrid,
    metrics: &'b [(UsageMetric, MetricSpec)],
    /// The price book when costs are asked.
    book: Option<&'b PriceBook>,
    /// model → bucket → usage; a BTreeMap orders models by bytes.
    by_model: BTreeMap<String, Vec<UsageBucket<'b>>>,
    /// Set when a slot cannot stand in for its rows: a price change inside it, or a token sum
    /// past the bigint range.
    needs_raw_rows: bool,
}

impl<'b> UsageTally<'b> {
    fn new(grid: &'b BucketGrid, metrics: &'b [(UsageMetric, MetricSpec)], book: Option<&'b PriceBook>) -> Self {
        Self { grid, metrics, book, by_model: BTreeMap::new(), needs_raw_rows: false }
    }

    fn bucket(&mut self, model: &str, bucket: usize) -> &mut UsageBucket<'b> {
        if !self.by_model.contains_key(model) {
            let empty = || UsageBucket {
                rows: 0,
                unpriced: 0,
                values: vec![Values::default(); self.metrics.len()],
                billed: BTreeMap::new(),
            };
            self.by_model.insert(model.to_string(), (0..self.grid.len()).map(|_| empty()).collect());
        }
        &mut self.by_model.get_mut(model).expect("inserted above")[bucket]
    }

    /// Count `rows` usage rows of `model` billed at `price` in `entry`.
    fn bill(entry: &mut UsageBucket<'b>, price: Option<&'b Price>, rows: i64, tokens: &TokenSums) {
        if price.is_none() {
            entry.unpriced += rows;
        }
        entry.billed.entry(price.map(|p| p.id.as_str())).or_insert((price, TokenSums::default())).1.add(tokens);
    }

    fn add_row(&mut self, row: &UsagePoint) {
        let Some(bucket) = self.grid.bucket_of(row.started_at) else { return };
        let book = self.book;
        let metrics = self.metrics;
        let entry = self.bucket(&row.model, bucket);
        entry.rows += 1;
        let tokens = Tokens {
            input: row.input_tokens,
            output: row.output_tokens,
            cache_read: row.cache_read_input_tokens,
            cache_creation: row.cache_creation_input_tokens,
        };
        let cost = book.map(|book| {
            let price = book.price_for(&row.model, row.started_at);
            let sums = TokenSums::of_row(tokens);
            Self::bill(entry, price, 1, &sums);
            sums.cost(price)
        });
        for (values, (metric, _)) in entry.values.iter_mut().zip(metrics) {
            match (metric, cost) {
                (UsageMetric::InputTokens, _) => values.push_int(row.input_tokens),
                (UsageMetric::OutputTokens, _) => values.push_int(row.output_tokens),
                (UsageMetric::TotalTokens, _) => values.push_int(row.total_tokens),
                (UsageMetric::CacheReadInputTokens, _) => values.push_int(row.cache_read_input_tokens),
                (UsageMetric::CacheCreationInputTokens, _) => values.push_int(row.cache_creation_input_tokens),
                (UsageMetric::InputCost, Some(c)) => values.push_float(c.input),
                (UsageMetric::OutputCost, Some(c)) => values.push_float(c.output),
                (UsageMetric::TotalCost, Some(c)) => values.push_float(c.total()),
                (_, None) => {}
            }
        }
    }

    fn add_slot(&mut self, slot: &UsageSlot) {
        let Some(bucket) = self.grid.bucket_of(slot.slot) else { return };
        let (book, metrics) = (self.book, self.metrics);
        let sums = [
            slot.input_tokens,
            slot.output_tokens,
            slot.total_tokens,
            slot.cache_read_input_tokens,
            slot.cache_creation_input_tokens,
            slot.uncached_input_tokens,
        ];
        let [Some(input), Some(output), Some(total), Some(cache_read), Some(cache_creation), Some(uncached)] = sums
        else {
            self.needs_raw_rows = true;
            return;
        };
        if book.is_some_and(|book| !book.is_constant_over(&slot.model, slot.slot, slots::slot_end(slot.slot))) {
            self.needs_raw_rows = true;
        }
        let entry = self.bucket(&slot.model, bucket);
        entry.rows += slot.usage_rows;
        if let Some(book) = book {
            let tokens = TokenSums {
                uncached_input: uncached.into(),
                output: output.into(),
                cache_read: cache_read.into(),
                cache_creation: cache_creation.into(),
            };
            Self::bill(entry, book.price_for(&slot.model, slot.slot), slot.usage_rows, &tokens);
        }
        let rows = slot.usage_rows.max(0) as u64;
        for (values, (metric, _)) in entry.values.iter_mut().zip(metrics) {
            let sum = match metric {
                UsageMetric::InputTokens => input,
                UsageMetric::OutputTokens => output,
                UsageMetric::TotalTokens => total,
                UsageMetric::CacheReadInputTokens => cache_read,
                UsageMetric::CacheCreationInputTokens => cache_creation,
                UsageMetric::InputCost | UsageMetric::OutputCost | UsageMetric::TotalCost => {
                    values.add_unlisted_floats(rows);
                    continue;
                }
            };
            values.add_unlisted_ints(rows, sum.into());
        }
    }

    fn render(mut self) -> Vec<Map<String, Value>> {
        let mut buckets = Vec::new();
        for bucket in 0..self.grid.len() {
            for (model, model_buckets) in self.by_model.iter_mut() {
                let entry = &mut model_buckets[bucket];
                // Summed costs: each price's summed tokens × its rates, added in price-id order.
                let mut cost = Cost::default();
                let mut total_cost = 0.0;
                for (price, tokens) in entry.billed.values() {
                    let billed = tokens.cost(*price);
                    cost.add(&billed);
                    total_cost += billed.total();
                }
                let mut out = Map::new();
                out.insert("timestamp".into(), Value::from(self.grid.timestamp(bucket)));
                out.insert("model".into(), Value::from(model.as_str()));
                for ((metric, spec), values) in self.metrics.iter().zip(entry.values.iter_mut()) {
                    match metric {
                        UsageMetric::InputCost => values.set_sum(cost.input),
                        UsageMetric::OutputCost => values.set_sum(cost.output),
                        UsageMetric::TotalCost => values.set_sum(total_cost),
                        _ => {}
                    }
                    render(spec, values, &mut out);
                }
                out.insert("count".into(), Value::from(entry.rows));
                if self.book.is_some() {
                    out.insert("unpriced_count".into(), Value::from(entry.unpriced));
                }
                buckets.push(out);
            }
        }
        buckets
    }
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
