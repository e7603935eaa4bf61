//! `/api/v1/runs/stats` (API.md §12.2), pure: the statistics of a set of runs, whole or per
//! group, from one pass over the runs. Latency and cost percentiles are exact
//! (`percentile_cont`); token percentiles are `percentile_disc` (always a value that occurred).
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::aggregate::{exact_sum, percentile};
use crate::domain::costs::{Price, PriceBook, TokenSums};
use crate::domain::usage::UsageRow;
use crate::domain::Timestamp;

/// Every statistic, in the order answers list them (LangSmith's order; `unpriced_count`, an
/// extension, last).
pub const FIELDS: [&str; 32] = [
    "run_count",
    "latency_p50",
    "latency_p99",
    "latency_avg",
    "first_token_p50",
    "first_token_p99",
    "total_tokens",
    "prompt_tokens",
    "completion_tokens",
    "median_tokens",
    "completion_tokens_p50",
    "prompt_tokens_p50",
    "tokens_p99",
    "completion_tokens_p99",
    "prompt_tokens_p99",
    "last_run_start_time",
    "feedback_stats",
    "thread_feedback_stats",
    "run_facets",
    "error_rate",
    "streaming_rate",
    "total_cost",
    "prompt_cost",
    "completion_cost",
    "cost_p50",
    "cost_p99",
    "session_feedback_stats",
    "prompt_token_details",
    "completion_token_details",
    "prompt_cost_details",
    "completion_cost_details",
    "unpriced_count",
];

/// `all_run_stats`: the statistics about runs themselves.
pub const RUN_STATS: [&str; 13] = [
    "run_count",
    "latency_p50",
    "latency_p99",
    "latency_avg",
    "first_token_p50",
    "first_token_p99",
    "last_run_start_time",
    "feedback_stats",
    "thread_feedback_stats",
    "run_facets",
    "error_rate",
    "streaming_rate",
    "session_feedback_stats",
];

/// `all_token_stats`: tokens and costs.
pub const TOKEN_STATS: [&str; 19] = [
    "total_tokens",
    "prompt_tokens",
    "completion_tokens",
    "median_tokens",
    "completion_tokens_p50",
    "prompt_tokens_p50",
    "tokens_p99",
    "completion_tokens_p99",
    "prompt_tokens_p99",
    "total_cost",
    "prompt_cost",
    "completion_cost",
    "cost_p50",
    "cost_p99",
    "prompt_token_details",
    "completion_token_details",
    "prompt_cost_details",
    "completion_cost_details",
    "unpriced_count",
];

/// The selected statistics, as a set over [`FIELDS`]; `None` for a name that is no statistic.
pub fn selection(names: &[String]) -> Result<[bool; FIELDS.len()], String> {
    let mut selected = [false; FIELDS.len()];
    for name in names {
        let group: &[&str] = match name.as_str() {
            "all_run_stats" => &RUN_STATS,
            "all_token_stats" => &TOKEN_STATS,
            other => std::slice::from_ref(FIELDS.iter().find(|f| **f == other).ok_or_else(|| name.clone())?),
        };
        for field in group {
            if let Some(i) = FIELDS.iter().position(|f| f == field) {
                selected[i] = true;
            }
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
    pub name: String,
    pub run_type: String,
    pub status: String,
    pub usage: Vec<UsageRow>,
    /// The type of each feedback on the run.
    pub feedback: Vec<String>,
}

/// What one run's usage cost, priced with its project's book.
#[derive(Debug, Clone, Default)]
pub struct RunCost {
    /// Token sums per price applied (by price id, with the price).
    pub by_price: Vec<(Price, TokenSums)>,
    pub unpriced_rows: u64,
}

impl RunCost {
    pub fn of(run: &Run, book: &PriceBook) -> Self {
        let mut out = RunCost::default();
        for row in &run.usage {
            match book.price_for(&row.model, run.started_at) {
                Some(price) => match out.by_price.iter_mut().find(|(p, _)| p.id == price.id) {
                    Some((_, sums)) => sums.add_row(&row.counters),
                    None => out.by_price.push((price.clone(), TokenSums::of_row(&row.counters))),
                },
                None => out.unpriced_rows += 1,
            }
        }
        out
    }

    /// The run's total cost in USD.
    pub fn total(&self) -> f64 {
        exact_sum(&self.by_price.iter().map(|(price, sums)| sums.cost(Some(price)).total()).collect::<Vec<_>>())
    }
}

/// The statistics of one set of runs, built one run at a time.
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

impl Tally {
    pub fn run_count(&self) -> u64 {
        self.runs
    }

    pub fn add(&mut self, run: &Run, cost: &RunCost) {
        self.runs += 1;
        self.errors += u64::from(run.error);
        self.last_start = self.last_start.max(Some(run.started_at));
        if let Some(ms) = run.latency_ms {
            self.latencies_s.push(ms / 1000.0);
        }
        if !run.usage.is_empty() {
            let (mut total, mut prompt, mut completion) = (0i128, 0i128, 0i128);
            for row in &run.usage {
                let c = &row.counters;
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
            self.run_costs.push(cost.total());
        }
        for (price, sums) in &cost.by_price {
            self.priced.entry(price.id.clone()).or_insert_with(|| (price.clone(), TokenSums::default())).1.add(sums);
        }
        self.unpriced_rows += cost.unpriced_rows;
        for (facet, value) in self.facets.iter_mut().zip([&run.name, &run.run_type, &run.status]) {
            *facet.entry(value.clone()).or_default() += 1;
        }
        for kind in &run.feedback {
            *self.feedback.entry(kind.clone()).or_default() += 1;
        }
    }

    /// The selected statistics, in [`FIELDS`] order.
    pub fn render(mut self, selected: &[bool; FIELDS.len()]) -> Map<String, Value> {
        let n = self.runs;
        let sort_f = |v: &mut Vec<f64>| v.sort_by(f64::total_cmp);
        sort_f(&mut self.latencies_s);
        sort_f(&mut self.run_costs);
        self.run_total_tokens.sort_unstable();
        self.run_prompt_tokens.sort_unstable();
        self.run_completion_tokens.sort_unstable();
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
                "latency_p50" => json!(percentile(&self.latencies_s, 50.0)),
                "latency_p99" => json!(percentile(&self.latencies_s, 99.0)),
                "latency_avg" => json!((!self.latencies_s.is_empty())
                    .then(|| exact_sum(&self.latencies_s) / self.latencies_s.len() as f64)),
                "first_token_p50" | "first_token_p99" | "streaming_rate" => Value::Null,
                "total_tokens" => num(self.total_tokens),
                "prompt_tokens" => num(self.prompt_tokens),
                "completion_tokens" => num(self.completion_tokens),
                "median_tokens" => json!(percentile_disc(&self.run_total_tokens, 50)),
                "completion_tokens_p50" => json!(percentile_disc(&self.run_completion_tokens, 50)),
                "prompt_tokens_p50" => json!(percentile_disc(&self.run_prompt_tokens, 50)),
                "tokens_p99" => json!(percentile_disc(&self.run_total_tokens, 99)),
                "completion_tokens_p99" => json!(percentile_disc(&self.run_completion_tokens, 99)),
                "prompt_tokens_p99" => json!(percentile_disc(&self.run_prompt_tokens, 99)),
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
                "cost_p50" => json!(percentile(&self.run_costs, 50.0)),
                "cost_p99" => json!(percentile(&self.run_costs, 99.0)),
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

/// `percentile_disc`: the smallest value whose cumulative share is at least `p` percent.
pub fn percentile_disc(sorted: &[i64], p: u64) -> Option<i64> {
    let n = sorted.len() as u64;
    // ceil(p·n / 100) in integers, so 0.99·n never rounds up past a whole rank.
    let rank = (p * n).div_ceil(100).max(1);
    (n > 0).then(|| sorted[(rank - 1) as usize])
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
            if grouping.groups.as_ref().is_some_and(|wanted| !wanted.contains(value)) {
                continue;
            }
            self.tallies.entry(value.clone()).or_default().add(run, cost);
        }
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
        assert_eq!(percentile_disc(&[], 50), None);
        assert_eq!(percentile_disc(&[7], 99), Some(7));
        assert_eq!(percentile_disc(&[1, 2, 3, 4], 50), Some(2), "even count: the lower middle");
        assert_eq!(percentile_disc(&[1, 2, 3, 4, 5], 50), Some(3), "odd count: the middle");
        assert_eq!(percentile_disc(&[1, 2, 3, 4], 99), Some(4));
        let hundred: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile_disc(&hundred, 99), Some(99), "exactly 99% reach 99");
        let three_hundred: Vec<i64> = (1..=300).collect();
        assert_eq!(percentile_disc(&three_hundred, 99), Some(297));
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
