//! `/api/v1/runs/stats` (API.md §12.2), pure: the statistics of a set of runs, whole or per
//! group, from one pass over the runs. Latency and cost percentiles are exact
//! (`percentile_cont`); token percentiles are `percentile_disc` (always a value that occurred).
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::aggregate::{exact_sum, percentiles};
use super::slots::{self, Plan};
use crate::domain::costs::{Price, PriceBook, TokenSums};
use crate::domain::usage::{Counters, UsageRow};
use crate::domain::Timestamp;

/// Which of LangSmith's two select groups a statistic belongs to: `all_run_stats` (about the
/// runs themselves) or `all_token_stats` (tokens and costs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    RunStats,
    TokenStats,
}
use Group::{RunStats, TokenStats};

/// Every statistic with its group, in the order answers list them (LangSmith's order;
/// `unpriced_count`, an extension, last).
const STATISTICS: [(&str, Group); 32] = [
    ("run_count", RunStats),
    ("latency_p50", RunStats),
    ("latency_p99", RunStats),
    ("latency_avg", RunStats),
    ("first_token_p50", RunStats),
    ("first_token_p99", RunStats),
    ("total_tokens", TokenStats),
    ("prompt_tokens", TokenStats),
    ("completion_tokens", TokenStats),
    ("median_tokens", TokenStats),
    ("completion_tokens_p50", TokenStats),
    ("prompt_tokens_p50", TokenStats),
    ("tokens_p99", TokenStats),
    ("completion_tokens_p99", TokenStats),
    ("prompt_tokens_p99", TokenStats),
    ("last_run_start_time", RunStats),
    ("feedback_stats", RunStats),
    ("thread_feedback_stats", RunStats),
    ("run_facets", RunStats),
    ("error_rate", RunStats),
    ("streaming_rate", RunStats),
    ("total_cost", TokenStats),
    ("prompt_cost", TokenStats),
    ("completion_cost", TokenStats),
    ("cost_p50", TokenStats),
    ("cost_p99", TokenStats),
    ("session_feedback_stats", RunStats),
    ("prompt_token_details", TokenStats),
    ("completion_token_details", TokenStats),
    ("prompt_cost_details", TokenStats),
    ("completion_cost_details", TokenStats),
    ("unpriced_count", TokenStats),
];

/// Every statistic's name, in answer order.
pub const FIELDS: [&str; STATISTICS.len()] = {
    let mut names = [""; STATISTICS.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = STATISTICS[i].0;
        i += 1;
    }
    names
};

/// The selected statistics, as a set over [`FIELDS`]; the name that is no statistic otherwise.
pub fn selection(names: &[String]) -> Result<[bool; FIELDS.len()], String> {
    let mut selected = [false; FIELDS.len()];
    for name in names {
        let group = match name.as_str() {
            "all_run_stats" => Some(RunStats),
            "all_token_stats" => Some(TokenStats),
            _ => None,
        };
        let mut known = false;
        for (i, (field, field_group)) in STATISTICS.iter().enumerate() {
            if group.map_or(*field == name, |g| g == *field_group) {
                selected[i] = true;
                known = true;
            }
        }
        if !known {
            return Err(name.clone());
        }
    }
    Ok(selected)
}

/// One run, as the statistics need it.
#[derive(Debug, Clone)]
pub struct Run {
    pub started_at: DateTime<Utc>,
    /// None while running.
    pub latency_ms: Option<f64>,
    pub error: bool,
    pub is_root: bool,
    pub name: String,
    pub run_type: String,
    pub status: String,
    pub usage: Vec<UsageRow>,
    /// The type of each feedback on the run.
    pub feedback: Vec<String>,
}

/// A quarter hour of runs that share name, run type, root-ness and status (migration 0009):
/// what [`Tally`] needs of them, so that reading it gives the answer reading the runs would.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSlot {
    pub slot: DateTime<Utc>,
    pub name: String,
    pub run_type: String,
    pub is_root: bool,
    pub status: String,
    pub runs: u64,
    pub last_start: DateTime<Utc>,
    /// Each finished run's latency.
    pub latencies_ms: Vec<f64>,
    /// The models `usage_rows` name by position (read back from the rollups: the models of
    /// the whole slot, shared by its groups).
    pub models: Vec<String>,
    /// How many of `usage_rows` each run with usage has, in order.
    pub usage_runs: Vec<u32>,
    /// Every usage row of those runs: (index into `models`, counters).
    pub usage_rows: Vec<(u32, Counters)>,
}

impl RunSlot {
    /// A slot without runs (a buffer to fill).
    pub fn empty(slot: DateTime<Utc>) -> Self {
        RunSlot {
            slot,
            name: String::new(),
            run_type: String::new(),
            is_root: false,
            status: String::new(),
            runs: 0,
            last_start: slot,
            latencies_ms: Vec::new(),
            models: Vec::new(),
            usage_runs: Vec::new(),
            usage_rows: Vec::new(),
        }
    }

    /// Whether the slot's runs ended in an error.
    pub fn is_error(&self) -> bool {
        self.status == "error"
    }
}

/// The rollup groups of runs added one at a time (a rebuild streams its runs through, so it
/// holds only what the groups keep, never the runs themselves).
#[derive(Debug, Default)]
pub struct RunSlots {
    groups: BTreeMap<(DateTime<Utc>, String, String, bool, String), RunSlot>,
}

impl RunSlots {
    /// Add `run`, which starts in the quarter hour `slot`.
    pub fn add(&mut self, slot: DateTime<Utc>, run: Run) {
        let key = (slot, run.name, run.run_type, run.is_root, run.status);
        let entry = self.groups.entry(key).or_insert_with_key(|key| RunSlot {
            name: key.1.clone(),
            run_type: key.2.clone(),
            is_root: key.3,
            status: key.4.clone(),
            last_start: run.started_at,
            ..RunSlot::empty(slot)
        });
        entry.runs += 1;
        entry.last_start = entry.last_start.max(run.started_at);
        entry.latencies_ms.extend(run.latency_ms);
        if !run.usage.is_empty() {
            entry.usage_runs.push(run.usage.len() as u32);
            for row in run.usage {
                let index = match entry.models.iter().position(|m| *m == row.model) {
                    Some(i) => i,
                    None => {
                        entry.models.push(row.model);
                        entry.models.len() - 1
                    }
                };
                entry.usage_rows.push((index as u32, row.counters));
            }
        }
    }

    /// The groups, in key order (slot first).
    pub fn finish(self) -> Vec<RunSlot> {
        self.groups.into_values().collect()
    }
}

/// What one run's usage cost: the rows' token sums per price applied, and the rows no price
/// applies to.
#[derive(Debug, Clone, Default)]
pub struct RunCost<'b> {
    pub by_price: Vec<(&'b Price, TokenSums)>,
    pub unpriced_rows: u64,
}

impl<'b> RunCost<'b> {
    /// A run's cost, priced with its project's book at its start.
    pub fn of(run: &Run, book: &'b PriceBook) -> Self {
        let mut cost = RunCost::default();
        cost.fill(run.usage.iter().map(|row| (book.price_for(&row.model, run.started_at), &row.counters)));
        cost
    }

    /// Replace the contents with the cost of `rows` (each with the price that applies to it).
    pub fn fill<'c>(&mut self, rows: impl Iterator<Item = (Option<&'b Price>, &'c Counters)>) {
        self.by_price.clear();
        self.unpriced_rows = 0;
        for (price, counters) in rows {
            match price {
                Some(price) => match self.by_price.iter_mut().find(|(p, _)| p.id == price.id) {
                    Some((_, sums)) => sums.add_row(counters),
                    None => self.by_price.push((price, TokenSums::of_row(counters))),
                },
                None => self.unpriced_rows += 1,
            }
        }
    }

    /// The run's total cost in USD.
    pub fn total(&self) -> f64 {
        match self.by_price.as_slice() {
            [] => 0.0,
            [(price, sums)] => sums.cost(Some(price)).total(),
            many => exact_sum(&many.iter().map(|(price, sums)| sums.cost(Some(price)).total()).collect::<Vec<_>>()),
        }
    }
}

/// The statistics of one set of runs, built one run (or one [`RunSlot`]) at a time.
#[derive(Debug, Default)]
pub struct Tally {
    runs: u64,
    errors: u64,
    last_start: Option<DateTime<Utc>>,
    latencies_s: Vec<f64>,
    total_tokens: i128,
    prompt_tokens: i128,
    completion_tokens: i128,
    cache_read: i128,
    cache_creation: i128,
    run_total_tokens: Vec<i64>,
    run_prompt_tokens: Vec<i64>,
    run_completion_tokens: Vec<i64>,
    run_costs: Vec<f64>,
    priced: HashMap<String, (Price, TokenSums)>,
    unpriced_rows: u64,
    facets: [HashMap<String, u64>; 3],
    feedback: BTreeMap<String, u64>,
}

fn saturate(n: i128) -> i64 {
    n.clamp(i64::MIN.into(), i64::MAX.into()) as i64
}

/// Add `n` to the count of `key`, cloning the key only the first time.
fn count(counts: &mut HashMap<String, u64>, key: &str, n: u64) {
    match counts.get_mut(key) {
        Some(c) => *c += n,
        None => {
            counts.insert(key.to_string(), n);
        }
    }
}

impl Tally {
    pub fn run_count(&self) -> u64 {
        self.runs
    }

    pub fn add(&mut self, run: &Run, cost: &RunCost) {
        self.add_runs(1, &run.name, &run.run_type, &run.status, run.started_at);
        self.errors += u64::from(run.error);
        self.latencies_s.extend(run.latency_ms.map(|ms| ms / 1000.0));
        if !run.usage.is_empty() {
            self.add_usage(run.usage.iter().map(|row| &row.counters), cost);
        }
        for kind in &run.feedback {
            self.add_feedback(kind, 1);
        }
    }

    /// Every run of `slot`, its usage priced by `prices` (one per model of the slot).
    pub fn add_slot<'b>(&mut self, slot: &RunSlot, prices: &[Option<&'b Price>], cost: &mut RunCost<'b>) {
        self.add_runs(slot.runs, &slot.name, &slot.run_type, &slot.status, slot.last_start);
        if slot.is_error() {
            self.errors += slot.runs;
        }
        self.latencies_s.extend(slot.latencies_ms.iter().map(|ms| ms / 1000.0));
        // Runs with one usage row (most) skip the per-run price grouping: their token sums
        // go to the slot's per-model sums, priced once below.
        let mut per_model = vec![TokenSums::default(); prices.len()];
        let mut rows = slot.usage_rows.as_slice();
        for &n in &slot.usage_runs {
            let (run, rest) = rows.split_at((n as usize).min(rows.len()));
            rows = rest;
            if let [(model, counters)] = run {
                let sums = TokenSums::of_row(counters);
                let run_cost = match prices.get(*model as usize).copied().flatten() {
                    Some(price) => sums.cost(Some(price)).total(),
                    None => {
                        self.unpriced_rows += 1;
                        0.0
                    }
                };
                self.add_run_tokens(std::slice::from_ref(counters).iter(), run_cost);
                if let Some(total) = per_model.get_mut(*model as usize) {
                    total.add(&sums);
                }
            } else {
                cost.fill(
                    run.iter().map(|(model, counters)| (prices.get(*model as usize).copied().flatten(), counters)),
                );
                self.add_usage(run.iter().map(|(_, counters)| counters), cost);
            }
        }
        for (price, sums) in prices.iter().zip(&per_model) {
            if let Some(price) = price {
                self.add_priced(price, sums);
            }
        }
    }

    pub fn add_feedback(&mut self, kind: &str, n: u64) {
        match self.feedback.get_mut(kind) {
            Some(c) => *c += n,
            None => {
                self.feedback.insert(kind.to_string(), n);
            }
        }
    }

    fn add_runs(&mut self, n: u64, name: &str, run_type: &str, status: &str, last_start: DateTime<Utc>) {
        self.runs += n;
        self.last_start = self.last_start.max(Some(last_start));
        for (facet, value) in self.facets.iter_mut().zip([name, run_type, status]) {
            count(facet, value, n);
        }
    }

    /// One run's usage rows, and what they cost.
    fn add_usage<'c>(&mut self, rows: impl Iterator<Item = &'c Counters>, cost: &RunCost) {
        self.add_run_tokens(rows, cost.total());
        for (price, sums) in &cost.by_price {
            self.add_priced(price, sums);
        }
        self.unpriced_rows += cost.unpriced_rows;
    }

    /// One run's token counts and total cost.
    fn add_run_tokens<'c>(&mut self, rows: impl Iterator<Item = &'c Counters>, run_cost: f64) {
        let (mut total, mut prompt, mut completion) = (0i128, 0i128, 0i128);
        for c in rows {
            total += i128::from(c.total_tokens);
            prompt += i128::from(c.input_tokens);
            completion += i128::from(c.output_tokens);
            self.cache_read += i128::from(c.cache_read_input_tokens);
            self.cache_creation += i128::from(c.cache_creation_input_tokens);
        }
        self.total_tokens += total;
        self.prompt_tokens += prompt;
        self.completion_tokens += completion;
        self.run_total_tokens.push(saturate(total));
        self.run_prompt_tokens.push(saturate(prompt));
        self.run_completion_tokens.push(saturate(completion));
        self.run_costs.push(run_cost);
    }

    fn add_priced(&mut self, price: &Price, sums: &TokenSums) {
        match self.priced.get_mut(&price.id) {
            Some((_, total)) => total.add(sums),
            None => {
                self.priced.insert(price.id.clone(), (price.clone(), *sums));
            }
        }
    }

    /// The selected statistics, in [`FIELDS`] order.
    pub fn render(mut self, selected: &[bool; FIELDS.len()]) -> Map<String, Value> {
        let n = self.runs;
        let is = |field: &str| FIELDS.iter().position(|f| *f == field).is_some_and(|i| selected[i]);
        // Percentiles by selection, and only those asked for: a full sort of a million values
        // costs more than the rest of the request.
        let latency = if is("latency_p50") || is("latency_p99") {
            percentiles(&mut self.latencies_s, &[50.0, 99.0])
        } else {
            vec![None, None]
        };
        let cost_ps = if is("cost_p50") || is("cost_p99") {
            percentiles(&mut self.run_costs, &[50.0, 99.0])
        } else {
            vec![None, None]
        };
        let disc = |values: &mut Vec<i64>, p: u64, field: &str| is(field).then(|| percentile_disc(values, p)).flatten();
        let median_tokens = disc(&mut self.run_total_tokens, 50, "median_tokens");
        let tokens_p99 = disc(&mut self.run_total_tokens, 99, "tokens_p99");
        let completion_p50 = disc(&mut self.run_completion_tokens, 50, "completion_tokens_p50");
        let completion_p99 = disc(&mut self.run_completion_tokens, 99, "completion_tokens_p99");
        let prompt_p50 = disc(&mut self.run_prompt_tokens, 50, "prompt_tokens_p50");
        let prompt_p99 = disc(&mut self.run_prompt_tokens, 99, "prompt_tokens_p99");
        let costs: Vec<_> = self.priced.values().map(|(price, sums)| sums.cost(Some(price))).collect();
        let sum = |f: fn(&crate::domain::costs::Cost) -> f64| exact_sum(&costs.iter().map(f).collect::<Vec<_>>());
        let (input_cost, output_cost, read_cost, creation_cost) =
            (sum(|c| c.input), sum(|c| c.output), sum(|c| c.cache_read), sum(|c| c.cache_creation));
        let num = |n: i128| json!(saturate(n));
        let mut out = Map::new();
        for (i, field) in FIELDS.iter().enumerate() {
            if !selected[i] {
                continue;
            }
            let value = match *field {
                "run_count" => json!(n),
                "latency_p50" => json!(latency[0]),
                "latency_p99" => json!(latency[1]),
                "latency_avg" => json!((!self.latencies_s.is_empty())
                    .then(|| exact_sum(&self.latencies_s) / self.latencies_s.len() as f64)),
                "first_token_p50" | "first_token_p99" | "streaming_rate" => Value::Null,
                "total_tokens" => num(self.total_tokens),
                "prompt_tokens" => num(self.prompt_tokens),
                "completion_tokens" => num(self.completion_tokens),
                "median_tokens" => json!(median_tokens),
                "completion_tokens_p50" => json!(completion_p50),
                "prompt_tokens_p50" => json!(prompt_p50),
                "tokens_p99" => json!(tokens_p99),
                "completion_tokens_p99" => json!(completion_p99),
                "prompt_tokens_p99" => json!(prompt_p99),
                "last_run_start_time" => json!(self.last_start.map(Timestamp)),
                "feedback_stats" => {
                    Value::Object(self.feedback.iter().map(|(kind, n)| (kind.clone(), json!({ "n": n }))).collect())
                }
                "thread_feedback_stats"
                | "session_feedback_stats"
                | "completion_token_details"
                | "completion_cost_details" => json!({}),
                "run_facets" => json!(facets(&self.facets)),
                "error_rate" => json!((n > 0).then(|| self.errors as f64 / n as f64)),
                "total_cost" => json!(exact_sum(&[input_cost, output_cost, read_cost, creation_cost])),
                "prompt_cost" => json!(exact_sum(&[input_cost, read_cost, creation_cost])),
                "completion_cost" => json!(output_cost),
                "cost_p50" => json!(cost_ps[0]),
                "cost_p99" => json!(cost_ps[1]),
                "prompt_token_details" => {
                    json!({ "cache_read": saturate(self.cache_read), "cache_creation": saturate(self.cache_creation) })
                }
                "prompt_cost_details" => json!({ "cache_read": read_cost, "cache_creation": creation_cost }),
                "unpriced_count" => json!(self.unpriced_rows),
                _ => continue,
            };
            out.insert((*field).to_string(), value);
        }
        out
    }
}

/// Which value of a [`RunSlot`] names its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotGroup {
    Name,
    RunType,
}

/// The prices of the models of the slot being read, found once a slot (its groups share its
/// models), with a buffer for each run's cost.
pub struct SlotPricing<'b> {
    book: &'b PriceBook,
    slot: Option<DateTime<Utc>>,
    prices: Vec<Option<&'b Price>>,
    cost: RunCost<'b>,
}

impl<'b> SlotPricing<'b> {
    pub fn new(book: &'b PriceBook) -> Self {
        SlotPricing { book, slot: None, prices: Vec::new(), cost: RunCost::default() }
    }

    fn price(&mut self, slot: &RunSlot) -> (&[Option<&'b Price>], &mut RunCost<'b>) {
        if self.slot != Some(slot.slot) {
            self.slot = Some(slot.slot);
            self.prices.clear();
            self.prices.extend(slot.models.iter().map(|model| self.book.price_for(model, slot.slot)));
        }
        (&self.prices, &mut self.cost)
    }
}

/// The answer being built: one tally, or one per group.
pub struct Answer<'g> {
    whole: Tally,
    groups: Groups,
    grouping: Option<&'g Grouping>,
    slot_group: SlotGroup,
}

impl<'g> Answer<'g> {
    pub fn new(grouping: Option<&'g Grouping>, slot_group: SlotGroup) -> Self {
        Answer { whole: Tally::default(), groups: Groups::default(), grouping, slot_group }
    }

    /// One run, in each of `values` when grouped.
    pub fn add(&mut self, values: &[String], run: &Run, cost: &RunCost) {
        match self.grouping {
            Some(grouping) => self.groups.add(values, run, cost, grouping),
            None => self.whole.add(run, cost),
        }
    }

    /// Every run of `slot`.
    pub fn add_slot(&mut self, slot: &RunSlot, pricing: &mut SlotPricing) {
        let (prices, cost) = pricing.price(slot);
        match self.grouping {
            Some(grouping) => {
                let value = match self.slot_group {
                    SlotGroup::Name => &slot.name,
                    SlotGroup::RunType => &slot.run_type,
                };
                self.groups.add_slot(value, slot, prices, cost, grouping);
            }
            None => self.whole.add_slot(slot, prices, cost),
        }
    }

    /// `n` feedbacks of type `kind` on runs of the group `value` (ignored when not grouped).
    pub fn add_feedback(&mut self, value: &str, kind: &str, n: u64) {
        match self.grouping {
            Some(grouping) => self.groups.add_feedback(value, kind, n, grouping),
            None => self.whole.add_feedback(kind, n),
        }
    }

    /// Runs counted so far (a run in two groups counts twice).
    pub fn run_count(&self) -> u64 {
        self.whole.run_count() + self.groups.run_count()
    }

    pub fn render(self, selected: &[bool; FIELDS.len()]) -> Map<String, Value> {
        match self.grouping {
            Some(grouping) => self.groups.render(grouping, selected),
            None => self.whole.render(selected),
        }
    }
}

/// Where a request for runs in `[start, end)` (either end open) reads: whole quarter hours
/// from the run rollups when `rollups` allows, raw runs at the edges and in every slot where a
/// price takes effect (its runs would be priced two ways).
pub fn read_plan(
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    rollups: bool,
    price_changes: impl IntoIterator<Item = DateTime<Utc>>,
) -> Plan {
    let (first, last) = slots::all_time();
    let (start, end) = (start.unwrap_or(first).max(first), end.unwrap_or(last).min(last));
    if start >= end {
        return Plan { slots: Vec::new(), raw: Vec::new(), hours: false };
    }
    Plan::new(rollups.then(|| slots::split_window(start, end)).flatten(), start, end).without(price_changes)
}

/// `percentile_disc`: the smallest value whose cumulative share is at least `p` percent (by
/// selection; reorders `values`).
pub fn percentile_disc(values: &mut [i64], p: u64) -> Option<i64> {
    let n = values.len() as u64;
    // ceil(p·n / 100) in integers, so 0.99·n never rounds up past a whole rank.
    let rank = (p * n).div_ceil(100).max(1);
    (n > 0).then(|| *values.select_nth_unstable((rank - 1) as usize).1)
}

/// Up to ten most frequent values of each facet, ordered by key, count (descending), value.
fn facets(counts: &[HashMap<String, u64>; 3]) -> Vec<Value> {
    let mut out = Vec::new();
    for (key, counts) in ["name", "run_type", "status"].iter().zip(counts) {
        let mut values: Vec<(&String, &u64)> = counts.iter().collect();
        values.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.as_bytes().cmp(b.0.as_bytes())));
        out.extend(values.into_iter().take(10).map(|(value, n)| json!({ "key": key, "value": value, "n": n })));
    }
    out
}

/// How runs are grouped, once each run's group values are known.
#[derive(Debug, Clone, Default)]
pub struct Grouping {
    /// At most this many groups, the largest first.
    pub max_groups: usize,
    /// Exactly these groups (in the answer even when empty), when given.
    pub groups: Option<Vec<String>>,
}

/// Per-group tallies, in the order answers list groups.
#[derive(Debug, Default)]
pub struct Groups {
    tallies: HashMap<String, Tally>,
}

impl Groups {
    /// Count `run` in each of its groups (each distinct value once).
    pub fn add(&mut self, values: &[String], run: &Run, cost: &RunCost, grouping: &Grouping) {
        let mut seen: Vec<&String> = Vec::with_capacity(values.len());
        for value in values {
            if seen.contains(&value) {
                continue;
            }
            seen.push(value);
            if let Some(tally) = self.tally(value, grouping) {
                tally.add(run, cost);
            }
        }
    }

    /// Count every run of `slot` in the group `value`.
    pub fn add_slot<'b>(
        &mut self,
        value: &str,
        slot: &RunSlot,
        prices: &[Option<&'b Price>],
        cost: &mut RunCost<'b>,
        grouping: &Grouping,
    ) {
        if let Some(tally) = self.tally(value, grouping) {
            tally.add_slot(slot, prices, cost);
        }
    }

    /// `n` feedbacks of type `kind` on runs of the group `value`.
    pub fn add_feedback(&mut self, value: &str, kind: &str, n: u64, grouping: &Grouping) {
        if let Some(tally) = self.tally(value, grouping) {
            tally.add_feedback(kind, n);
        }
    }

    /// The tally of group `value`, unless `grouping` leaves it out.
    fn tally(&mut self, value: &str, grouping: &Grouping) -> Option<&mut Tally> {
        if grouping.groups.as_ref().is_some_and(|wanted| !wanted.iter().any(|w| w == value)) {
            return None;
        }
        if !self.tallies.contains_key(value) {
            self.tallies.insert(value.to_string(), Tally::default());
        }
        self.tallies.get_mut(value)
    }

    /// Runs counted so far, over all groups (a run in two groups counts twice).
    pub fn run_count(&self) -> u64 {
        self.tallies.values().map(Tally::run_count).sum()
    }

    /// The answer: group value → statistics, by run count (descending) then value.
    pub fn render(mut self, grouping: &Grouping, selected: &[bool; FIELDS.len()]) -> Map<String, Value> {
        if let Some(wanted) = &grouping.groups {
            for value in wanted {
                self.tallies.entry(value.clone()).or_default();
            }
        }
        let mut groups: Vec<(String, Tally)> = self.tallies.into_iter().collect();
        groups.sort_by(|a, b| b.1.runs.cmp(&a.1.runs).then_with(|| a.0.as_bytes().cmp(b.0.as_bytes())));
        if grouping.groups.is_none() {
            groups.truncate(grouping.max_groups);
        }
        groups.into_iter().map(|(value, tally)| (value, Value::Object(tally.render(selected)))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::usage::Counters;

    fn run(latency_ms: Option<f64>, usage: &[(&str, i64, i64)]) -> Run {
        Run {
            started_at: "2025-01-01T00:00:00Z".parse().unwrap(),
            latency_ms,
            error: false,
            is_root: true,
            name: "op".into(),
            run_type: "chain".into(),
            status: "success".into(),
            usage: usage
                .iter()
                .map(|(model, input, output)| UsageRow {
                    model: (*model).into(),
                    counters: Counters {
                        requests: 1,
                        input_tokens: *input,
                        output_tokens: *output,
                        total_tokens: input + output,
                        ..Counters::default()
                    },
                })
                .collect(),
            feedback: vec![],
        }
    }

    #[test]
    fn percentile_disc_is_the_smallest_value_reaching_the_share() {
        assert_eq!(percentile_disc(&mut [], 50), None);
        assert_eq!(percentile_disc(&mut [7], 99), Some(7));
        assert_eq!(percentile_disc(&mut [4, 2, 3, 1], 50), Some(2), "even count: the lower middle");
        assert_eq!(percentile_disc(&mut [5, 1, 4, 2, 3], 50), Some(3), "odd count: the middle");
        assert_eq!(percentile_disc(&mut [1, 2, 3, 4], 99), Some(4));
        let mut hundred: Vec<i64> = (1..=100).rev().collect();
        assert_eq!(percentile_disc(&mut hundred, 99), Some(99), "exactly 99% reach 99");
        let mut three_hundred: Vec<i64> = (1..=300).collect();
        assert_eq!(percentile_disc(&mut three_hundred, 99), Some(297));
    }

    #[test]
    fn latency_percentiles_interpolate_and_skip_running_runs() {
        let mut tally = Tally::default();
        for ms in [Some(1000.0), Some(2000.0), None, Some(4000.0), Some(3000.0)] {
            let r = run(ms, &[]);
            tally.add(&r, &RunCost::default());
        }
        let all = selection(&["all_run_stats".into()]).unwrap();
        let out = tally.render(&all);
        assert_eq!(out["run_count"], json!(5));
        assert_eq!(out["latency_p50"], json!(2.5));
        assert_eq!(out["latency_p99"], json!(3.0 + (0.99 * 3.0 - 2.0)), "Postgres's percentile_cont arithmetic");
        assert_eq!(out["latency_avg"], json!(2.5));
        assert!(!out.contains_key("total_tokens"), "token stats are not selected");
    }

    #[test]
    fn token_stats_count_only_runs_with_usage() {
        let mut tally = Tally::default();
        for r in [run(Some(1.0), &[("a", 10, 5), ("b", 1, 1)]), run(Some(1.0), &[]), run(Some(1.0), &[("a", 4, 0)])] {
            tally.add(&r, &RunCost::default());
        }
        let out = tally.render(&selection(&["all_token_stats".into()]).unwrap());
        assert_eq!(out["total_tokens"], json!(21));
        assert_eq!(out["prompt_tokens"], json!(15));
        assert_eq!(out["median_tokens"], json!(4), "percentile_disc over 4 and 17");
        assert_eq!(out["tokens_p99"], json!(17));
    }

    #[test]
    fn unknown_statistics_are_named_in_the_error() {
        assert_eq!(selection(&["run_count".into(), "p42".into()]), Err("p42".to_string()));
    }
}
