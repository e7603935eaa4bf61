//! Usage normalisation (API.md §3): one rule, applied when a call's end is written.
//!
//! Providers name their counters differently, so each (call, model) pair of `summary.usage`
//! becomes one [`UsageRow`] of normalised integers. Statistics read the rows written with the
//! end; the usage endpoints read a call's stored `summary.usage` through this same rule (one
//! read with the call instead of a probe for its rows), so the rule lives in exactly one place.
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

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
    summary.and_then(|s| s.get("usage")).map_or_else(Vec::new, |usage| {
        // Every JSON value is accepted (anything unexpected reads as no row or 0), so reading
        // a `Value` cannot fail.
        UsageRows::deserialize(usage).map(|rows| rows.0).unwrap_or_default()
    })
}

/// The usage rows of a `summary.usage` value (not an object: no rows), sorted by model.
///
/// The rule is this one deserializer, whatever it reads: a parsed `Value` when an end is
/// written, the stored JSON's bytes when the usage endpoints read it back. Reading the bytes
/// straight into counters builds no map per call.
#[derive(Debug, Default, PartialEq)]
pub struct UsageRows(pub Vec<UsageRow>);

impl<'de> Deserialize<'de> for UsageRows {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ObjectOr(PhantomData))
    }
}

impl FromObject for UsageRows {
    fn from_object<'de, A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        // By model: a repeated model keeps its last value, as a parsed object does.
        let mut models: BTreeMap<String, Reported> = BTreeMap::new();
        while let Some(model) = map.next_key::<String>()? {
            match map.next_value::<ModelValue>()?.0 {
                Some(reported) => models.insert(model, reported),
                None => models.remove(&model),
            };
        }
        Ok(UsageRows(models.into_iter().map(|(model, reported)| reported.normalise(model)).collect()))
    }
}

/// One model's counters as reported, by name (absent and unreadable ones read 0).
#[derive(Debug, Default)]
struct Reported {
    requests: i64,
    prompt_tokens: i64,
    input_tokens: i64,
    completion_tokens: i64,
    output_tokens: i64,
    total_tokens: i64,
    cache_read_input_tokens: i64,
    cache_creation_input_tokens: i64,
    /// Present and not null.
    gross_input_tokens: Option<i64>,
}

impl Reported {
    fn normalise(self, model: String) -> UsageRow {
        let input_tokens =
            self.gross_input_tokens.unwrap_or_else(|| self.prompt_tokens.saturating_add(self.input_tokens));
        let output_tokens = self.completion_tokens.saturating_add(self.output_tokens);
        let counters = Counters {
            requests: self.requests,
            input_tokens,
            output_tokens,
            total_tokens: if self.total_tokens > 0 {
                self.total_tokens
            } else {
                input_tokens.saturating_add(output_tokens)
            },
            cache_read_input_tokens: self.cache_read_input_tokens,
            cache_creation_input_tokens: self.cache_creation_input_tokens,
        };
        UsageRow { model, counters }
    }
}

/// A model's value: an object of counters, or anything else (`None`: the model has no row).
#[derive(Default)]
struct ModelValue(Option<Reported>);

impl<'de> Deserialize<'de> for ModelValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ObjectOr(PhantomData))
    }
}

impl FromObject for ModelValue {
    fn from_object<'de, A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut r = Reported::default();
        // A repeated counter keeps its last value, as a parsed object does.
        while let Some(field) = map.next_key::<Field>()? {
            let slot = match field {
                Field::Requests => &mut r.requests,
                Field::PromptTokens => &mut r.prompt_tokens,
                Field::InputTokens => &mut r.input_tokens,
                Field::CompletionTokens => &mut r.completion_tokens,
                Field::OutputTokens => &mut r.output_tokens,
                Field::TotalTokens => &mut r.total_tokens,
                Field::CacheReadInputTokens => &mut r.cache_read_input_tokens,
                Field::CacheCreationInputTokens => &mut r.cache_creation_input_tokens,
                Field::GrossInputTokens => {
                    r.gross_input_tokens = map.next_value::<Option<Counter>>()?.map(|c| c.0);
                    continue;
                }
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            *slot = map.next_value::<Counter>()?.0;
        }
        Ok(ModelValue(Some(r)))
    }
}

/// What the rule makes of a JSON object; any other JSON value reads as `Default`.
trait FromObject: Default {
    fn from_object<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
}

/// The visitor of a [`FromObject`]: an object is read by it, any other value consumed and read
/// as nothing (so no JSON fails to read).
struct ObjectOr<T>(PhantomData<T>);

impl<'de, T: FromObject> Visitor<'de> for ObjectOr<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::from_object(map)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        drain(seq).map(|()| T::default())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Ok(T::default())
    }
    fn visit_none<E: de::Error>(self) -> Result<T, E> {
        Ok(T::default())
    }
}

/// The counter names the rule reads.
enum Field {
    Requests,
    PromptTokens,
    InputTokens,
    CompletionTokens,
    OutputTokens,
    TotalTokens,
    CacheReadInputTokens,
    CacheCreationInputTokens,
    GrossInputTokens,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl Visitor<'_> for Name {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a counter's name")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Field, E> {
                Ok(match name {
                    "requests" => Field::Requests,
                    "prompt_tokens" => Field::PromptTokens,
                    "input_tokens" => Field::InputTokens,
                    "completion_tokens" => Field::CompletionTokens,
                    "output_tokens" => Field::OutputTokens,
                    "total_tokens" => Field::TotalTokens,
                    "cache_read_input_tokens" => Field::CacheReadInputTokens,
                    "cache_creation_input_tokens" => Field::CacheCreationInputTokens,
                    "gross_input_tokens" => Field::GrossInputTokens,
                    _ => Field::Other,
                })
            }
        }
        deserializer.deserialize_str(Name)
    }
}

/// A counter's value: integers as they are, floats truncated toward zero, strings of digits
/// parsed, anything else 0. Values beyond i64 saturate.
struct Counter(i64);

impl<'de> Deserialize<'de> for Counter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Value;
        impl<'de> Visitor<'de> for Value {
            type Value = Counter;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Counter, E> {
                Ok(Counter(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Counter, E> {
                Ok(Counter(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Counter, E> {
                // `as` truncates toward zero and saturates at the i64 bounds.
                Ok(Counter(v as i64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Counter, E> {
                Ok(Counter(parse_integer_text(v)))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Counter, E> {
                Ok(Counter(0))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Counter, E> {
                Ok(Counter(0))
            }
            fn visit_none<E: de::Error>(self) -> Result<Counter, E> {
                Ok(Counter(0))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Counter, A::Error> {
                drain(seq).map(|()| Counter(0))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Counter, A::Error> {
                drain_map(map).map(|()| Counter(0))
            }
        }
        deserializer.deserialize_any(Value)
    }
}

/// A counter's value in a parsed document (see [`Counter`]).
pub fn counter_value(value: &serde_json::Value) -> i64 {
    Counter::deserialize(value).map_or(0, |c| c.0)
}

fn drain<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
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
    use proptest::prelude::*;
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

    /// Any JSON text: the counter names the rule reads, a few others, odd scalars and nesting.
    fn usage_text() -> impl Strategy<Value = String> {
        let scalar = prop_oneof![
            any::<i64>().prop_map(|v| v.to_string()),
            any::<u64>().prop_map(|v| v.to_string()),
            (-1e20f64..1e20).prop_map(|v| format!("{v:e}")),
            "-?[0-9]{0,20}".prop_map(|v| format!("{v:?}")),
            Just("null".to_string()),
            Just("true".to_string()),
        ];
        let name = prop_oneof![
            Just("requests"),
            Just("prompt_tokens"),
            Just("input_tokens"),
            Just("completion_tokens"),
            Just("output_tokens"),
            Just("total_tokens"),
            Just("cache_read_input_tokens"),
            Just("cache_creation_input_tokens"),
            Just("gross_input_tokens"),
            Just("other"),
        ];
        let value = scalar.prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(|items| format!("[{}]", items.join(","))),
                prop::collection::vec(inner, 0..2).prop_map(|items| {
                    let fields: Vec<String> = items.iter().map(|v| format!("\"requests\": {v}")).collect();
                    format!("{{{}}}", fields.join(","))
                }),
            ]
        });
        // Repeated names and models on purpose: the last one counts.
        let counters = prop::collection::vec((name, value.clone()), 0..6).prop_map(|fields| {
            let fields: Vec<String> = fields.iter().map(|(k, v)| format!("{k:?}: {v}")).collect();
            format!("{{{}}}", fields.join(","))
        });
        let model = prop_oneof![counters, value];
        prop::collection::vec(("[a-c]", model), 0..5).prop_map(|models| {
            let models: Vec<String> = models.iter().map(|(k, v)| format!("{k:?}: {v}")).collect();
            format!("{{{}}}", models.join(","))
        })
    }

    proptest! {
        #[test]
        fn reading_usage_text_gives_the_rows_of_the_same_text_parsed_first(text in usage_text()) {
            let parsed: Value = serde_json::from_str(&text).unwrap();
            let direct: UsageRows = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(direct.0, usage_rows(Some(&json!({"usage": parsed}))), "{}", text);
        }
    }
}
