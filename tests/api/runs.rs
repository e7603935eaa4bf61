//! `/api/v1/runs/stats` and `/api/v1/sessions` (API.md §12) on a hand-built project, with
//! every expected number worked out from the spec (comments give the arithmetic).
use axum::body::Body;
use axum::http::{header, Request};
use serde_json::{json, Value};
use sqlx::PgPool;
use weave_trace_server::store::MIGRATOR;

use crate::support::*;

const AGENT: &str = "weave:///acme/app/op/agent:v1";
const CHAT: &str = "weave:///acme/app/op/chat:v1";
const SEARCH: &str = "weave:///acme/app/op/search:v1";

fn usage(model: &str, input: i64, output: i64, cache_read: i64) -> Value {
    json!({ model: {"input_tokens": input, "output_tokens": output, "cache_read_input_tokens": cache_read, "requests": 1} })
}

/// The project (all on 2025-01-01; latencies in seconds):
///
/// | run | trace | parent | name | type | status | latency | tokens (in/out/total) | cost |
/// |---|---|---|---|---|---|---|---|---|
/// | r1 | t1 | — | agent | chain | success | 4 | — | — |
/// | r2 | t1 | r1 | chat | llm (usage) | success | 1 | 100/20/120 | 0.1 + 0.04 |
/// | r3 | t1 | r1 | chat | llm (usage) | success | 2.5 | 310/60/370 (100 cached; `mystery` unpriced) | 0.2 + 0.1 + 0.05 |
/// | r4 | t1 | r1 | search | retriever (kind) | error | 0.5 | — | — |
/// | r5 | t2 | — | agent | tool (kind) | pending | — | — | — |
/// | r6 | t3 | — | renamed | chain | error | 3 | — | — |
/// | r8 | t3 | r6 | chat | llm (usage) | success | 1 | 50/10/60 | 0.05 + 0.02 |
///
/// r7 is deleted. Tags: r1 beta, prod; r3 beta. `env`: r1 "prod", r4 "dev", r6 3. Feedback:
/// r1 a reaction and a `custom`, r2 a note. `acme-small` costs 0.001 / 0.002 / 0.0005 (cache
/// read) per token.
async fn project(pool: PgPool) -> TestApp {
    let app = TestApp::new(pool).await;
    app.ok(
        "/cost/create",
        json!({"project_id": PROJECT, "costs": {"acme-small": {
        "prompt_token_cost": 0.001, "completion_token_cost": 0.002, "cache_read_input_token_cost": 0.0005,
        "effective_date": "2024-01-01T00:00:00Z"}}}),
    )
    .await;
    let call = |id: &str, trace: &str, parent: Option<&str>, op: &str, start: &str, attributes: Value| {
        start_item_with(id, trace, parent, op, start, attributes)
    };
    let batch = vec![
        call("r1", "t1", None, AGENT, "10:00:00", json!({"tags": ["beta", "prod"], "env": "prod"})),
        end_item(end("r1", "2025-01-01T10:00:04Z", json!({}))),
        call("r2", "t1", Some("r1"), CHAT, "10:00:01", json!({})),
        end_item(end("r2", "2025-01-01T10:00:02Z", json!({"summary": {"usage": usage("acme-small", 100, 20, 0)}}))),
        call("r3", "t1", Some("r1"), CHAT, "10:00:02", json!({"tags": ["beta"]})),
        end_item(end(
            "r3",
            "2025-01-01T10:00:04.500Z",
            json!({"summary": {"usage": {
            "acme-small": {"input_tokens": 300, "output_tokens": 50, "cache_read_input_tokens": 100},
            "mystery": {"input_tokens": 10, "output_tokens": 10}}}}),
        )),
        call("r4", "t1", Some("r1"), SEARCH, "10:00:00.500", json!({"weave": {"kind": "search"}, "env": "dev"})),
        end_item(end("r4", "2025-01-01T10:00:01Z", json!({"exception": "boom"}))),
        call("r5", "t2", None, AGENT, "11:00:00", json!({"tags": "not a list", "weave": {"kind": "tool"}})),
        call("r6", "t3", None, AGENT, "12:00:00", json!({"env": 3})),
        end_item(end("r6", "2025-01-01T12:00:03Z", json!({"exception": "bad"}))),
        call("r7", "t4", None, AGENT, "10:30:00", json!({})),
        end_item(end("r7", "2025-01-01T10:30:01Z", json!({}))),
        call("r8", "t3", Some("r6"), CHAT, "12:00:01", json!({})),
        end_item(end("r8", "2025-01-01T12:00:02Z", json!({"summary": {"usage": usage("acme-small", 50, 10, 0)}}))),
    ];
    app.ok("/call/upsert_batch", json!({ "batch": batch })).await;
    app.ok("/call/update", json!({"project_id": PROJECT, "call_id": "r6", "display_name": "renamed"})).await;
    app.ok("/calls/delete", json!({"project_id": PROJECT, "call_ids": ["r7"]})).await;
    let feedback = |call: &str, kind: &str, payload: Value| json!({"project_id": PROJECT, "weave_ref": format!("weave:///acme/app/call/{call}"), "feedback_type": kind, "payload": payload});
    app.ok(
        "/feedback/batch/create",
        json!({"batch": [
            feedback("r1", "wandb.reaction.1", json!({"emoji": "👍"})),
            feedback("r1", "custom", json!({"score": 1})),
            feedback("r2", "wandb.note.1", json!({"note": "ok"})),
        ]}),
    )
    .await;
    app
}

fn start_item_with(id: &str, trace: &str, parent: Option<&str>, op: &str, time: &str, attributes: Value) -> Value {
    start_item(start(
        id,
        &format!("2025-01-01T{time}Z"),
        json!({"trace_id": trace, "parent_id": parent, "op_name": op, "attributes": attributes,
               "inputs": if id == "r1" { json!({"question": "Hello World"}) } else { json!({}) }}),
    ))
}

async fn stats(app: &TestApp, body: Value) -> Value {
    app.ok("/api/v1/runs/stats", body).await
}

/// `run_count` of the project's runs matching `extra` request fields.
async fn count(app: &TestApp, extra: Value) -> Value {
    let mut body = json!({"session": [PROJECT], "select": ["run_count"]});
    merge(&mut body, extra.clone());
    let reply = app.post("/api/v1/runs/stats", body).await;
    assert_eq!(reply.status, 200, "{extra}: {}", reply.text);
    reply.body["run_count"].clone()
}

/// What `n` tokens cost at `rate` per token (the spec's arithmetic, in f64 as the server does).
fn at(n: f64, rate: f64) -> f64 {
    n * rate
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn every_statistic_of_a_hand_built_project_is_what_the_spec_says(pool: PgPool) {
    let app = project(pool).await;
    let all = stats(&app, json!({"session": [PROJECT]})).await;
    // Finished latencies 0.5, 1, 1, 2.5, 3, 4 (r5 is running): percentile_cont.
    let p99 = 3.0 + (0.99 * 5.0 - 4.0) * (4.0 - 3.0);
    let (r2, r3, r8) = (
        at(100.0, 0.001) + at(20.0, 0.002),
        at(200.0, 0.001) + at(50.0, 0.002) + at(100.0, 0.0005),
        at(50.0, 0.001) + at(10.0, 0.002),
    );
    let (input, output, read) = (at(350.0, 0.001), at(80.0, 0.002), at(100.0, 0.0005));
    let expected = json!({
        "run_count": 7,
        "latency_p50": 1.75,
        "latency_p99": p99,
        "latency_avg": 2.0,
        "first_token_p50": null,
        "first_token_p99": null,
        "total_tokens": 550,
        "prompt_tokens": 460,
        "completion_tokens": 90,
        // Runs with usage: totals 60, 120, 370; prompts 50, 100, 310; completions 10, 20, 60.
        "median_tokens": 120,
        "completion_tokens_p50": 20,
        "prompt_tokens_p50": 100,
        "tokens_p99": 370,
        "completion_tokens_p99": 60,
        "prompt_tokens_p99": 310,
        "last_run_start_time": "2025-01-01T12:00:01Z",
        "feedback_stats": {"custom": {"n": 1}, "wandb.note.1": {"n": 1}, "wandb.reaction.1": {"n": 1}},
        "thread_feedback_stats": {},
        "run_facets": [
            {"key": "name", "value": "chat", "n": 3}, {"key": "name", "value": "agent", "n": 2},
            {"key": "name", "value": "renamed", "n": 1}, {"key": "name", "value": "search", "n": 1},
            {"key": "run_type", "value": "llm", "n": 3}, {"key": "run_type", "value": "chain", "n": 2},
            {"key": "run_type", "value": "retriever", "n": 1}, {"key": "run_type", "value": "tool", "n": 1},
            {"key": "status", "value": "success", "n": 4}, {"key": "status", "value": "error", "n": 2},
            {"key": "status", "value": "pending", "n": 1}],
        "error_rate": 2.0 / 7.0,
        "streaming_rate": null,
        "total_cost": input + output + read,
        "prompt_cost": input + read,
        "completion_cost": output,
        // Per-run costs r8 < r2 < r3: the middle one, and 99% of the way from r2 to r3.
        "cost_p50": r2,
        "cost_p99": r2 + (0.99 * 2.0 - 1.0) * (r3 - r2),
        "session_feedback_stats": {},
        "prompt_token_details": {"cache_read": 100, "cache_creation": 0},
        "completion_token_details": {},
        "prompt_cost_details": {"cache_read": read, "cache_creation": 0.0},
        "completion_cost_details": {},
        "unpriced_count": 1,
    });
    assert_eq!(all, expected);
    assert!(r8 < r2, "the order the percentiles assume");
    let keys: Vec<&String> = all.as_object().unwrap().keys().collect();
    let expected_keys: Vec<&String> = expected.as_object().unwrap().keys().collect();
    assert_eq!(keys, expected_keys, "LangSmith's key order");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_empty_selection_has_zero_counts_and_null_percentiles(pool: PgPool) {
    let app = project(pool).await;
    let none = stats(&app, json!({"session": [PROJECT], "trace": "no-such-trace"})).await;
    assert_eq!(none["run_count"], 0);
    for key in ["latency_p50", "latency_avg", "median_tokens", "cost_p50", "error_rate", "last_run_start_time"] {
        assert_eq!(none[key], Value::Null, "{key}");
    }
    assert_eq!((none["total_tokens"].clone(), none["total_cost"].clone()), (json!(0), json!(0.0)));
    assert_eq!((none["run_facets"].clone(), none["feedback_stats"].clone()), (json!([]), json!({})));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn each_request_field_selects_the_runs_it_names(pool: PgPool) {
    let app = project(pool).await;
    for (fields, expected) in [
        (json!({}), 7),
        (json!({"id": ["r2", "r3", "r7"]}), 2),
        (json!({"trace": "t1"}), 4),
        (json!({"parent_run": "r1"}), 3),
        (json!({"run_type": "llm"}), 3),
        (json!({"run_type": "retriever"}), 1),
        (json!({"run_type": "tool"}), 1),
        (json!({"run_type": "chain"}), 2),
        (json!({"run_type": "embedding"}), 0),
        (json!({"start_time": "2025-01-01T10:00:01Z"}), 5),
        (json!({"end_time": "2025-01-01T11:00:00Z"}), 4),
        // LangSmith's SDK sends naive datetimes: UTC.
        (json!({"start_time": "2025-01-01T10:00:01", "end_time": "2025-01-01T12:00:00"}), 3),
        (json!({"error": true}), 2),
        (json!({"error": false}), 5),
        (json!({"is_root": true}), 3),
        (json!({"is_root": false}), 4),
        (json!({"execution_order": 1}), 3),
        (json!({"query": "hello world"}), 1),
        (json!({"search_filter": "CHAT"}), 3),
        (json!({"data_source_type": "current", "skip_pagination": true, "reference_example": []}), 7),
        (json!({"trace": "t1", "error": false, "is_root": false}), 2),
        (json!({"trace": "t1", "query": "chat", "start_time": "2025-01-01T10:00:02Z"}), 1),
    ] {
        assert_eq!(count(&app, fields.clone()).await, json!(expected), "{fields}");
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn every_operator_and_attribute_of_the_filter_language_selects_runs(pool: PgPool) {
    let app = project(pool).await;
    for (filter, expected) in [
        (r#"eq(name, "chat")"#, 3),
        (r#"neq(name, "chat")"#, 4),
        (r#"gt(name, "chat")"#, 2),
        (r#"eq(id, "r1")"#, 1),
        (r#"eq(trace_id, "t2")"#, 1),
        (r#"eq(parent_run_id, "r1")"#, 3),
        (r#"neq(parent_run_id, "r1")"#, 4),
        (r#"eq(parent_run_id, null)"#, 3),
        (r#"eq(run_type, "retriever")"#, 1),
        (r#"in(run_type, ["llm", "tool"])"#, 4),
        (r#"eq(status, "pending")"#, 1),
        (r#"eq(error, true)"#, 2),
        (r#"neq(error, null)"#, 2),
        (r#"eq(is_root, false)"#, 4),
        (r#"gt(start_time, "2025-01-01T11:00:00Z")"#, 2),
        (r#"gte(start_time, "2025-01-01T11:00:00Z")"#, 3),
        (r#"eq(end_time, null)"#, 1),
        (r#"lt(end_time, "2025-01-01T10:00:02Z")"#, 1),
        (r#"gt(latency, "2s")"#, 3),
        (r#"gte(latency, 2.5)"#, 3),
        (r#"lt(latency, "1000ms")"#, 1),
        (r#"lte(latency, 1)"#, 3),
        (r#"gte(total_tokens, 370)"#, 1),
        (r#"gt(prompt_tokens, 0)"#, 3),
        (r#"eq(completion_tokens, 20)"#, 1),
        (r#"eq(total_tokens, 0)"#, 4),
        (r#"gt(total_cost, 0.2)"#, 1),
        (r#"and(gt(total_cost, 0.1), eq(run_type, "llm"))"#, 2),
        (r#"has(tags, "beta")"#, 2),
        (r#"has(tags, "prod")"#, 1),
        (r#"and(eq(metadata_key, "env"), eq(metadata_value, "prod"))"#, 1),
        (r#"and(eq(metadata_key, "env"), eq(metadata_value, 3))"#, 1),
        (r#"eq(metadata_key, "env")"#, 3),
        (r#"in(metadata_key, ["env", "nothing"])"#, 3),
        (r#"search("hello")"#, 1),
        (r#"not(or(eq(name, "chat"), eq(name, "agent")))"#, 2),
        (r#"or(eq(status, "error"), and(eq(run_type, "llm"), gt(latency, 2)))"#, 3),
        // Strings are bound, never spliced.
        (r#"eq(name, "x'); drop table calls; --")"#, 0),
        (r#"search("%")"#, 0),
    ] {
        assert_eq!(count(&app, json!({ "filter": filter })).await, json!(expected), "{filter}");
    }
    assert_eq!(app.count_rows("calls").await, 8, "the injection attempt changed nothing");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn trace_and_tree_filters_select_by_the_root_and_by_any_run_of_the_trace(pool: PgPool) {
    let app = project(pool).await;
    // Roots: t1 agent (4 runs), t2 agent (1), t3 renamed (2).
    assert_eq!(count(&app, json!({"trace_filter": r#"eq(name, "agent")"#})).await, 5);
    // Traces with an error: t1 (r4) and t3 (r6).
    assert_eq!(count(&app, json!({"tree_filter": r#"eq(status, "error")"#})).await, 6);
    assert_eq!(count(&app, json!({"tree_filter": r#"eq(run_type, "tool")"#})).await, 1);
    assert_eq!(count(&app, json!({"tree_filter": r#"eq(status, "error")"#, "filter": r#"eq(name, "chat")"#})).await, 3);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn group_by_splits_runs_by_name_type_tag_and_metadata(pool: PgPool) {
    let app = project(pool).await;
    let grouped = |group_by: Value| {
        let app = &app;
        async move { stats(app, json!({"session": [PROJECT], "select": ["run_count"], "group_by": group_by})).await }
    };
    let counts = |v: &Value| -> Vec<(String, i64)> {
        v.as_object().unwrap().iter().map(|(k, s)| (k.clone(), s["run_count"].as_i64().unwrap())).collect()
    };
    let by_name = grouped(json!({"attribute": "name"})).await;
    // Ties (renamed, search) in byte order.
    assert_eq!(
        counts(&by_name),
        [("chat".into(), 3), ("agent".into(), 2), ("renamed".into(), 1), ("search".into(), 1)]
    );
    let top_two = grouped(json!({"attribute": "name", "max_groups": 2})).await;
    assert_eq!(counts(&top_two), [("chat".into(), 3), ("agent".into(), 2)]);
    let by_type = grouped(json!({"attribute": "run_type"})).await;
    assert_eq!(counts(&by_type), [("llm".into(), 3), ("chain".into(), 2), ("retriever".into(), 1), ("tool".into(), 1)]);
    // r1 has two tags and counts in both; untagged runs form no group.
    let by_tag = grouped(json!({"attribute": "tag"})).await;
    assert_eq!(counts(&by_tag), [("beta".into(), 2), ("prod".into(), 1)]);
    let by_env = grouped(json!({"attribute": "metadata", "path": "env"})).await;
    assert_eq!(counts(&by_env), [("3".into(), 1), ("dev".into(), 1), ("prod".into(), 1)]);
    let by_kind = grouped(json!({"attribute": "metadata", "path": "weave.kind"})).await;
    assert_eq!(counts(&by_kind), [("search".into(), 1), ("tool".into(), 1)]);
    // Exactly the groups asked for, empty ones too, in either place LangSmith allows.
    let chosen = grouped(json!({"attribute": "name", "groups": ["nope", "chat"]})).await;
    assert_eq!(counts(&chosen), [("chat".into(), 3), ("nope".into(), 0)]);
    let top_level = stats(
        &app,
        json!({"session": [PROJECT], "select": ["run_count"],
        "group_by": {"attribute": "name"}, "groups": ["agent"]}),
    )
    .await;
    assert_eq!(counts(&top_level), [("agent".into(), 2)]);
    // Each group carries the selected statistics of its own runs.
    let chat = &stats(&app, json!({"session": [PROJECT], "group_by": {"attribute": "name"}})).await["chat"];
    assert_eq!(chat["latency_p50"], json!(1.0), "latencies 1, 1, 2.5");
    assert_eq!(chat["total_tokens"], json!(550));
    assert_eq!(chat["feedback_stats"], json!({"wandb.note.1": {"n": 1}}));
    assert_eq!(chat["unpriced_count"], json!(1));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn select_picks_statistics_and_expands_the_two_groups(pool: PgPool) {
    let app = project(pool).await;
    let picked = stats(&app, json!({"session": [PROJECT], "select": ["error_rate", "run_count"]})).await;
    assert_eq!(picked, json!({"run_count": 7, "error_rate": 2.0 / 7.0}), "the answer's order, not the request's");
    let runs = stats(&app, json!({"session": [PROJECT], "select": ["all_run_stats"]})).await;
    let keys: Vec<&str> = runs.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
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
            "session_feedback_stats"
        ]
    );
    let tokens = stats(&app, json!({"session": [PROJECT], "select": ["all_token_stats"]})).await;
    assert!(tokens.get("run_count").is_none());
    assert_eq!(tokens.as_object().unwrap().len(), 19);
    assert_eq!(tokens["unpriced_count"], 1);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn bad_requests_are_422_with_the_field_and_the_filter_offset(pool: PgPool) {
    let app = project(pool).await;
    for (body, field) in [
        (json!({"session": []}), "session"),
        (json!({"session": ["noslash"]}), "session"),
        (json!({"session": [PROJECT], "reference_example": ["x"]}), "reference_example"),
        (json!({"session": [PROJECT], "execution_order": 2}), "execution_order"),
        (json!({"session": [PROJECT], "select": ["run_count", "bogus"]}), "select"),
        (json!({"session": [PROJECT], "run_type": "agent"}), "run_type"),
        (json!({"session": [PROJECT], "frobnicate": 1}), "frobnicate"),
        (json!({"session": [PROJECT], "group_by": {"attribute": "metadata"}}), "group_by"),
        (json!({"session": [PROJECT], "group_by": {"attribute": "name", "max_groups": 0}}), "group_by"),
        (json!({"session": [PROJECT], "groups": ["a"]}), "groups"),
        (json!({"session": [PROJECT], "filter": "eq(name, \"x\""}), "filter"),
        (json!({"session": [PROJECT], "filter": "or(gt(total_cost, 1), eq(name, \"x\"))"}), "filter"),
        (json!({"session": [PROJECT], "trace_filter": "gt(total_cost, 1)"}), "trace_filter"),
        (json!({"session": [PROJECT], "tree_filter": "eq(colour, \"red\")"}), "tree_filter"),
        (json!({"session": [PROJECT], "start_time": "yesterday"}), "start_time"),
    ] {
        let reply = app.post("/api/v1/runs/stats", body.clone()).await;
        assert_eq!(reply.status, 422, "{body}: {}", reply.text);
        let locs: Vec<String> = reply.body["detail"].as_array().unwrap().iter().map(|d| d["loc"].to_string()).collect();
        assert!(locs.iter().any(|l| l.contains(&format!("\"{field}\""))), "{body}: {locs:?}");
    }
    let syntax = app
        .post("/api/v1/runs/stats", json!({"session": [PROJECT], "filter": "and(eq(name, \"x\"), gt(latency, 2s))"}))
        .await;
    assert!(syntax.body["detail"][0]["msg"].as_str().unwrap().contains("at character 31"), "{}", syntax.text);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn sessions_are_checked_and_found_by_uuid_and_name(pool: PgPool) {
    let app = project(pool.clone()).await;
    let admin = weave_trace_server::keys::create(&pool, "root", &[], true).await.unwrap().secret;
    app.send(
        "/call/upsert_batch",
        json!({"batch": [start_item(start("o1", "2025-01-01T10:00:00Z", json!({"project_id": "other/app"})))]})
            .to_string(),
        Some(&basic_auth(&admin)),
        "application/json",
    )
    .await;
    // A foreign project: 403 whether it exists or not.
    for session in ["other/app", "other/nothing"] {
        assert_eq!(app.post("/api/v1/runs/stats", json!({"session": [session]})).await.status, 403, "{session}");
    }
    let get = |path: String, key: String| {
        let app = &app;
        async move { app.call(Request::get(path).header("x-api-key", key).body(Body::empty()).unwrap()).await }
    };
    let listed = get("/api/v1/sessions?name=app&limit=1&include_stats=False".into(), app.key.clone()).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let session = listed.body[0].clone();
    assert_eq!(listed.body.as_array().unwrap().len(), 1, "acme's key sees only acme/app");
    assert_eq!((session["name"].clone(), session["extra"]["project_id"].clone()), (json!("app"), json!(PROJECT)));
    assert_eq!(session["start_time"], "2025-01-01T10:00:00Z", "its first call");
    assert!(session.get("reference_dataset_id").is_some(), "the SDK's model requires the key");
    let uuid = session["id"].as_str().unwrap().to_string();
    let by_uuid = stats(&app, json!({"session": [uuid], "select": ["run_count"]})).await;
    assert_eq!(by_uuid["run_count"], 7);
    assert_eq!(get(format!("/api/v1/sessions/{uuid}"), app.key.clone()).await.body["name"], "app");
    assert_eq!(get("/api/v1/sessions?name=acme/app".into(), app.key.clone()).await.body[0]["id"], json!(uuid));
    assert_eq!(get("/api/v1/sessions?name=nothing".into(), app.key.clone()).await.body, json!([]));
    // The admin sees both projects named app; acme's key cannot reach other/app's session.
    let both = get("/api/v1/sessions?name=app".into(), admin.clone()).await.body;
    assert_eq!(both.as_array().unwrap().len(), 2);
    let other =
        both.as_array().unwrap().iter().find(|s| s["extra"]["project_id"] == "other/app").unwrap()["id"].clone();
    assert_eq!(get(format!("/api/v1/sessions/{}", other.as_str().unwrap()), app.key.clone()).await.status, 404);
    assert_eq!(app.post("/api/v1/runs/stats", json!({"session": [other]})).await.status, 403);
    // GET /projects lists by the same rule.
    let ids = |reply: Value| -> Vec<Value> {
        reply["projects"].as_array().unwrap().iter().map(|p| p["project_id"].clone()).collect()
    };
    assert_eq!(ids(get("/projects".into(), app.key.clone()).await.body), [json!(PROJECT)]);
    assert_eq!(ids(get("/projects".into(), admin.clone()).await.body), [json!(PROJECT), json!("other/app")]);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn x_api_key_basic_and_bearer_all_authenticate_and_two_credentials_are_refused(pool: PgPool) {
    let app = project(pool).await;
    let body = json!({"session": [PROJECT], "select": ["run_count"]}).to_string();
    let send = |headers: Vec<(&'static str, String)>| {
        let (app, body) = (&app, body.clone());
        async move {
            let mut request = Request::post("/api/v1/runs/stats").header(header::CONTENT_TYPE, "application/json");
            for (name, value) in headers {
                request = request.header(name, value);
            }
            app.call(request.body(Body::from(body)).unwrap()).await
        }
    };
    assert_eq!(send(vec![("x-api-key", app.key.clone())]).await.body["run_count"], 7);
    assert_eq!(send(vec![("authorization", format!("Bearer {}", app.key))]).await.body["run_count"], 7);
    assert_eq!(send(vec![("authorization", app.basic())]).await.body["run_count"], 7);
    assert_eq!(send(vec![]).await.status, 401);
    assert_eq!(send(vec![("x-api-key", "wts_wrong".into())]).await.status, 401);
    assert_eq!(send(vec![("x-api-key", app.key.clone()), ("authorization", app.basic())]).await.status, 400);
    assert_eq!(app.get("/api/v1/info").await.status, 200, "no key needed");
}

/// Run `n` of the rollup comparison: spread over three hours, several names, kinds and
/// renames, usage of one or two models (one unpriced) on most, errors, running runs.
fn varied_run(n: u64) -> Vec<Value> {
    let base = chrono::DateTime::parse_from_rfc3339("2025-03-01T00:00:00Z").unwrap();
    let at = |ms: u64| (base + chrono::TimeDelta::milliseconds(ms as i64)).to_rfc3339();
    let started = (n * n * 7_919 + n * 104_729) % (3 * 3_600_000);
    let id = format!("v{n}");
    let parent = (n % 4 != 0).then(|| format!("v{}", n - n % 4));
    let kind = ["llm", "tool", "search", "other"][(n % 5).min(3) as usize];
    let attributes = if n % 3 == 0 { json!({"weave": {"kind": kind}}) } else { json!({}) };
    let mut items = vec![start_item(start(
        &id,
        &at(started),
        json!({"trace_id": format!("t{}", n / 4), "parent_id": parent, "attributes": attributes,
               "op_name": format!("weave:///acme/app/op/op{}:v{}", n % 3, n % 2)}),
    ))];
    if n % 13 == 5 {
        return items;
    }
    let mut usage = serde_json::Map::new();
    for (i, model) in ["acme-small", "acme-large", "unpriced"].iter().enumerate() {
        if (n + i as u64) % 3 != 0 {
            usage.insert(
                model.to_string(),
                json!({"input_tokens": 10 + n * 13 % 997, "output_tokens": n % 101, "total_tokens": 10 + n * 13 % 997 + n % 101,
                       "cache_read_input_tokens": n % 17, "cache_creation_input_tokens": n % 5}),
            );
        }
    }
    let exception = (n % 7 == 2).then_some("boom");
    items.push(end_item(end(
        &id,
        &at(started + 1 + n * 7_907 % 20_000),
        json!({"exception": exception, "summary": {"usage": usage}}),
    )));
    items
}

/// Every request shape the rollups answer, as (name, extra request fields).
fn rollup_requests() -> Vec<(&'static str, Value)> {
    vec![
        ("everything", json!({})),
        ("by name", json!({"group_by": {"attribute": "name", "max_groups": 100}})),
        ("by run type", json!({"group_by": {"attribute": "run_type"}})),
        ("two named groups", json!({"group_by": {"attribute": "name", "groups": ["op1", "renamed", "nobody"]}})),
        ("largest two", json!({"group_by": {"attribute": "name", "max_groups": 2}})),
        ("roots", json!({"is_root": true})),
        ("finished llm runs", json!({"error": false, "run_type": "llm"})),
        ("errors", json!({"error": true})),
        (
            "uneven window",
            json!({"start_time": "2025-03-01T00:20:00.5Z", "end_time": "2025-03-01T02:31:07Z", "group_by": {"attribute": "name"}}),
        ),
        ("open start", json!({"end_time": "2025-03-01T01:52:00Z"})),
        ("open end", json!({"start_time": "2025-03-01T00:44:59.999Z", "is_root": false})),
    ]
}

/// Each request answered through the rollups equals the same request read run by run (a
/// filter every run passes forces that), both while written slots are stale (read raw) and
/// once the background refresher has rebuilt them.
async fn assert_rollups_match_raw(app: &TestApp, stage: &str) {
    for refreshed in [false, true] {
        if refreshed {
            weave_trace_server::store::slots::refresh_everything(&app.pool).await.unwrap();
        }
        for (name, extra) in rollup_requests() {
            let mut body = json!({"session": [PROJECT]});
            merge(&mut body, extra);
            let rolled = stats(app, body.clone()).await;
            merge(&mut body, json!({"filter": r#"gte(start_time, "2000-01-01T00:00:00Z")"#}));
            let raw = stats(app, body).await;
            assert_eq!(rolled, raw, "{stage} (refreshed: {refreshed}): {name}");
        }
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn run_rollups_answer_exactly_what_reading_every_run_answers(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    // acme-large changes price at 01:07:30 (inside a quarter hour) and at 02:00 (on one).
    for (model, rate, from) in [
        ("acme-small", 0.001, "2024-01-01T00:00:00Z"),
        ("acme-large", 0.01, "2024-01-01T00:00:00Z"),
        ("acme-large", 0.02, "2025-03-01T01:07:30Z"),
        ("acme-large", 0.03, "2025-03-01T02:00:00Z"),
    ] {
        app.ok(
            "/cost/create",
            json!({"project_id": PROJECT, "costs": {model: {"prompt_token_cost": rate, "completion_token_cost": rate * 2.0,
                   "cache_read_input_token_cost": rate / 4.0, "cache_creation_input_token_cost": rate * 1.25,
                   "effective_date": from}}}),
        )
        .await;
    }
    let batch: Vec<Value> = (0..240).flat_map(varied_run).collect();
    app.ok("/call/upsert_batch", json!({ "batch": batch })).await;
    for n in [1, 8, 33] {
        app.ok("/call/update", json!({"project_id": PROJECT, "call_id": format!("v{n}"), "display_name": "renamed"}))
            .await;
    }
    let feedback: Vec<Value> = (0..240)
        .step_by(9)
        .map(|n| json!({"project_id": PROJECT, "weave_ref": format!("weave:///acme/app/call/v{n}"),
                        "feedback_type": if n % 2 == 0 { "wandb.reaction.1" } else { "custom" }, "payload": {"emoji": "👍"}}))
        .collect();
    app.ok("/feedback/batch/create", json!({ "batch": feedback })).await;
    assert_rollups_match_raw(&app, "after ingest").await;
    let rolled: i64 = sqlx::query_scalar("select count(*) from run_slots").fetch_one(&pool).await.unwrap();
    assert!(rolled > 0, "the rollups were built and read");

    // Later writes, each checked on its own (another write in the same quarter hour would
    // hide a write that failed to mark its slot): a run ends, one is renamed back, one
    // deleted, one more starts in an old slot.
    app.ok("/call/end", json!({"end": end("v5", "2025-03-01T03:00:00Z", json!({"summary": {"usage": {"acme-small": {"input_tokens": 7}}}}))}))
        .await;
    assert_rollups_match_raw(&app, "after a late end").await;
    app.ok("/call/update", json!({"project_id": PROJECT, "call_id": "v8", "display_name": ""})).await;
    assert_rollups_match_raw(&app, "after a rename").await;
    app.ok("/calls/delete", json!({"project_id": PROJECT, "call_ids": ["v33"]})).await;
    assert_rollups_match_raw(&app, "after a delete").await;
    app.ok("/call/upsert_batch", json!({"batch": varied_run(1_000)})).await;
    assert_rollups_match_raw(&app, "after a new run").await;
}
