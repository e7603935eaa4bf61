//! Aggregations, exact percentiles and key names (API.md §4.5, §4.6).
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

/// The non-null values of one metric in one bucket.
#[derive(Debug, Clone, Default)]
pub struct Values {
    ints: Vec<i64>,
    floats: Vec<f64>,
}

impl Values {
    pub fn push_int(&mut self, value: i64) {
        self.ints.push(value);
    }

    pub fn push_float(&mut self, value: f64) {
        self.floats.push(value);
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
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let h = (p / 100.0) * (n - 1) as f64;
    let i = (h.floor() as usize).min(n - 1);
    if i == n - 1 {
        return Some(sorted[n - 1]);
    }
    Some(sorted[i] + (h - i as f64) * (sorted[i + 1] - sorted[i]))
}

/// Append the keys of `spec` for one bucket's `values` to `out`, in request order:
/// aggregations, then percentiles. Sorts the values in place.
pub fn render(spec: &MetricSpec, values: &mut Values, out: &mut Map<String, Value>) {
    match spec.kind {
        ValueKind::Int => render_ints(spec, &mut values.ints, out),
        ValueKind::Float => render_floats(spec, &mut values.floats, out),
    }
}

fn render_ints(spec: &MetricSpec, values: &mut [i64], out: &mut Map<String, Value>) {
    let n = values.len();
    let sum: i128 = values.iter().map(|&v| i128::from(v)).sum();
    for &aggregation in &spec.aggregations {
        let value = match aggregation {
            Aggregation::Sum => Value::from(saturate(sum)),
            Aggregation::Avg => Value::from(if n == 0 { 0.0 } else { sum as f64 / n as f64 }),
            Aggregation::Min => values.iter().min().map_or(Value::Null, |&v| Value::from(v)),
            Aggregation::Max => values.iter().max().map_or(Value::Null, |&v| Value::from(v)),
            Aggregation::Count => Value::from(n),
            Aggregation::CountTrue => Value::from(values.iter().filter(|&&v| v == 1).count()),
            Aggregation::CountFalse => Value::from(values.iter().filter(|&&v| v == 0).count()),
        };
        out.insert(format!("{}_{}", aggregation.name(), spec.metric), value);
    }
    if !spec.percentiles.is_empty() {
        values.sort_unstable();
        let sorted: Vec<f64> = values.iter().map(|&v| v as f64).collect();
        insert_percentiles(spec, &sorted, out);
    }
}

fn render_floats(spec: &MetricSpec, values: &mut [f64], out: &mut Map<String, Value>) {
    // Summing in sorted order makes the result independent of the order rows arrived in.
    values.sort_unstable_by(f64::total_cmp);
    let n = values.len();
    let sum: f64 = values.iter().sum();
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
            Aggregation::Min => values.iter().copied().reduce(f64::min).map_or(Value::Null, number),
            Aggregation::Max => values.iter().copied().reduce(f64::max).map_or(Value::Null, number),
            Aggregation::Count => Value::from(n),
            Aggregation::CountTrue => Value::from(values.iter().filter(|&&v| v == 1.0).count()),
            Aggregation::CountFalse => Value::from(values.iter().filter(|&&v| v == 0.0).count()),
        };
        out.insert(format!("{}_{}", aggregation.name(), spec.metric), value);
    }
    insert_percentiles(spec, values, out);
}

fn insert_percentiles(spec: &MetricSpec, sorted: &[f64], out: &mut Map<String, Value>) {
    for &p in &spec.percentiles {
        out.insert(percentile_key(p, &spec.metric), percentile(sorted, p).map_or(Value::Null, number));
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
}
