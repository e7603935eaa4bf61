//! Usage normalisation (API.md §3): one rule, applied when a call's end is written.
//!
//! Providers name their counters differently, so each (call, model) pair of `summary.usage`
//! becomes one [`UsageRow`] of normalised integers. Every endpoint reads these rows, never the
//! JSON, so the rule lives in exactly one place.
use serde_json::{Map, Value};

/// The normalised counters of usage (API.md §3): of one model in one call, or summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub total_tokens: i64,
    pub cache_read_input_tokens: i64,
    pub cache_creation_input_tokens: i64,
}

impl Counters {
    /// Add `other` field by field, saturating at the i64 bounds.
    pub fn add(&mut self, other: &Self) {
        self.requests = self.requests.saturating_add(other.requests);
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.total_tokens = self.total_tokens.saturating_add(other.total_tokens);
        self.cache_read_input_tokens = self.cache_read_input_tokens.saturating_add(other.cache_read_input_tokens);
        self.cache_creation_input_tokens =
            self.cache_creation_input_tokens.saturating_add(other.cache_creation_input_tokens);
    }

    /// All six counters are zero.
    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }
}

/// One model's usage in one call: a usage row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageRow {
    pub model: String,
    pub counters: Counters,
}

/// Extract the usage rows of a call's `summary` (null, missing or `{}` usage: no rows).
/// Rows come out sorted by model so writes are deterministic.
pub fn usage_rows(summary: Option<&Value>) -> Vec<UsageRow> {
    let Some(Value::Object(usage)) = summary.and_then(|s| s.get("usage")) else {
        return Vec::new();
    };
    let mut rows: Vec<UsageRow> = usage
        .iter()
        .filter_map(|(model, counters)| match counters {
            Value::Object(counters) => Some(normalise(model, counters)),
            _ => None,
        })
        .collect();
    rows.sort_by(|a, b| a.model.cmp(&b.model));
    rows
}

fn normalise(model: &str, counters: &Map<String, Value>) -> UsageRow {
    let read = |key: &str| counters.get(key).map_or(0, counter_value);
    let input_tokens = match counters.get("gross_input_tokens") {
        Some(value) if !value.is_null() => counter_value(value),
        _ => read("prompt_tokens").saturating_add(read("input_tokens")),
    };
    let output_tokens = read("completion_tokens").saturating_add(read("output_tokens"));
    let reported_total = read("total_tokens");
    let counters = Counters {
        requests: read("requests"),
        input_tokens,
        output_tokens,
        total_tokens: if reported_total > 0 { reported_total } else { input_tokens.saturating_add(output_tokens) },
        cache_read_input_tokens: read("cache_read_input_tokens"),
        cache_creation_input_tokens: read("cache_creation_input_tokens"),
    };
    UsageRow { model: model.to_string(), counters }
}

/// A counter's value: integers as they are, floats truncated toward zero, strings of digits
/// parsed, anything else 0. Values beyond i64 saturate.
pub fn counter_value(value: &Value) -> i64 {
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i
            } else if n.is_u64() {
                i64::MAX
            } else {
                // `as` truncates toward zero and saturates at the i64 bounds.
                n.as_f64().map_or(0, |f| f as i64)
            }
        }
        Value::String(s) => parse_integer_text(s),
        _ => 0,
    }
}

fn parse_integer_text(s: &str) -> i64 {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    s.parse::<i64>().unwrap_or(if s.starts_with('-') { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(counters: Value) -> Counters {
        let rows = usage_rows(Some(&json!({"usage": {"m": counters}})));
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].model, "m");
        rows[0].counters
    }

    #[test]
    fn openai_style_counters_become_input_output_and_reported_total() {
        let row = one(json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "requests": 1}));
        assert_eq!((row.input_tokens, row.output_tokens, row.total_tokens, row.requests), (10, 5, 15, 1));
    }

    #[test]
    fn anthropic_style_counters_sum_to_a_total_when_none_is_reported() {
        let row = one(
            json!({"input_tokens": 7, "output_tokens": 3, "cache_read_input_tokens": 2, "cache_creation_input_tokens": 1}),
        );
        assert_eq!((row.input_tokens, row.output_tokens, row.total_tokens), (7, 3, 10));
        assert_eq!((row.cache_read_input_tokens, row.cache_creation_input_tokens), (2, 1));
    }

    #[test]
    fn gross_input_tokens_wins_when_present_and_non_null() {
        assert_eq!(one(json!({"gross_input_tokens": 100, "prompt_tokens": 1, "input_tokens": 2})).input_tokens, 100);
        assert_eq!(one(json!({"gross_input_tokens": null, "prompt_tokens": 1, "input_tokens": 2})).input_tokens, 3);
    }

    #[test]
    fn counters_read_integers_truncated_floats_and_digit_strings_and_nothing_else() {
        assert_eq!(counter_value(&json!(12)), 12);
        assert_eq!(counter_value(&json!(12.9)), 12);
        assert_eq!(counter_value(&json!(-12.9)), -12);
        assert_eq!(counter_value(&json!("12")), 12);
        assert_eq!(counter_value(&json!("-12")), -12);
        for zero in [json!("1.5"), json!(true), json!(null), json!({}), json!(""), json!("-"), json!([1])] {
            assert_eq!(counter_value(&zero), 0, "{zero}");
        }
        assert_eq!(counter_value(&json!(u64::MAX)), i64::MAX);
    }

    #[test]
    fn a_total_that_reads_zero_or_less_is_recomputed() {
        assert_eq!(one(json!({"input_tokens": 4, "output_tokens": 1, "total_tokens": "0"})).total_tokens, 5);
        assert_eq!(one(json!({"input_tokens": 4, "output_tokens": 1, "total_tokens": null})).total_tokens, 5);
    }

    #[test]
    fn non_object_models_and_missing_usage_produce_no_rows() {
        assert!(usage_rows(Some(&json!({"usage": {"m": 5, "n": null}}))).is_empty());
        assert!(usage_rows(Some(&json!({"usage": {}}))).is_empty());
        assert!(usage_rows(Some(&json!({}))).is_empty());
        assert!(usage_rows(Some(&Value::Null)).is_empty());
        assert!(usage_rows(None).is_empty());
    }

    #[test]
    fn an_empty_counter_object_is_still_a_row_of_zeros() {
        assert!(one(json!({})).is_zero());
    }
}
