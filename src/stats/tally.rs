//! Per-bucket tallies for `/calls/stats` (API.md §4.5, §4.6): the store feeds them calls and
//! usage rows (raw) or 15-minute slots and hours (rollups) as they stream in, and they render the
//! response's bucket objects. Pure: no SQL, no HTTP.
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::aggregate::{ranks, render, MetricSpec, ValueKind, Values};
use super::binned::{micros, Binned, PageSlice, Summary};
use super::buckets::BucketGrid;
use super::slots::Span;
use crate::domain::costs::{Cost, Price, PriceBook, TokenSums};
use crate::domain::usage::UsageRow;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallMetric {
    LatencyMs,
    CallCount,
    ErrorCount,
}

impl CallMetric {
    /// The metric's name in keys, and the kind of its values.
    pub fn describe(self) -> (&'static str, ValueKind) {
        match self {
            Self::LatencyMs => ("latency_ms", ValueKind::Float),
            Self::CallCount => ("call_count", ValueKind::Int),
            Self::ErrorCount => ("error_count", ValueKind::Int),
        }
    }
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
    pub fn is_cost(self) -> bool {
        matches!(self, Self::InputCost | Self::OutputCost | Self::TotalCost)
    }

    /// The metric's name in keys, and the kind of its values.
    pub fn describe(self) -> (&'static str, ValueKind) {
        match self {
            Self::InputTokens => ("input_tokens", ValueKind::Int),
            Self::OutputTokens => ("output_tokens", ValueKind::Int),
            Self::TotalTokens => ("total_tokens", ValueKind::Int),
            Self::CacheReadInputTokens => ("cache_read_input_tokens", ValueKind::Int),
            Self::CacheCreationInputTokens => ("cache_creation_input_tokens", ValueKind::Int),
            Self::InputCost => ("input_cost", ValueKind::Float),
            Self::OutputCost => ("output_cost", ValueKind::Float),
            Self::TotalCost => ("total_cost", ValueKind::Float),
        }
    }
}

/// One slot's (or, by `span`, one hour's) calls, of one op and root-ness or all of them.
#[derive(Debug, Clone, PartialEq)]
pub struct CallSlot {
    pub span: Span,
    pub slot: DateTime<Utc>,
    /// 0 for the whole slot, 1.. for its (op, root-ness) groups: names its latency pages.
    pub part: i32,
    pub calls: i64,
    pub errors: i64,
    pub latencies: SlotLatencies,
}

/// The latencies of a slot's finished calls, as its rollup keeps them.
#[derive(Debug, Clone, PartialEq)]
pub enum SlotLatencies {
    /// Each one (few of them), in no order.
    Listed(Vec<f64>),
    /// A summary; the values themselves are in pages (`stats::binned`).
    Paged(Summary),
}

/// A slot's calls of one group, as a rollup rebuild collects them.
#[derive(Debug, Default)]
pub struct CallGroup {
    pub calls: i64,
    pub errors: i64,
    /// Each finished call's latency; sorted by `f64::total_cmp` before it is stored.
    pub latencies: Vec<f64>,
}

impl CallGroup {
    fn add(&mut self, latency_ms: Option<f64>, is_error: bool, counting: Counting) {
        self.calls += i64::from(counting == Counting::Call);
        self.errors += i64::from(is_error);
        self.latencies.extend(latency_ms);
    }
}

/// What a rollup counts of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counting {
    /// The call, with its latency and error if it ended.
    Call,
    /// Only what its end adds (latency, error): the call itself was counted while it ran, so
    /// rows counting this way are added to rows that counted the call.
    End,
}

/// The call rollups of one slot's (or hour's) calls (the rows of `call_slots` and `call_op_slots`): whole,
/// and per (op, root-ness), in the order their parts are numbered (1..).
#[derive(Debug, Default)]
pub struct CallRollup {
    pub whole: CallGroup,
    pub per_op: BTreeMap<(Option<String>, bool), CallGroup>,
}

impl CallRollup {
    /// Count one call, or one call's end.
    pub fn add(
        &mut self,
        op_name: Option<&str>,
        is_root: bool,
        latency_ms: Option<f64>,
        is_error: bool,
        counting: Counting,
    ) {
        self.whole.add(latency_ms, is_error, counting);
        let key = (op_name.map(str::to_string), is_root);
        self.per_op.entry(key).or_default().add(latency_ms, is_error, counting);
    }
}

/// One slot's usage rows of one model, summed.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageSlot {
    pub slot: DateTime<Utc>,
    pub model: String,
    pub usage_rows: i64,
    /// None when a sum passed the bigint range: the slot's rows of this model must be read raw.
    pub sums: Option<SlotSums>,
}

/// Token sums of a slot's usage rows of one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotSums {
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub total_tokens: i64,
    pub cache_read_input_tokens: i64,
    pub cache_creation_input_tokens: i64,
    /// Input tokens minus cached ones, floored at 0 per row (what the prompt rate applies to).
    pub uncached_input_tokens: i64,
}

/// Usage rows counted and their six sums (input, output, total, cache read, cache creation,
/// uncached input), exact.
pub type UsageSums = (i64, [i128; 6]);

/// The usage rollups of one slot's calls (the rows of `usage_slots` and `usage_op_slots`):
/// per model, and per (op, root-ness, model).
#[derive(Debug, Default)]
pub struct UsageRollup {
    pub whole: BTreeMap<String, UsageSums>,
    /// By (op name, is root, model).
    pub per_op: BTreeMap<(Option<String>, bool, String), UsageSums>,
}

impl UsageRollup {
    /// Count one call's usage rows.
    pub fn add(&mut self, op_name: Option<&str>, is_root: bool, usage: &[UsageRow]) {
        for row in usage {
            let c = &row.counters;
            let uncached = c
                .input_tokens
                .saturating_sub(c.cache_read_input_tokens)
                .saturating_sub(c.cache_creation_input_tokens)
                .max(0);
            let values = [
                c.input_tokens,
                c.output_tokens,
                c.total_tokens,
                c.cache_read_input_tokens,
                c.cache_creation_input_tokens,
                uncached,
            ];
            let add = |entry: &mut UsageSums| {
                entry.0 += 1;
                for (sum, value) in entry.1.iter_mut().zip(values) {
                    *sum += i128::from(value);
                }
            };
            match self.whole.get_mut(&row.model) {
                Some(entry) => add(entry),
                None => add(self.whole.entry(row.model.clone()).or_default()),
            }
            add(self.per_op.entry((op_name.map(str::to_string), is_root, row.model.clone())).or_default());
        }
    }

    /// Whether a sum passes the bigint range (stored as null: its slot is read raw).
    pub fn overflows(&self) -> bool {
        let sums = self.whole.values().chain(self.per_op.values());
        sums.flat_map(|(_, sums)| sums).any(|&sum| stored_sum(sum).is_none())
    }
}

/// A rollup sum as stored: None past the bigint range.
pub fn stored_sum(sum: i128) -> Option<i64> {
    i64::try_from(sum).ok()
}

/// The call metrics of every bucket, as rows and slots arrive.
pub struct CallTally<'a> {
    grid: &'a BucketGrid,
    metrics: &'a [(CallMetric, MetricSpec)],
    counts: Vec<i64>,
    values: Vec<Vec<Values>>,
    /// Latencies summed in whole microseconds (what timestamps hold): exact in any order, and
    /// far cheaper than an exact float sum.
    latency_micros: Vec<i128>,
    /// The position of `latency_ms` among the metrics when it asks percentiles (a metric is
    /// asked once), and per bucket its paged groups.
    latency_percentiles: Option<usize>,
    binned: Vec<Binned>,
    /// Per bucket, the calls and errors of its slots, rendered as error-count values at the
    /// end: a row appended by a running call's end adds an error without a call (the call's 0
    /// becomes a 1), which only the totals can say.
    slot_errors: Vec<(i64, i64)>,
}

impl<'a> CallTally<'a> {
    pub fn new(grid: &'a BucketGrid, metrics: &'a [(CallMetric, MetricSpec)]) -> Self {
        Self {
            grid,
            metrics,
            counts: vec![0; grid.len()],
            values: vec![vec![Values::default(); metrics.len()]; grid.len()],
            latency_micros: vec![0; grid.len()],
            latency_percentiles: metrics
                .iter()
                .position(|(metric, spec)| *metric == CallMetric::LatencyMs && !spec.percentiles.is_empty()),
            binned: (0..grid.len()).map(|_| Binned::default()).collect(),
            slot_errors: vec![(0, 0); grid.len()],
        }
    }

    /// One counted call.
    pub fn add_call(&mut self, started_at: DateTime<Utc>, latency_ms: Option<f64>, is_error: bool) {
        let Some(bucket) = self.grid.bucket_of(started_at) else { return };
        self.counts[bucket] += 1;
        for (values, (metric, _)) in self.values[bucket].iter_mut().zip(self.metrics) {
            match metric {
                CallMetric::LatencyMs => {
                    if let Some(latency) = latency_ms {
                        values.push_float(latency);
                        self.latency_micros[bucket] += micros(latency);
                    }
                }
                CallMetric::CallCount => values.push_int(1),
                CallMetric::ErrorCount => values.push_int(i64::from(is_error)),
            }
        }
    }

    pub fn add_slot(&mut self, mut slot: CallSlot) {
        let Some(bucket) = self.grid.bucket_of(slot.slot) else { return };
        self.counts[bucket] += slot.calls;
        let (calls, errors) = &mut self.slot_errors[bucket];
        *calls += slot.calls;
        *errors += slot.errors;
        let calls = slot.calls.max(0) as u64;
        let wants_bins = self.latency_percentiles.is_some();
        for (values, (metric, _)) in self.values[bucket].iter_mut().zip(self.metrics) {
            match (metric, &mut slot.latencies) {
                (CallMetric::LatencyMs, SlotLatencies::Listed(latencies)) => latencies.iter().for_each(|&latency| {
                    values.push_float(latency);
                    self.latency_micros[bucket] += micros(latency);
                }),
                (CallMetric::LatencyMs, SlotLatencies::Paged(s)) => {
                    values.add_summarized_floats(s.count, s.min, s.max, s.zeros, s.ones);
                    self.latency_micros[bucket] += s.micros;
                    if wants_bins {
                        // A metric is asked once (the request is validated), so the bins move.
                        self.binned[bucket].add_group(slot.span, slot.slot, slot.part, std::mem::take(&mut s.bins));
                    }
                }
                (CallMetric::CallCount, _) => values.push_int_times(1, calls),
                // Rendered from the bucket's `slot_errors` at the end.
                (CallMetric::ErrorCount, _) => {}
            }
        }
    }

    /// The slices of latency pages the percentiles of paged groups need, each once and tagged
    /// with its bucket, once every slot and call has been added.
    pub fn pages(&mut self) -> Vec<(usize, PageSlice)> {
        let Some(m) = self.latency_percentiles else { return Vec::new() };
        let percentiles = &self.metrics[m].1.percentiles;
        let (mut pages, mut slices) = (Vec::new(), Vec::new());
        for (bucket, (values, binned)) in self.values.iter().zip(&mut self.binned).enumerate() {
            if !binned.is_empty() {
                let values = &values[m];
                binned.pages(values.listed_floats(), ranks(values.count(), percentiles), &mut slices);
                pages.extend(slices.drain(..).map(|slice| (bucket, slice)));
            }
        }
        pages
    }

    /// Latencies of slices [`CallTally::pages`] asked for, of one bucket.
    pub fn add_page(&mut self, bucket: usize, latencies: &[f64]) {
        if let Some(binned) = self.binned.get_mut(bucket) {
            binned.add_page(latencies.iter().copied());
        }
    }

    /// Find the percentiles of paged groups from the pages read; Err when a page did not hold
    /// what its histogram promised (a rollup row and its pages disagree).
    pub fn resolve(&mut self) -> Result<(), PagesMissing> {
        let Some(m) = self.latency_percentiles else { return Ok(()) };
        for (values, binned) in self.values.iter_mut().zip(&self.binned) {
            if !binned.is_empty() {
                let values = &mut values[m];
                values.set_ranked(binned.resolve(values.listed_floats()).ok_or(PagesMissing)?);
            }
        }
        Ok(())
    }

    pub fn render(mut self) -> Vec<Map<String, Value>> {
        let mut buckets = Vec::with_capacity(self.grid.len());
        for (bucket, bucket_values) in self.values.iter_mut().enumerate() {
            let mut out = Map::new();
            out.insert("timestamp".into(), Value::from(self.grid.timestamp(bucket)));
            for ((metric, spec), values) in self.metrics.iter().zip(bucket_values.iter_mut()) {
                match metric {
                    CallMetric::LatencyMs => values.set_sum(self.latency_micros[bucket] as f64 / 1000.0),
                    CallMetric::ErrorCount => {
                        let (calls, errors) = self.slot_errors[bucket];
                        values.push_int_times(1, errors.max(0) as u64);
                        values.push_int_times(0, (calls - errors).max(0) as u64);
                    }
                    CallMetric::CallCount => {}
                }
                render(spec, values, &mut out);
            }
            out.insert("count".into(), Value::from(self.counts[bucket]));
            buckets.push(out);
        }
        buckets
    }
}

/// The latency pages of a rollup did not hold the values its histogram counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PagesMissing;

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
///
/// Slots may stand in for rows only where one price applies to the whole slot: the caller
/// reads the slots around a price change raw (see `slots::Plan::without`).
pub struct UsageTally<'b> {
    grid: &'b BucketGrid,
    metrics: &'b [(UsageMetric, MetricSpec)],
    /// The price book when costs are asked.
    book: Option<&'b PriceBook>,
    /// model → bucket → usage; a BTreeMap orders models by bytes.
    by_model: BTreeMap<String, Vec<UsageBucket<'b>>>,
    /// Slots whose sums of a model passed the bigint range: their rows of those models are
    /// still to be read raw.
    overflowed: BTreeMap<DateTime<Utc>, BTreeSet<String>>,
    /// Most models tallied (the answer's size grows with them); rows of more are refused.
    max_models: usize,
    refused: bool,
}

impl<'b> UsageTally<'b> {
    pub fn new(
        grid: &'b BucketGrid,
        metrics: &'b [(UsageMetric, MetricSpec)],
        book: Option<&'b PriceBook>,
        max_models: usize,
    ) -> Self {
        Self { grid, metrics, book, by_model: BTreeMap::new(), overflowed: BTreeMap::new(), max_models, refused: false }
    }

    /// Whether rows of more models than `max_models` arrived (the answer would be too large).
    pub fn models_refused(&self) -> bool {
        self.refused
    }

    /// Whether `model` may be tallied: it is, or there is room for one more.
    fn admit(&mut self, model: &str) -> bool {
        let admitted = self.by_model.contains_key(model) || self.by_model.len() < self.max_models;
        self.refused |= !admitted;
        admitted
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

    /// One usage row of a counted call that started at `started_at`.
    pub fn add_row(&mut self, started_at: DateTime<Utc>, row: &UsageRow) {
        let Some(bucket) = self.grid.bucket_of(started_at) else { return };
        if !self.admit(&row.model) {
            return;
        }
        let (book, metrics) = (self.book, self.metrics);
        let c = &row.counters;
        let entry = self.bucket(&row.model, bucket);
        entry.rows += 1;
        let cost = book.map(|book| {
            let price = book.price_for(&row.model, started_at);
            let sums = TokenSums::of_row(c);
            Self::bill(entry, price, 1, &sums);
            sums.cost(price)
        });
        for (values, (metric, _)) in entry.values.iter_mut().zip(metrics) {
            match (metric, cost) {
                (UsageMetric::InputTokens, _) => values.push_int(c.input_tokens),
                (UsageMetric::OutputTokens, _) => values.push_int(c.output_tokens),
                (UsageMetric::TotalTokens, _) => values.push_int(c.total_tokens),
                (UsageMetric::CacheReadInputTokens, _) => values.push_int(c.cache_read_input_tokens),
                (UsageMetric::CacheCreationInputTokens, _) => values.push_int(c.cache_creation_input_tokens),
                (UsageMetric::InputCost, Some(cost)) => values.push_float(cost.input),
                (UsageMetric::OutputCost, Some(cost)) => values.push_float(cost.output),
                (UsageMetric::TotalCost, Some(cost)) => values.push_float(cost.total()),
                (_, None) => {}
            }
        }
    }

    /// A slot's rows of one model, summed. Rollups hold sums only, so a tally fed slots serves
    /// sums, averages and counts (the plan reads raw rows for anything else).
    pub fn add_slot(&mut self, slot: &UsageSlot) {
        let Some(bucket) = self.grid.bucket_of(slot.slot) else { return };
        if !self.admit(&slot.model) {
            return;
        }
        let Some(sums) = slot.sums else {
            self.overflowed.entry(slot.slot).or_default().insert(slot.model.clone());
            return;
        };
        let (book, metrics) = (self.book, self.metrics);
        let entry = self.bucket(&slot.model, bucket);
        entry.rows += slot.usage_rows;
        if let Some(book) = book {
            let tokens = TokenSums {
                uncached_input: sums.uncached_input_tokens.into(),
                output: sums.output_tokens.into(),
                cache_read: sums.cache_read_input_tokens.into(),
                cache_creation: sums.cache_creation_input_tokens.into(),
            };
            Self::bill(entry, book.price_for(&slot.model, slot.slot), slot.usage_rows, &tokens);
        }
        let rows = slot.usage_rows.max(0) as u64;
        for (values, (metric, _)) in entry.values.iter_mut().zip(metrics) {
            let sum = match metric {
                UsageMetric::InputTokens => sums.input_tokens,
                UsageMetric::OutputTokens => sums.output_tokens,
                UsageMetric::TotalTokens => sums.total_tokens,
                UsageMetric::CacheReadInputTokens => sums.cache_read_input_tokens,
                UsageMetric::CacheCreationInputTokens => sums.cache_creation_input_tokens,
                UsageMetric::InputCost | UsageMetric::OutputCost | UsageMetric::TotalCost => {
                    values.add_unlisted_floats(rows);
                    continue;
                }
            };
            values.add_unlisted_ints(rows, sum.into());
        }
    }

    /// The slots (and their models) whose sums overflowed, to be read raw; each is handed out
    /// once.
    pub fn take_overflowed(&mut self) -> BTreeMap<DateTime<Utc>, BTreeSet<String>> {
        std::mem::take(&mut self.overflowed)
    }

    pub fn render(mut self) -> Vec<Map<String, Value>> {
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
