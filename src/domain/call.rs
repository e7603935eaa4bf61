//! Calls: the two halves a client writes, the record a client reads, and the computed fields
//! of `summary.weave` (API.md §2, §7.3).
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{de_error, ProjectId, Timestamp};

/// Longest id-like string (ids, trace/parent/thread/turn ids, user and run ids), in bytes.
/// Postgres b-tree entries must fit in a third of a page; these columns are indexed.
pub const MAX_ID_BYTES: usize = 512;
/// Longest `op_name`, in bytes (indexed too).
pub const MAX_OP_NAME_BYTES: usize = 1024;
/// Refs longer than this are not indexed for `input_refs` / `output_refs` filters.
pub const MAX_REF_BYTES: usize = 1024;
/// The prefix of a Weave ref.
pub const REF_PREFIX: &str = "weave:///";

/// Free-form JSON as the client sent it (inputs, output, attributes): kept as text from the
/// body to the database, never built into a tree, so a large batch costs little memory.
pub type RawJson = Box<RawValue>;

/// The start half of a call (`StartedCallSchemaForInsert`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartedCall {
    pub project_id: ProjectId,
    /// Generated (UUID v7) when missing.
    #[serde(default, deserialize_with = "optional_id")]
    pub id: Option<String>,
    #[serde(deserialize_with = "op_name")]
    pub op_name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    /// Generated when missing: the parent's trace if the parent is known, else a new one.
    #[serde(default, deserialize_with = "optional_id")]
    pub trace_id: Option<String>,
    #[serde(default, deserialize_with = "optional_id")]
    pub parent_id: Option<String>,
    #[serde(default, deserialize_with = "optional_id")]
    pub thread_id: Option<String>,
    #[serde(default, deserialize_with = "optional_id")]
    pub turn_id: Option<String>,
    pub started_at: Timestamp,
    #[serde(deserialize_with = "raw_object")]
    #[schema(value_type = Object)]
    pub attributes: RawJson,
    #[serde(deserialize_with = "raw_object")]
    #[schema(value_type = Object)]
    pub inputs: RawJson,
    /// Ignored: the server writes the API key's user.
    #[serde(default)]
    pub wb_user_id: Option<String>,
    #[serde(default, deserialize_with = "optional_id")]
    pub wb_run_id: Option<String>,
    #[serde(default)]
    pub wb_run_step: Option<i64>,
    #[serde(default, deserialize_with = "optional_raw_object")]
    #[schema(value_type = Option<Object>)]
    pub otel_dump: Option<RawJson>,
}

/// The end half of a call (`EndedCallSchemaForInsert`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndedCall {
    pub project_id: ProjectId,
    #[serde(deserialize_with = "required_id")]
    pub id: String,
    pub ended_at: Timestamp,
    /// Written as given; `summary.usage` is normalised into usage rows (API.md §3).
    #[serde(deserialize_with = "summary")]
    #[schema(value_type = Object)]
    pub summary: Map<String, Value>,
    #[serde(default)]
    pub exception: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub output: Option<RawJson>,
    /// Accepted and ignored: the start's value is the call's.
    #[serde(default)]
    pub started_at: Option<Timestamp>,
    /// Used only until the start arrives.
    #[serde(default, deserialize_with = "optional_id")]
    pub trace_id: Option<String>,
    #[serde(default)]
    pub wb_run_step_end: Option<i64>,
    /// Accepted and ignored.
    #[serde(default)]
    pub is_eval: Option<bool>,
}

/// A finished call sent whole (`CompletedCallSchemaForInsert`, the SDK's default batching path).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompletedCall {
    pub project_id: ProjectId,
    #[serde(deserialize_with = "required_id")]
    pub id: String,
    #[serde(deserialize_with = "required_id")]
    pub trace_id: String,
    #[serde(deserialize_with = "op_name")]
    pub op_name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default, deserialize_with = "optional_id")]
    pub parent_id: Option<String>,
    #[serde(default, deserialize_with = "optional_id")]
    pub thread_id: Option<String>,
    #[serde(default, deserialize_with = "optional_id")]
    pub turn_id: Option<String>,
    pub started_at: Timestamp,
    pub ended_at: Timestamp,
    #[serde(deserialize_with = "raw_object")]
    #[schema(value_type = Object)]
    pub attributes: RawJson,
    #[serde(deserialize_with = "raw_object")]
    #[schema(value_type = Object)]
    pub inputs: RawJson,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub output: Option<RawJson>,
    #[serde(deserialize_with = "summary")]
    #[schema(value_type = Object)]
    pub summary: Map<String, Value>,
    #[serde(default)]
    pub exception: Option<String>,
    /// Ignored: the server writes the API key's user.
    #[serde(default)]
    pub wb_user_id: Option<String>,
    #[serde(default, deserialize_with = "optional_id")]
    pub wb_run_id: Option<String>,
    #[serde(default)]
    pub wb_run_step: Option<i64>,
    #[serde(default)]
    pub wb_run_step_end: Option<i64>,
    #[serde(default, deserialize_with = "optional_raw_object")]
    #[schema(value_type = Option<Object>)]
    pub otel_dump: Option<RawJson>,
}

impl CompletedCall {
    /// The two halves this call would have been sent as.
    pub fn split(self) -> (StartedCall, EndedCall) {
        let start = StartedCall {
            project_id: self.project_id.clone(),
            id: Some(self.id.clone()),
            op_name: self.op_name,
            display_name: self.display_name,
            trace_id: Some(self.trace_id.clone()),
            parent_id: self.parent_id,
            thread_id: self.thread_id,
            turn_id: self.turn_id,
            started_at: self.started_at,
            attributes: self.attributes,
            inputs: self.inputs,
            wb_user_id: None,
            wb_run_id: self.wb_run_id,
            wb_run_step: self.wb_run_step,
            otel_dump: self.otel_dump,
        };
        let end = EndedCall {
            project_id: self.project_id,
            id: self.id,
            ended_at: self.ended_at,
            summary: self.summary,
            exception: self.exception,
            output: self.output,
            started_at: Some(self.started_at),
            trace_id: Some(self.trace_id),
            wb_run_step_end: self.wb_run_step_end,
            is_eval: None,
        };
        (start, end)
    }
}

/// Raw JSON text of a value known to be valid JSON (`{}` and `null` as defaults).
pub fn raw_json(text: &str) -> RawJson {
    RawValue::from_string(text.to_string())
        .unwrap_or_else(|_| RawValue::from_string("null".into()).expect("null is JSON"))
}

/// Free-form JSON that must be an object.
fn raw_object<'de, D: serde::Deserializer<'de>>(d: D) -> Result<RawJson, D::Error> {
    let raw = RawJson::deserialize(d)?;
    if !raw.get().trim_start().starts_with('{') {
        return Err(de_error("dict_type", "Input should be a valid dictionary"));
    }
    Ok(raw)
}

fn optional_raw_object<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<RawJson>, D::Error> {
    let raw = Option::<RawJson>::deserialize(d)?;
    match &raw {
        Some(raw) if !raw.get().trim_start().starts_with('{') => {
            Err(de_error("dict_type", "Input should be a valid dictionary"))
        }
        _ => Ok(raw),
    }
}

pub(crate) fn check_len<E: serde::de::Error>(text: &str, max: usize) -> Result<(), E> {
    if text.len() > max {
        return Err(de_error("string_too_long", format_args!("String should have at most {max} bytes")));
    }
    Ok(())
}

pub(crate) fn required_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    check_len(&text, MAX_ID_BYTES)?;
    Ok(text)
}

pub(crate) fn optional_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    if let Some(text) = &text {
        check_len(text, MAX_ID_BYTES)?;
    }
    Ok(text)
}

/// A summary whose usage names models in at most [`MAX_OP_NAME_BYTES`] bytes (they are
/// indexed, as usage rows).
fn summary<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Map<String, Value>, D::Error> {
    let summary = Map::deserialize(d)?;
    if let Some(Value::Object(usage)) = summary.get("usage") {
        if usage.keys().any(|model| model.len() > MAX_OP_NAME_BYTES) {
            return Err(de_error(
                "string_too_long",
                format_args!("Model names in summary.usage should have at most {MAX_OP_NAME_BYTES} bytes"),
            ));
        }
    }
    Ok(summary)
}

pub(crate) fn op_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    check_len(&text, MAX_OP_NAME_BYTES)?;
    Ok(text)
}

/// The refs (string values starting `weave:///`) anywhere in a JSON text, sorted and unique.
/// Reads the text without building it into a tree: a string that starts with the prefix and is
/// not an object key.
pub fn find_refs_in_text(text: &str) -> Vec<String> {
    const NEEDLE: &str = "\"weave:///";
    let bytes = text.as_bytes();
    let mut refs = Vec::new();
    let mut at = 0;
    while let Some(found) = text.get(at..).and_then(|rest| rest.find(NEEDLE)).map(|i| at + i) {
        at = found + NEEDLE.len();
        // A quote after an odd run of backslashes is inside another string.
        let backslashes = bytes[..found].iter().rev().take_while(|b| **b == b'\\').count();
        if backslashes % 2 == 1 {
            continue;
        }
        // The string's end: the next quote not escaped.
        let mut end = at;
        while end < bytes.len() && bytes[end] != b'"' {
            end += if bytes[end] == b'\\' { 2 } else { 1 };
        }
        let Some(literal) = text.get(found..=end) else { break };
        at = end + 1;
        // An object key is followed by a colon.
        let is_key = text.get(at..).is_some_and(|rest| rest.trim_start().starts_with(':'));
        if let (false, Ok(value)) = (is_key, serde_json::from_str::<String>(literal)) {
            if value.len() <= MAX_REF_BYTES {
                refs.push(value);
            }
        }
    }
    refs.sort();
    refs.dedup();
    refs
}

/// The refs (strings starting `weave:///`) anywhere in a JSON value, sorted and unique.
pub fn find_refs<'a>(values: impl IntoIterator<Item = &'a Value>) -> Vec<String> {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(s) if s.starts_with(REF_PREFIX) && s.len() <= MAX_REF_BYTES => out.push(s.clone()),
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            Value::Object(map) => map.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut refs = Vec::new();
    for value in values {
        walk(value, &mut refs);
    }
    refs.sort();
    refs.dedup();
    refs
}

/// A call as read back (the `CallSchema` of the Weave API).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Call {
    pub id: String,
    pub project_id: String,
    pub op_name: String,
    pub display_name: Option<String>,
    pub trace_id: String,
    pub parent_id: Option<String>,
    pub thread_id: Option<String>,
    pub turn_id: Option<String>,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub exception: Option<String>,
    /// As stored, written out as JSON text (never parsed here).
    #[schema(value_type = Object)]
    pub attributes: RawJson,
    #[schema(value_type = Object)]
    pub inputs: RawJson,
    #[schema(value_type = Option<Object>)]
    pub output: RawJson,
    /// The stored summary plus the computed `summary.weave` fields.
    #[schema(value_type = Option<Object>)]
    pub summary: Value,
    pub wb_user_id: Option<String>,
    pub wb_run_id: Option<String>,
    pub wb_run_step: Option<i64>,
    pub wb_run_step_end: Option<i64>,
    pub deleted_at: Option<Timestamp>,
}

impl Call {
    /// Put the costs of priced models under `summary.weave.costs` (no key when none is priced)
    /// and the models without a price under `summary.weave.unpriced_models` (no key when none).
    pub fn attach_costs(&mut self, costs: super::costs::CallCosts) {
        if let Some(weave) = self.summary.get_mut("weave").and_then(Value::as_object_mut) {
            if !costs.priced.is_empty() {
                weave.insert("costs".into(), Value::Object(costs.priced));
            }
            if !costs.unpriced.is_empty() {
                weave.insert("unpriced_models".into(), Value::from(costs.unpriced));
            }
        }
    }
}

/// `summary.weave.status` (API.md §7.3).
pub fn status(exception: Option<&str>, summary: Option<&Value>, ended: bool) -> &'static str {
    let descendant_errors =
        summary.and_then(|s| s.pointer("/status_counts/error")).map_or(0, super::usage::counter_value);
    if exception.is_some() {
        "error"
    } else if descendant_errors > 0 {
        "descendant_error"
    } else if !ended {
        "running"
    } else {
        "success"
    }
}

/// `summary.weave.trace_name`: the display name, else the name inside an op ref, else op_name.
pub fn trace_name<'a>(display_name: Option<&'a str>, op_name: &'a str) -> &'a str {
    if let Some(name) = display_name.filter(|n| !n.is_empty()) {
        return name;
    }
    op_ref_name(op_name).unwrap_or(op_name)
}

/// `weave:///entity/project/op/name:digest` → `name`.
fn op_ref_name(op_name: &str) -> Option<&str> {
    let rest = op_name.strip_prefix(REF_PREFIX)?;
    let mut parts = rest.splitn(4, '/');
    let (_entity, _project, kind, tail) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if kind != "op" {
        return None;
    }
    let name = tail.split_once(':').map_or(tail, |(name, _)| name);
    (!name.is_empty()).then_some(name)
}

/// The summary a client reads: the stored one (an object, or `{}`) with `weave` computed fields.
pub fn summary_with_computed_fields(
    stored: Option<Value>,
    exception: Option<&str>,
    ended: bool,
    latency_ms: Option<f64>,
    trace_name: &str,
) -> Value {
    let status = status(exception, stored.as_ref(), ended);
    let mut summary = match stored {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let weave = summary.entry("weave").or_insert_with(|| Value::Object(Map::new()));
    if !weave.is_object() {
        *weave = Value::Object(Map::new());
    }
    if let Value::Object(weave) = weave {
        weave.insert("status".into(), Value::from(status));
        // A running call has no latency: the key is absent, as in Weave.
        weave.remove("latency_ms");
        if let Some(latency) = latency_ms {
            weave.insert("latency_ms".into(), Value::from(latency));
        }
        weave.insert("trace_name".into(), Value::from(trace_name));
    }
    Value::Object(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_prefers_error_then_descendant_error_then_running() {
        assert_eq!(status(Some("boom"), None, true), "error");
        assert_eq!(status(None, Some(&json!({"status_counts": {"error": 2}})), true), "descendant_error");
        assert_eq!(status(None, Some(&json!({"status_counts": {"error": 0}})), false), "running");
        assert_eq!(status(None, None, true), "success");
    }

    #[test]
    fn trace_name_uses_display_name_then_op_ref_name_then_op_name() {
        assert_eq!(trace_name(Some("nice"), "weave:///e/p/op/f:abc"), "nice");
        assert_eq!(trace_name(Some(""), "weave:///e/p/op/f:abc"), "f");
        assert_eq!(trace_name(None, "weave:///e/p/object/f:abc"), "weave:///e/p/object/f:abc");
        assert_eq!(trace_name(None, "plain"), "plain");
    }

    #[test]
    fn refs_are_found_in_text_as_in_the_value_and_keys_and_embedded_quotes_are_not_refs() {
        let text = r#"{"a": "weave:///e/p/object/x:1", "weave:///e/p/key:0": 1,
            "b": [{"c": "weave:///e/p/object/x:1"}, "weave:///e/p/op/y:2", "say \"weave:///e/p/q:3\" here"],
            "d": "nope", "e": "weave:///e/p/object/\u00e9:4", "f": "ends\\", "g": "weave:///e/p/z:5"}"#;
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(find_refs_in_text(text), find_refs([&value]));
        assert_eq!(
            find_refs_in_text(text),
            ["weave:///e/p/object/x:1", "weave:///e/p/object/é:4", "weave:///e/p/op/y:2", "weave:///e/p/z:5"]
        );
        assert!(find_refs_in_text(r#"{"unterminated": "weave:///e/p/x"#).is_empty());
    }

    #[test]
    fn refs_are_found_at_any_depth_once_each() {
        let value = json!({"a": "weave:///e/p/object/x:1", "b": [{"c": "weave:///e/p/object/x:1"}, "weave:///e/p/op/y:2"], "d": "nope"});
        assert_eq!(find_refs([&value]), vec!["weave:///e/p/object/x:1", "weave:///e/p/op/y:2"]);
    }
}
