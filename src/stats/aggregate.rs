//! Aggregations, exact percentiles and key names (API.md §4.5, §4.6).
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// What to compute over a metric's non-null values in a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    CountTrue,
    CountFalse,
}

impl Aggregation {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sum => "sum",
            Self::Avg => "avg",
            Self::Min => "min",
            Self::Max => "max",
            Self::Count => "count",
            Self::CountTrue => "count_true",
            Self::CountFalse => "count_false",
        }
    }
}

/// Whether a metric's values are integers (counts, tokens) or numbers (latency, costs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Int,
    Float,
}

/// One metric as asked: its name, kind, aggregations and percentiles, in request order.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSpec {
    pub metric: String,
    pub kind: ValueKind,
    pub aggregations: Vec<Aggregation>,
    pub percentiles: Vec<f64>,
}

/// The non-null values of one metric in one bucket: listed one by one (raw rows), as runs of
/// one integer repeated (counts from rollups), or known only by count and sum (token sums from
/// rollups; enough for `sum`, `avg` and `count`, which is all a plan routes that way).
#[derive(Debug, Clone, Default)]
pub struct Values {
    ints: Vec<i64>,
    floats: Vec<f64>,
    int_runs: BTreeMap<i64, u64>,
    unlisted_count: u64,
    unlisted_int_sum: i128,
    /// The sum of every value when it is known more exactly than by adding the listed floats
    /// (costs: summed tokens × rate, one rounding per price).
    sum_override: Option<f64>,
    /// What summaries tell of unlisted floats (rolled-up latencies).
    summarized: Summarized,
    /// The values at the ranks percentiles need, found by the caller when some values are
    /// unlisted (`stats::binned`): (rank, value) ascending.
    ranked: Option<Vec<(usize, f64)>>,
}

/// Min, max and the counts of exact zeros and ones of unlisted floats.
#[derive(Debug, Clone, Default)]
struct Summarized {
    min: Option<f64>,
    max: Option<f64>,
    zeros: u64,
    ones: u64,
}

impl Values {
    pub fn push_int(&mut self, value: i64) {
        self.ints.push(value);
    }

    pub fn push_float(&mut self, value: f64) {
        self.floats.push(value);
    }

    /// `times` more values equal to `value`.
    pub fn push_int_times(&mut self, value: i64, times: u64) {
        if times > 0 {
            *self.int_runs.entry(value).or_default() += times;
        }
    }

    /// `count` more integer values, known only by their `sum`.
    pub fn add_unlisted_ints(&mut self, count: u64, sum: i128) {
        self.unlisted_count += count;
        self.unlisted_int_sum += sum;
    }

    /// `count` more float values, known only by their count (their sum comes from `set_sum`).
    pub fn add_unlisted_floats(&mut self, count: u64) {
        self.unlisted_count += count;
    }

    /// `count` more float values known by a summary: their min and max, how many are exactly
    /// 0 and 1 (their sum comes from `set_sum`, percentiles from `set_ranked`).
    pub fn add_summarized_floats(&mut self, count: u64, min: f64, max: f64, zeros: u64, ones: u64) {
        self.unlisted_count += count;
        let s = &mut self.summarized;
        s.min = Some(s.min.map_or(min, |m| m.min(min)));
        s.max = Some(s.max.map_or(max, |m| m.max(max)));
        s.zeros += zeros;
        s.ones += ones;
    }

    /// The floats listed one by one.
    pub fn listed_floats(&self) -> &[f64] {
        &self.floats
    }

    /// How many values there are, listed or not.
    pub fn count(&self) -> usize {
        self.ints.len()
            + self.floats.len()
            + self.int_runs.values().sum::<u64>() as usize
            + self.unlisted_count as usize
    }

    /// The values at the ranks the percentiles need ([`ranks`]), found elsewhere.
    pub fn set_ranked(&mut self, ranked: Vec<(usize, f64)>) {
        self.ranked = Some(ranked);
    }

    /// The exact sum of all float values, replacing the sum of the listed ones.
    pub fn set_sum(&mut self, sum: f64) {
        self.sum_override = Some(sum);
    }

    /// Whether every value is known one by one (min, max, count_true/false and percentiles
    /// need that).
    pub fn is_listed(&self) -> bool {
        self.unlisted_count == 0
    }
}

/// `p<P>_<metric>`: P as an integer when whole (50.0 → `p50`), else its shortest decimal form.
pub fn percentile_key(p: f64, metric: &str) -> String {
    if p.fract() == 0.0 && p.abs() < 1e15 {
        format!("p{}_{metric}", p as i64)
    } else {
        format!("p{p}_{metric}")
    }
}

/// Exact percentile of sorted values by linear interpolation (Postgres `percentile_cont`);
/// None when there are no values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    percentile_of(sorted.len(), p, |i| sorted[i])
}

/// `percentile` over `n` sorted values given by their position.
fn percentile_of(n: usize, p: f64, nth: impl Fn(usize) -> f64) -> Option<f64> {
    if n == 0 {
        return None;
    }
    let h = (p / 100.0) * (n - 1) as f64;
    let i = (h.floor() as usize).min(n - 1);
    if i == n - 1 {
        return Some(nth(n - 1));
    }
    let (low, high) = (nth(i), nth(i + 1));
    Some(low + (h - i as f64) * (high - low))
}

/// Append the keys of `spec` for one bucket's `values` to `out`, in request order:
/// aggregations, then percentiles. Sorts the values in place.
pub fn render(spec: &MetricSpec, values: &mut Values, out: &mut Map<String, Value>) {
    match spec.kind {
        ValueKind::Int => render_ints(spec, values, out),
        ValueKind::Float => render_floats(spec, values, out),
    }
}

fn render_ints(spec: &MetricSpec, values: &mut Values, out: &mut Map<String, Value>) {
    let runs = &values.int_runs;
    let listed = &mut values.ints;
    let run_count: u64 = runs.values().sum();
    let n = listed.len() as u64 + run_count + values.unlisted_count;
    let sum: i128 = listed.iter().map(|&v| i128::from(v)).sum::<i128>()
        + runs.iter().map(|(&v, &c)| i128::from(v) * i128::from(c)).sum::<i128>()
        + values.unlisted_int_sum;
    let equal_to = |x: i64| listed.iter().filter(|&&v| v == x).count() as u64 + runs.get(&x).copied().unwrap_or(0);
    for &aggregation in &spec.aggregations {
        let value = match aggregation {
            Aggregation::Sum => Value::from(saturate(sum)),
            Aggregation::Avg => Value::from(if n == 0 { 0.0 } else { sum as f64 / n as f64 }),
            Aggregation::Min => {
                listed.iter().copied().chain(runs.keys().next().copied()).min().map_or(Value::Null, Value::from)
            }
            Aggregation::Max => {
                listed.iter().copied().chain(runs.keys().next_back().copied()).max().map_or(Value::Null, Value::from)
            }
            Aggregation::Count => Value::from(n),
            Aggregation::CountTrue => Value::from(equal_to(1)),
            Aggregation::CountFalse => Value::from(equal_to(0)),
        };
        out.insert(format!("{}_{}", aggregation.name(), spec.metric), value);
    }
    if spec.percentiles.is_empty() {
        return;
    }
    listed.sort_unstable();
    if runs.is_empty() {
        let sorted: Vec<f64> = listed.iter().map(|&v| v as f64).collect();
        insert_percentiles(spec, |p| percentile(&sorted, p), out);
        return;
    }
    // Runs and listed values merged into (value, position after its last copy), ascending.
    let mut merged: BTreeMap<i64, u64> = runs.clone();
    for &v in listed.iter() {
        *merged.entry(v).or_default() += 1;
    }
    let mut ends = Vec::with_capacity(merged.len());
    let mut position = 0u64;
    for (v, c) in merged {
        position += c;
        ends.push((v, position));
    }
    let nth = |i: usize| ends[ends.partition_point(|&(_, end)| end <= i as u64)].0 as f64;
    insert_percentiles(spec, |p| percentile_of(position as usize, p, nth), out);
}

fn render_floats(spec: &MetricSpec, values: &mut Values, out: &mut Map<String, Value>) {
    let listed = &mut values.floats;
    let summarized = &values.summarized;
    let n = listed.len() as u64 + values.unlisted_count;
    let sum: f64 = values.sum_override.unwrap_or_else(|| exact_sum(listed));
    for &aggregation in &spec.aggregations {
        let value = match aggregation {
            // An empty sum is the integer 0, as in API.md's worked example.
            Aggregation::Sum => {
                if n == 0 {
                    Value::from(0)
                } else {
                    number(sum)
                }
            }
            Aggregation::Avg => number(if n == 0 { 0.0 } else { sum / n as f64 }),
            Aggregation::Min => {
                listed.iter().copied().chain(summarized.min).reduce(f64::min).map_or(Value::Null, number)
            }
            Aggregation::Max => {
                listed.iter().copied().chain(summarized.max).reduce(f64::max).map_or(Value::Null, number)
            }
            Aggregation::Count => Value::from(n),
            Aggregation::CountTrue => {
                Value::from(listed.iter().filter(|&&v| v == 1.0).count() as u64 + summarized.ones)
            }
            Aggregation::CountFalse => {
                Value::from(listed.iter().filter(|&&v| v == 0.0).count() as u64 + summarized.zeros)
            }
        };
        out.insert(format!("{}_{}", aggregation.name(), spec.metric), value);
    }
    if spec.percentiles.is_empty() {
        return;
    }
    if let Some(at_rank) = &values.ranked {
        insert_percentiles(spec, |p| percentile_selected(at_rank, n as usize, p), out);
        return;
    }
    let at_rank = select_ranks(listed, &spec.percentiles);
    let count = listed.len();
    insert_percentiles(spec, |p| percentile_selected(&at_rank, count, p), out);
}

/// `percentile` of each of `ps` by selection rather than a full sort (reorders `values`).
pub fn percentiles(values: &mut [f64], ps: &[f64]) -> Vec<Option<f64>> {
    let at_rank = select_ranks(values, ps);
    ps.iter().map(|&p| percentile_selected(&at_rank, values.len(), p)).collect()
}

/// `percentile` of `count` values from the ranks [`select_ranks`] picked for it.
fn percentile_selected(at_rank: &[(usize, f64)], count: usize, p: f64) -> Option<f64> {
    percentile_of(count, p, |i| {
        at_rank.binary_search_by_key(&i, |&(rank, _)| rank).map(|k| at_rank[k].1).expect("rank was selected")
    })
}

/// The ranks (0-based, ascending, distinct) that the percentiles `ps` of `n` values
/// interpolate between.
pub fn ranks(n: usize, ps: &[f64]) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    let mut ranks: Vec<usize> = ps
        .iter()
        .flat_map(|p| {
            let i = (((p / 100.0) * (n - 1) as f64).floor() as usize).min(n - 1);
            [i, (i + 1).min(n - 1)]
        })
        .collect();
    ranks.sort_unstable();
    ranks.dedup();
    ranks
}

/// The values at the ranks the percentiles `ps` interpolate between, by selection rather than
/// a full sort: (rank, value) ascending. Reorders `values`.
fn select_ranks(values: &mut [f64], ps: &[f64]) -> Vec<(usize, f64)> {
    let ranks = ranks(values.len(), ps);
    let mut selected: Vec<(usize, f64)> = Vec::with_capacity(ranks.len());
    let mut done = 0;
    for rank in ranks {
        // Everything before `done` is at most everything from it on, so the value at `rank` is
        // found in `values[done..]`; the very next rank is just the smallest there, moved into
        // place.
        let value = if rank == done {
            let (at, _) = values[done..].iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1)).expect("rank < n");
            values.swap(done, done + at);
            values[done]
        } else {
            *values[done..].select_nth_unstable_by(rank - done, f64::total_cmp).1
        };
        selected.push((rank, value));
        done = rank + 1;
    }
    selected
}

/// The correctly rounded sum of `values` (Shewchuk's algorithm, as Python's `math.fsum`): the
/// same in whatever order the values come, so rollups and raw rows agree to the last bit.
pub fn exact_sum(values: &[f64]) -> f64 {
    // Non-overlapping partial sums, smallest first, whose exact total is the exact sum.
    let mut partials: Vec<f64> = Vec::new();
    for &value in values {
        let mut x = value;
        let mut kept = 0;
        for j in 0..partials.len() {
            let mut y = partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                partials[kept] = lo;
                kept += 1;
            }
            x = hi;
        }
        partials.truncate(kept);
        partials.push(x);
    }
    // Add the partials from the largest down, then correct the last rounding (half-even).
    let Some(mut n) = partials.len().checked_sub(1) else { return 0.0 };
    let mut hi = partials[n];
    let mut lo = 0.0;
    while n > 0 {
        let x = hi;
        n -= 1;
        let y = partials[n];
        hi = x + y;
        lo = y - (hi - x);
        if lo != 0.0 {
            break;
        }
    }
    if n > 0 && ((lo < 0.0 && partials[n - 1] < 0.0) || (lo > 0.0 && partials[n - 1] > 0.0)) {
        let y = lo * 2.0;
        let x = hi + y;
        if y == x - hi {
            hi = x;
        }
    }
    hi
}

fn insert_percentiles(spec: &MetricSpec, at: impl Fn(f64) -> Option<f64>, out: &mut Map<String, Value>) {
    for &p in &spec.percentiles {
        out.insert(percentile_key(p, &spec.metric), at(p).map_or(Value::Null, number));
    }
}

/// A finite float as a JSON number (non-finite values cannot occur in stored data; null guards).
fn number(value: f64) -> Value {
    serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)
}

fn saturate(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one_to_hundred() -> Vec<f64> {
        (1..=100).map(f64::from).collect()
    }

    #[test]
    fn percentiles_interpolate_linearly_as_in_the_worked_examples() {
        let v = one_to_hundred();
        let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-9;
        assert!(close(percentile(&v, 50.0), 50.5));
        assert!(close(percentile(&v, 95.0), 95.05));
        assert!(close(percentile(&v, 99.0), 99.01));
        assert!(close(percentile(&v, 99.9), 99.901));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&[100.0, 150.0, 200.0], 50.0), Some(150.0));
        assert_eq!(percentile(&[100.0, 150.0, 200.0], 95.0), Some(195.0));
        assert_eq!(percentile(&[7.0], 33.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn percentile_keys_use_integers_when_whole_and_the_shortest_decimal_otherwise() {
        assert_eq!(percentile_key(50.0, "latency_ms"), "p50_latency_ms");
        assert_eq!(percentile_key(99.9, "latency_ms"), "p99.9_latency_ms");
        assert_eq!(percentile_key(0.5, "latency_ms"), "p0.5_latency_ms");
        assert_eq!(percentile_key(100.0, "total_tokens"), "p100_total_tokens");
    }

    #[test]
    fn an_empty_bucket_renders_as_in_the_worked_example() {
        let latency = MetricSpec {
            metric: "latency_ms".into(),
            kind: ValueKind::Float,
            aggregations: vec![
                Aggregation::Sum,
                Aggregation::Avg,
                Aggregation::Min,
                Aggregation::Max,
                Aggregation::Count,
            ],
            percentiles: vec![50.0],
        };
        let errors = MetricSpec {
            metric: "error_count".into(),
            kind: ValueKind::Int,
            aggregations: vec![Aggregation::CountTrue],
            percentiles: vec![],
        };
        let mut out = Map::new();
        render(&latency, &mut Values::default(), &mut out);
        render(&errors, &mut Values::default(), &mut out);
        assert_eq!(
            serde_json::to_string(&Value::Object(out)).unwrap(),
            r#"{"sum_latency_ms":0,"avg_latency_ms":0.0,"min_latency_ms":null,"max_latency_ms":null,"count_latency_ms":0,"p50_latency_ms":null,"count_true_error_count":0}"#
        );
    }

    #[test]
    fn integer_metrics_keep_integer_sums_min_and_max() {
        let spec = MetricSpec {
            metric: "error_count".into(),
            kind: ValueKind::Int,
            aggregations: vec![
                Aggregation::Sum,
                Aggregation::Avg,
                Aggregation::Min,
                Aggregation::Max,
                Aggregation::CountTrue,
                Aggregation::CountFalse,
            ],
            percentiles: vec![50.0],
        };
        let mut values = Values::default();
        for v in [1, 0, 0, 1, 1] {
            values.push_int(v);
        }
        let mut out = Map::new();
        render(&spec, &mut values, &mut out);
        assert_eq!(
            Value::Object(out),
            json!({"sum_error_count": 3, "avg_error_count": 0.6, "min_error_count": 0, "max_error_count": 1,
                   "count_true_error_count": 3, "count_false_error_count": 2, "p50_error_count": 1.0})
        );
    }

    #[test]
    fn repeated_integers_render_exactly_like_the_same_values_listed() {
        let spec = MetricSpec {
            metric: "error_count".into(),
            kind: ValueKind::Int,
            aggregations: vec![
                Aggregation::Sum,
                Aggregation::Avg,
                Aggregation::Min,
                Aggregation::Max,
                Aggregation::Count,
                Aggregation::CountTrue,
                Aggregation::CountFalse,
            ],
            percentiles: vec![0.0, 25.0, 50.0, 62.5, 99.9, 100.0],
        };
        let mut listed = Values::default();
        for v in [0, 1, 1, 0, 1, 5, 1, -3] {
            listed.push_int(v);
        }
        let mut runs = Values::default();
        runs.push_int_times(1, 3);
        runs.push_int_times(0, 2);
        runs.push_int_times(7, 0);
        runs.push_int(5);
        runs.push_int(1);
        runs.push_int(-3);
        let (mut a, mut b) = (Map::new(), Map::new());
        render(&spec, &mut listed, &mut a);
        render(&spec, &mut runs, &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn values_known_by_count_and_sum_add_to_sums_averages_and_counts() {
        let spec = MetricSpec {
            metric: "input_tokens".into(),
            kind: ValueKind::Int,
            aggregations: vec![Aggregation::Sum, Aggregation::Avg, Aggregation::Count],
            percentiles: vec![],
        };
        let mut values = Values::default();
        values.push_int(10);
        values.add_unlisted_ints(3, 50);
        let mut out = Map::new();
        render(&spec, &mut values, &mut out);
        assert_eq!(
            Value::Object(out),
            json!({"sum_input_tokens": 60, "avg_input_tokens": 15.0, "count_input_tokens": 4})
        );
    }

    #[test]
    fn exact_sums_do_not_depend_on_order_and_round_once() {
        assert_eq!(exact_sum(&[0.1; 10]), 1.0);
        assert_eq!(exact_sum(&[1e16, 1.0, -1e16]), 1.0);
        assert_eq!(exact_sum(&[]), 0.0);
        let values: Vec<f64> = (1..2000).map(|i| (i as f64 * 0.731).sin() * 10f64.powi(i % 9)).collect();
        let mut reversed = values.clone();
        reversed.reverse();
        assert_eq!(exact_sum(&values), exact_sum(&reversed));
    }

    #[test]
    fn percentiles_by_selection_match_the_sorted_definition() {
        let values: Vec<f64> = (0..997).map(|i| ((i * 7919) % 1013) as f64 / 3.0).collect();
        let mut sorted = values.clone();
        sorted.sort_unstable_by(f64::total_cmp);
        let spec = MetricSpec {
            metric: "latency_ms".into(),
            kind: ValueKind::Float,
            aggregations: vec![],
            percentiles: vec![0.0, 1.5, 50.0, 95.0, 99.0, 99.9, 100.0],
        };
        let mut listed = Values::default();
        values.iter().for_each(|&v| listed.push_float(v));
        let mut out = Map::new();
        render(&spec, &mut listed, &mut out);
        for &p in &spec.percentiles {
            assert_eq!(out[&percentile_key(p, "latency_ms")], number(percentile(&sorted, p).unwrap()), "p{p}");
        }
    }
}
