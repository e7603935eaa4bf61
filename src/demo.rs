//! `weave-trace-server demo`: an example project to try the README's examples and the
//! dashboard on. Deterministic (no randomness), so the README can show the answers.
//!
//! Three days around New York's 2025 spring-forward night (2025-03-08 to 2025-03-11 UTC), a
//! question answered every 20 minutes: `answer_question` → `retrieve` and an OpenAI call
//! (`gpt-4o`), every third one also an Anthropic call (`claude-3-5-sonnet-20241022`), every
//! fifth one a call to a model without a price (`my-finetune`); every seventh question fails
//! in its OpenAI call. One last question is still running.
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::domain::call::{EndedCall, StartedCall};
use crate::domain::ingest::{plan, Half};
use crate::store::{calls, projects};

/// The demo's first and last instants (UTC).
pub fn window() -> (DateTime<Utc>, DateTime<Utc>) {
    (Utc.with_ymd_and_hms(2025, 3, 8, 0, 0, 0).unwrap(), Utc.with_ymd_and_hms(2025, 3, 11, 0, 0, 0).unwrap())
}

/// Replace `project`'s calls with the demo's; returns a line saying what was loaded.
pub async fn load(db: &PgPool, project: &str) -> Result<String, String> {
    let project_id = crate::domain::ProjectId::parse(project).ok_or("the project must be entity/project")?;
    let halves = halves(project_id.as_str()).map_err(|e| e.to_string())?;
    let count = halves.iter().filter(|h| matches!(h, Half::Start(_))).count();
    let (_, writes) = plan(halves, "demo", &Default::default());
    let mut tx = db.begin().await.map_err(|e| e.to_string())?;
    sqlx::query("delete from call_usage where project_id = $1")
        .bind(project)
        .execute(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
    sqlx::query("delete from calls where project_id = $1")
        .bind(project)
        .execute(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
    projects::register(&mut *tx, &[project]).await.map_err(|e| e.to_string())?;
    calls::write(&mut tx, &writes).await.map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    let (from, to) = window();
    Ok(format!("loaded {project}: {count} calls from {from} to {to} (UTC)"))
}

fn op(project: &str, name: &str) -> String {
    format!("weave:///{project}/op/{name}:demo0000000000000000000000000000000000000v1")
}

fn halves(project: &str) -> Result<Vec<Half>, serde_json::Error> {
    let (from, to) = window();
    let mut out = Vec::new();
    let mut push = |start: Value, end: Option<Value>| -> Result<(), serde_json::Error> {
        out.push(Half::Start(serde_json::from_value::<StartedCall>(start)?));
        if let Some(end) = end {
            out.push(Half::End(serde_json::from_value::<EndedCall>(end)?));
        }
        Ok(())
    };
    let at = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut n = 0u32;
    let mut t = from;
    while t < to {
        let trace = format!("trace-{n:04}");
        let root = format!("q-{n:04}");
        let fails = n % 7 == 3;
        let question = format!("question {n}");
        let llm_ms = 400 + i64::from(n % 13) * 90;
        let retrieve_ms = 30 + i64::from(n % 5) * 10;
        let mut child_end = t + Duration::milliseconds(5);
        let mut calls_in_trace = 0u32;
        // retrieve
        let retrieve_end = child_end + Duration::milliseconds(retrieve_ms);
        push(
            json!({"project_id": project, "id": format!("{root}-retrieve"), "trace_id": trace, "parent_id": root,
                   "op_name": op(project, "retrieve"), "started_at": at(child_end), "attributes": {}, "inputs": {"query": question}}),
            Some(json!({"project_id": project, "id": format!("{root}-retrieve"), "ended_at": at(retrieve_end),
                        "output": {"documents": ["doc-a", "doc-b"]}, "summary": {}})),
        )?;
        calls_in_trace += 1;
        child_end = retrieve_end;
        // The OpenAI call (fails on every seventh question).
        let llm_end = child_end + Duration::milliseconds(llm_ms);
        let prompt = 900 + i64::from(n % 11) * 40;
        let completion = 120 + i64::from(n % 9) * 15;
        let openai_end = if fails {
            json!({"project_id": project, "id": format!("{root}-openai"), "ended_at": at(llm_end),
                   "exception": "RateLimitError: rate limit exceeded", "summary": {}})
        } else {
            json!({"project_id": project, "id": format!("{root}-openai"), "ended_at": at(llm_end),
                   "output": {"model": "gpt-4o-2024-08-06", "choices": [{"message": {"content": format!("answer {n}")}}]},
                   "summary": {"usage": {"gpt-4o-2024-08-06": {"requests": 1, "prompt_tokens": prompt, "completion_tokens": completion,
                                                               "total_tokens": prompt + completion}}}})
        };
        push(
            json!({"project_id": project, "id": format!("{root}-openai"), "trace_id": trace, "parent_id": root,
                   "op_name": op(project, "openai.chat.completions.create"), "started_at": at(child_end),
                   "attributes": {"weave": {"kind": "llm"}}, "inputs": {"model": "gpt-4o-2024-08-06", "messages": [{"role": "user", "content": question}]}}),
            Some(openai_end),
        )?;
        calls_in_trace += 1;
        child_end = llm_end;
        if n % 3 == 0 && !fails {
            let claude_end = child_end + Duration::milliseconds(llm_ms / 2);
            push(
                json!({"project_id": project, "id": format!("{root}-anthropic"), "trace_id": trace, "parent_id": root,
                       "op_name": op(project, "anthropic.messages.create"), "started_at": at(child_end),
                       "attributes": {"weave": {"kind": "llm"}}, "inputs": {"model": "claude-3-5-sonnet-20241022"}}),
                Some(json!({"project_id": project, "id": format!("{root}-anthropic"), "ended_at": at(claude_end),
                            "output": {"content": [{"type": "text", "text": "checked"}]},
                            "summary": {"usage": {"claude-3-5-sonnet-20241022": {"requests": 1, "input_tokens": 600,
                                "output_tokens": 80, "cache_read_input_tokens": 200}}}})),
            )?;
            calls_in_trace += 1;
            child_end = claude_end;
        }
        if n % 5 == 0 && !fails {
            let tuned_end = child_end + Duration::milliseconds(150);
            push(
                json!({"project_id": project, "id": format!("{root}-finetune"), "trace_id": trace, "parent_id": root,
                       "op_name": op(project, "my_finetune.generate"), "started_at": at(child_end), "attributes": {},
                       "inputs": {"model": "my-finetune"}}),
                Some(json!({"project_id": project, "id": format!("{root}-finetune"), "ended_at": at(tuned_end),
                            "output": "polished", "summary": {"usage": {"my-finetune": {"requests": 1, "prompt_tokens": 50, "completion_tokens": 20}}}})),
            )?;
            calls_in_trace += 1;
            child_end = tuned_end;
        }
        let root_end = child_end + Duration::milliseconds(3);
        let errors = u32::from(fails);
        push(
            json!({"project_id": project, "id": root, "trace_id": trace, "op_name": op(project, "answer_question"),
                   "started_at": at(t), "attributes": {"env": if n % 2 == 0 { "prod" } else { "staging" }},
                   "inputs": {"question": question}}),
            Some(json!({"project_id": project, "id": root, "ended_at": at(root_end),
                        "output": if fails { Value::Null } else { json!(format!("answer {n}")) },
                        "exception": if fails { json!("RateLimitError: rate limit exceeded") } else { Value::Null },
                        "summary": {"status_counts": {"success": calls_in_trace + 1 - errors, "error": errors}}})),
        )?;
        n += 1;
        t += Duration::minutes(20);
    }
    // One question still running.
    push(
        json!({"project_id": project, "id": "q-running", "trace_id": "trace-running", "op_name": op(project, "answer_question"),
               "started_at": at(to - Duration::minutes(1)), "attributes": {"env": "prod"}, "inputs": {"question": "still thinking"}}),
        None,
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_is_the_same_every_time_and_covers_errors_models_and_a_running_call() {
        let a = halves("demo/app").unwrap();
        assert_eq!(a.len(), halves("demo/app").unwrap().len());
        let starts = a.iter().filter(|h| matches!(h, Half::Start(_))).count();
        let ends = a.iter().filter(|h| matches!(h, Half::End(_))).count();
        assert_eq!(starts, ends + 1, "one call is running");
        // 216 questions of 3 calls, 61 with an Anthropic call, 38 with a fine-tune, 1 running.
        assert_eq!(starts, 216 * 3 + 61 + 38 + 1);
        // 31 questions fail: their OpenAI call and themselves.
        let failing = a.iter().filter(|h| matches!(h, Half::End(e) if e.exception.is_some())).count();
        assert_eq!(failing, 62);
    }
}
