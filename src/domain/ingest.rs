//! Ingestion planning (API.md §2.2): turn a batch of call halves into the rows to write.
//!
//! Ids and trace ids are resolved (a start without a trace takes its parent's, from the batch
//! or the database), refs and usage rows are extracted, repeats collapse to the last write,
//! and a start and end of one call in the same batch pair up into one row.
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::call::{find_refs_in_text, EndedCall, RawJson, StartedCall};
use super::usage::{usage_rows, UsageRow};

/// One half of a call, as a batch carries it.
#[derive(Debug, Clone)]
pub enum Half {
    Start(StartedCall),
    End(EndedCall),
}

impl Half {
    pub fn project_id(&self) -> &super::ProjectId {
        match self {
            Self::Start(start) => &start.project_id,
            Self::End(end) => &end.project_id,
        }
    }
}

/// What a half answers: a start its ids, an end nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    Start { id: String, trace_id: String },
    End,
}

/// A start ready to write: ids resolved, user set, refs extracted.
#[derive(Debug, Clone)]
pub struct StartRow {
    pub project_id: String,
    pub id: String,
    pub trace_id: String,
    pub parent_id: Option<String>,
    pub thread_id: Option<String>,
    pub turn_id: Option<String>,
    pub op_name: String,
    pub display_name: Option<String>,
    pub started_at: DateTime<Utc>,
    pub attributes: RawJson,
    pub inputs: RawJson,
    pub otel_dump: Option<RawJson>,
    pub wb_user_id: String,
    pub wb_run_id: Option<String>,
    pub wb_run_step: Option<i64>,
    pub input_refs: Vec<String>,
}

/// An end ready to write, with its usage rows extracted.
#[derive(Debug, Clone)]
pub struct EndRow {
    pub project_id: String,
    pub id: String,
    pub trace_id: Option<String>,
    pub ended_at: DateTime<Utc>,
    pub exception: Option<String>,
    pub output: Option<RawJson>,
    pub summary: Value,
    pub wb_run_step_end: Option<i64>,
    pub output_refs: Vec<String>,
    pub usage: Vec<UsageRow>,
}

/// The rows a batch writes: calls whose halves both came (one row each), lone starts and lone
/// ends; each list sorted by (project, id), so concurrent batches lock rows in one order.
#[derive(Debug, Default)]
pub struct Writes {
    pub complete: Vec<(StartRow, EndRow)>,
    pub starts: Vec<StartRow>,
    pub ends: Vec<EndRow>,
}

impl Writes {
    /// Calls whose start or end (or both) the batch stores.
    pub fn calls(&self) -> usize {
        self.complete.len() + self.starts.len() + self.ends.len()
    }

    /// The projects written to (with repeats).
    pub fn projects(&self) -> Vec<&str> {
        let starts = self.complete.iter().map(|(s, _)| s).chain(&self.starts).map(|s| s.project_id.as_str());
        starts.chain(self.ends.iter().map(|e| e.project_id.as_str())).collect()
    }
}

/// `(project, call id)`.
pub type CallKey = (String, String);

/// The parents whose trace id must be looked up: starts that name a parent but no trace.
pub fn parents_to_look_up(halves: &[Half]) -> HashMap<&str, Vec<String>> {
    let mut wanted: HashMap<&str, Vec<String>> = HashMap::new();
    for half in halves {
        if let Half::Start(start) = half {
            if let (None, Some(parent)) = (&start.trace_id, &start.parent_id) {
                wanted.entry(start.project_id.as_str()).or_default().push(parent.clone());
            }
        }
    }
    wanted
}

/// Plan a batch written by `user`. `known_traces` holds the stored parents' trace ids (see
/// [`parents_to_look_up`]). Answers come in input order.
pub fn plan(halves: Vec<Half>, user: &str, known_traces: &HashMap<CallKey, String>) -> (Vec<Written>, Writes) {
    let mut batch_traces: HashMap<CallKey, String> = HashMap::new();
    let mut starts = Vec::new();
    let mut ends = Vec::new();
    let mut written = Vec::with_capacity(halves.len());
    for half in halves {
        match half {
            Half::Start(start) => {
                let row = start_row(start, user, &batch_traces, known_traces);
                batch_traces.insert((row.project_id.clone(), row.id.clone()), row.trace_id.clone());
                written.push(Written::Start { id: row.id.clone(), trace_id: row.trace_id.clone() });
                starts.push(row);
            }
            Half::End(end) => {
                ends.push(end_row(end));
                written.push(Written::End);
            }
        }
    }
    let starts = last_per_call(starts, |r| (r.project_id.clone(), r.id.clone()));
    let mut ends_by_key = last_per_call(ends, |r| (r.project_id.clone(), r.id.clone()));
    let mut writes = Writes::default();
    for (key, start) in starts {
        match ends_by_key.remove(&key) {
            Some(end) => writes.complete.push((start, end)),
            None => writes.starts.push(start),
        }
    }
    writes.ends = ends_by_key.into_values().collect();
    (written, writes)
}

/// A new id: UUID v7 text, so ids sort by creation time.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn start_row(
    start: StartedCall,
    user: &str,
    batch_traces: &HashMap<CallKey, String>,
    known_traces: &HashMap<CallKey, String>,
) -> StartRow {
    let project = start.project_id.as_str().to_string();
    let trace_id = start.trace_id.clone().unwrap_or_else(|| {
        start
            .parent_id
            .as_ref()
            .and_then(|parent| {
                let key = (project.clone(), parent.clone());
                batch_traces.get(&key).or_else(|| known_traces.get(&key)).cloned()
            })
            .unwrap_or_else(new_id)
    });
    StartRow {
        input_refs: find_refs_in_text(start.inputs.get()),
        id: start.id.unwrap_or_else(new_id),
        project_id: project,
        trace_id,
        parent_id: start.parent_id,
        thread_id: start.thread_id,
        turn_id: start.turn_id,
        op_name: start.op_name,
        display_name: start.display_name.filter(|name| !name.is_empty()),
        started_at: start.started_at.0,
        attributes: start.attributes,
        inputs: start.inputs,
        otel_dump: start.otel_dump,
        wb_user_id: user.to_string(),
        wb_run_id: start.wb_run_id,
        wb_run_step: start.wb_run_step,
    }
}

fn end_row(end: EndedCall) -> EndRow {
    let summary = Value::Object(end.summary);
    let output = end.output.filter(|o| o.get().trim() != "null");
    EndRow {
        project_id: end.project_id.as_str().to_string(),
        usage: usage_rows(Some(&summary)),
        output_refs: output.as_ref().map(|o| find_refs_in_text(o.get())).unwrap_or_default(),
        id: end.id,
        trace_id: end.trace_id,
        ended_at: end.ended_at.0,
        exception: end.exception,
        output,
        summary,
        wb_run_step_end: end.wb_run_step_end,
    }
}

/// The last item written for each call (a repeated start or end in one batch: last wins), by key.
fn last_per_call<T>(rows: Vec<T>, key: impl Fn(&T) -> CallKey) -> BTreeMap<CallKey, T> {
    let mut last = BTreeMap::new();
    for row in rows {
        last.insert(key(&row), row);
    }
    last
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn start(id: &str, trace: Option<&str>, parent: Option<&str>) -> Half {
        Half::Start(
            serde_json::from_value(json!({
                "project_id": "acme/app", "id": id, "trace_id": trace, "parent_id": parent, "op_name": "op",
                "started_at": "2025-01-01T00:00:00Z", "attributes": {}, "inputs": {"r": "weave:///acme/app/object/x:1"},
            }))
            .unwrap(),
        )
    }

    fn end(id: &str, tokens: i64) -> Half {
        Half::End(
            serde_json::from_value(json!({
                "project_id": "acme/app", "id": id, "ended_at": "2025-01-01T00:00:01Z",
                "summary": {"usage": {"m": {"prompt_tokens": tokens}}},
            }))
            .unwrap(),
        )
    }

    #[test]
    fn a_start_without_a_trace_takes_its_parents_from_the_batch_or_the_database() {
        let known = HashMap::from([(("acme/app".to_string(), "stored".to_string()), "t-stored".to_string())]);
        let halves = vec![
            start("root", Some("t1"), None),
            start("child", None, Some("root")),
            start("late", None, Some("stored")),
        ];
        assert_eq!(parents_to_look_up(&halves)["acme/app"], vec!["root", "stored"]);
        let (written, writes) = plan(halves, "alice", &known);
        assert_eq!(written[1], Written::Start { id: "child".into(), trace_id: "t1".into() });
        assert_eq!(written[2], Written::Start { id: "late".into(), trace_id: "t-stored".into() });
        assert!(writes.starts.iter().all(|s| s.wb_user_id == "alice"));
        assert_eq!(writes.starts[0].input_refs, vec!["weave:///acme/app/object/x:1"]);
    }

    #[test]
    fn halves_of_one_call_pair_up_and_repeats_keep_the_last_write() {
        let halves =
            vec![start("a", Some("t"), None), end("a", 1), end("a", 2), end("b", 3), start("c", Some("t"), None)];
        let (written, writes) = plan(halves, "u", &HashMap::new());
        assert_eq!(written.len(), 5);
        assert_eq!(writes.complete.len(), 1);
        assert_eq!(writes.complete[0].1.usage[0].counters.input_tokens, 2);
        assert_eq!(writes.starts.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["c"]);
        assert_eq!(writes.ends.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["b"]);
        assert_eq!(writes.calls(), 3);
    }
}
