//! `/trace/usage` and `/calls/usage` (API.md §5) over traces with known totals.
use serde_json::{json, Value};
use sqlx::PgPool;
use weave_trace_server::store::MIGRATOR;

use crate::support::*;

fn usage(input: i64, output: i64) -> Value {
    json!({"prompt_tokens": input, "completion_tokens": output, "requests": 1})
}

fn entry(requests: i64, input: i64, output: i64, total: i64) -> Value {
    json!({"requests": requests, "prompt_tokens": input, "completion_tokens": output, "total_tokens": total,
           "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0,
           "prompt_tokens_total_cost": null, "completion_tokens_total_cost": null,
           "cache_read_input_tokens_total_cost": null, "cache_creation_input_tokens_total_cost": null})
}

/// root ─┬─ a ── b        root and a use gpt-4o, b uses claude (Anthropic style)
///       ├─ c             no usage
///       ├─ d             running
///       ├─ z             only zero counters (dropped)
///       └─ e ── f        deleted subtree (would add 1000 tokens)
/// x ⇄ y, s → s           cycles in trace t2
async fn seeded(pool: PgPool) -> TestApp {
    let app = TestApp::new(pool).await;
    let t = |s: u32| format!("2025-01-15T11:00:{s:02}Z");
    let call = |id: &str, parent: Option<&str>, s: u32, trace: &str| {
        start(id, &t(s), json!({"parent_id": parent, "trace_id": trace}))
    };
    let done = |id: &str, s: u32, u: Value| Some(end(id, &t(s + 1), json!({"summary": {"usage": u}})));
    ingest(
        &app,
        vec![
            (call("root", None, 0, "t1"), done("root", 9, json!({"gpt-4o": usage(1, 1)}))),
            (call("a", Some("root"), 1, "t1"), done("a", 2, json!({"gpt-4o": usage(10, 5)}))),
            (
                call("b", Some("a"), 2, "t1"),
                done("b", 3, json!({"claude": {"input_tokens": 7, "output_tokens": 3, "requests": 1}})),
            ),
            (call("c", Some("root"), 3, "t1"), done("c", 4, json!({}))),
            (call("d", Some("root"), 4, "t1"), None),
            (call("z", Some("root"), 5, "t1"), done("z", 6, json!({"gpt-4o": {"prompt_tokens": 0}}))),
            (call("e", Some("root"), 6, "t1"), done("e", 7, json!({"gpt-4o": usage(1000, 0)}))),
            (call("f", Some("e"), 7, "t1"), done("f", 8, json!({"gpt-4o": usage(1000, 0)}))),
            (call("x", Some("y"), 10, "t2"), done("x", 11, json!({"gpt-4o": usage(1, 0)}))),
            (call("y", Some("x"), 11, "t2"), done("y", 12, json!({"gpt-4o": usage(2, 0)}))),
            (call("s", Some("s"), 12, "t2"), done("s", 13, json!({"gpt-4o": usage(4, 0)}))),
        ],
    )
    .await;
    app.ok("/calls/delete", json!({"project_id": PROJECT, "call_ids": ["e"]})).await;
    app
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn trace_usage_rolls_every_call_up_within_the_selection(pool: PgPool) {
    let app = seeded(pool).await;
    let res = app.ok("/trace/usage", json!({"project_id": PROJECT, "filter": {"trace_ids": ["t1"]}})).await;
    assert_eq!(
        res["call_usage"],
        json!({
            "root": {"claude": entry(1, 7, 3, 10), "gpt-4o": entry(2, 11, 6, 17)},
            "a": {"claude": entry(1, 7, 3, 10), "gpt-4o": entry(1, 10, 5, 15)},
            "b": {"claude": entry(1, 7, 3, 10)},
            "c": {}, "d": {}, "z": {},
        })
    );
    assert_eq!(res["unfinished_call_ids"], json!(["d"]));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn calls_on_a_parent_cycle_keep_only_their_own_usage(pool: PgPool) {
    let app = seeded(pool).await;
    let res = app.ok("/trace/usage", json!({"project_id": PROJECT, "filter": {"trace_ids": ["t2"]}})).await;
    assert_eq!(
        res["call_usage"],
        json!({"x": {"gpt-4o": entry(1, 1, 0, 1)}, "y": {"gpt-4o": entry(1, 2, 0, 2)}, "s": {"gpt-4o": entry(1, 4, 0, 4)}})
    );
    assert_eq!(res["unfinished_call_ids"], json!([]));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn trace_usage_selects_the_first_calls_up_to_the_limit(pool: PgPool) {
    let app = seeded(pool).await;
    // In start order the first two are root and a: root rolls up only a, not b.
    let res = app.ok("/trace/usage", json!({"project_id": PROJECT, "limit": 2})).await;
    assert_eq!(
        res["call_usage"],
        json!({"root": {"gpt-4o": entry(2, 11, 6, 17)}, "a": {"gpt-4o": entry(1, 10, 5, 15)}})
    );
    let all = app.ok("/trace/usage", json!({"project_id": PROJECT, "limit": 9})).await;
    assert_eq!(all["call_usage"].as_object().unwrap().len(), 9);
    let more = app.ok("/trace/usage", json!({"project_id": PROJECT, "limit": 100})).await;
    assert_eq!(more["call_usage"].as_object().unwrap().len(), 9);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn calls_usage_gives_each_requested_call_its_complete_subtree(pool: PgPool) {
    let app = seeded(pool).await;
    let res = app.ok("/calls/usage", json!({"project_id": PROJECT, "call_ids": ["a", "c", "e", "nope", "s"]})).await;
    assert_eq!(
        res["call_usage"],
        json!({
            "a": {"claude": entry(1, 7, 3, 10), "gpt-4o": entry(1, 10, 5, 15)},
            "c": {}, "e": {}, "nope": {},
            "s": {"gpt-4o": entry(1, 4, 0, 4)},
        })
    );
    assert_eq!(res["unfinished_call_ids"], json!(["d"]));
    // A call asked for twice is answered once, with its usage (not emptied by the repeat).
    let twice = app.ok("/calls/usage", json!({"project_id": PROJECT, "call_ids": ["s", "a", "s"]})).await;
    assert_eq!(twice["call_usage"], json!({"a": res["call_usage"]["a"], "s": res["call_usage"]["s"]}));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn calls_usage_refuses_a_trace_larger_than_the_limit(pool: PgPool) {
    let app = seeded(pool).await;
    // t1 has 6 visible calls (e and f are deleted).
    let at = app.post("/calls/usage", json!({"project_id": PROJECT, "call_ids": ["b"], "limit": 6})).await;
    assert_eq!(at.status, 200);
    let over = app.post("/calls/usage", json!({"project_id": PROJECT, "call_ids": ["b"], "limit": 5})).await;
    assert_eq!(over.status, 413);
    assert_eq!(over.body, json!({"reason": "a trace exceeds the usage limit of 5 calls; raise limit"}));
    let empty = app.ok("/calls/usage", json!({"project_id": PROJECT, "call_ids": []})).await;
    assert_eq!(empty, json!({"call_usage": {}, "unfinished_call_ids": []}));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn usage_requests_with_a_limit_below_one_are_422(pool: PgPool) {
    let app = seeded(pool).await;
    let reply = app.post("/calls/usage", json!({"project_id": PROJECT, "call_ids": ["a"], "limit": 0})).await;
    assert_eq!(reply.body["detail"][0]["loc"], json!(["body", "limit"]));
    let reply = app.post("/trace/usage", json!({"project_id": PROJECT, "limit": 0})).await;
    assert_eq!(reply.body["detail"][0]["loc"], json!(["body", "limit"]));
    let other = app.post("/trace/usage", json!({"project_id": "other/app"})).await;
    assert_eq!(other.status, 403);
}
