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

/// The usage endpoints read a call's stored `summary.usage`; statistics read the usage rows
/// written from it with the end. Odd counters (strings, floats, overflow, nulls, nested values,
/// repeated keys, escaped model names) must come out the same both ways.
#[sqlx::test(migrator = "MIGRATOR")]
async fn usage_endpoints_read_odd_counters_exactly_as_the_usage_rows_written_with_the_end(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let usages = [
        r#"{"m": {"prompt_tokens": "12", "completion_tokens": 3.9, "total_tokens": -4, "requests": "1.5"}}"#,
        r#"{"m": {"prompt_tokens": 1, "prompt_tokens": 5}, "n": 7, "o": null, "p": [1, {"q": 2}],
            "q": {"input_tokens": {"x": 1}, "output_tokens": [5], "requests": true, "other": {"total_tokens": 9}}}"#,
        r#"{"m": {"gross_input_tokens": null, "prompt_tokens": 2, "input_tokens": 3},
            "m2": {"gross_input_tokens": "40", "prompt_tokens": 2}, "m3": {"gross_input_tokens": 7, "gross_input_tokens": null, "requests": 1}}"#,
        r#"{"m": {"prompt_tokens": 18446744073709551615, "completion_tokens": 1e30, "requests": -9223372036854775808,
            "cache_read_input_tokens": -2.5e-300, "cache_creation_input_tokens": 123456789012345678901234567890}}"#,
        r#"{"m": {"total_tokens": 0, "input_tokens": 9223372036854775807, "output_tokens": 1}}"#,
        r#"{"m": {"prompt_tokens": 1}, "m": 5, "n": 5, "n": {"prompt_tokens": 2}}"#,
        r#"{"é/mödel \"quoted\"\n": {"requests": 1, "cache_creation_input_tokens": "-0"}}"#,
        r#"[{"m": {"prompt_tokens": 1}}]"#,
        r#""m""#,
        r#"null"#,
    ];
    let mut batch = Vec::new();
    for (i, usage) in usages.iter().enumerate() {
        let id = format!("u{i}");
        let start = start(&id, "2025-01-15T11:00:00Z", json!({"trace_id": "odd"}));
        batch.push(start_item(start).to_string());
        batch.push(format!(
            r#"{{"mode": "end", "req": {{"end": {{"project_id": "{PROJECT}", "id": "{id}",
                "ended_at": "2025-01-15T11:00:01Z", "summary": {{"usage": {usage}}}}}}}}}"#
        ));
    }
    let body = format!(r#"{{"batch": [{}]}}"#, batch.join(","));
    let reply = app.send("/call/upsert_batch", body, Some(&app.basic()), "application/json").await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    // Each call is a leaf, so its usage is its own: the written rows, all-zero rows left out.
    let rows: Vec<(String, String, Vec<i64>)> = sqlx::query_as(
        "select call_id, model, array[requests, input_tokens, output_tokens, total_tokens, cache_read_input_tokens,
                cache_creation_input_tokens] from call_usage order by call_id, model",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let mut expected = serde_json::Map::new();
    for i in 0..usages.len() {
        expected.insert(format!("u{i}"), json!({}));
    }
    for (call, model, counters) in rows {
        let [requests, input, output, total, cache_read, cache_creation] = counters[..] else { panic!("{counters:?}") };
        if counters.iter().all(|&c| c == 0) {
            continue;
        }
        expected[&call][&model] = json!({
            "requests": requests, "prompt_tokens": input, "completion_tokens": output, "total_tokens": total,
            "cache_read_input_tokens": cache_read, "cache_creation_input_tokens": cache_creation,
            "prompt_tokens_total_cost": null, "completion_tokens_total_cost": null,
            "cache_read_input_tokens_total_cost": null, "cache_creation_input_tokens_total_cost": null});
    }
    // The rule itself, on a few of them: strings of digits read, floats truncate, u64 and
    // beyond saturate, a repeated key keeps its last value, a non-object model has no row.
    assert_eq!(expected["u0"]["m"]["prompt_tokens"], 12);
    assert_eq!(expected["u0"]["m"]["total_tokens"], 15);
    assert_eq!(expected["u1"]["m"]["prompt_tokens"], 5);
    assert_eq!(expected["u1"].as_object().unwrap().keys().collect::<Vec<_>>(), ["m"]);
    assert_eq!(expected["u2"]["m"]["prompt_tokens"], 5);
    assert_eq!(expected["u2"]["m2"]["prompt_tokens"], 40);
    assert_eq!(expected["u2"]["m3"]["prompt_tokens"], 0);
    assert_eq!(expected["u3"]["m"]["prompt_tokens"], i64::MAX);
    assert_eq!(expected["u3"]["m"]["cache_creation_input_tokens"], i64::MAX);
    assert_eq!(expected["u5"].as_object().unwrap().keys().collect::<Vec<_>>(), ["n"]);
    assert_eq!(expected["u6"]["é/mödel \"quoted\"\n"]["requests"], 1);

    let traced = app.ok("/trace/usage", json!({"project_id": PROJECT, "filter": {"trace_ids": ["odd"]}})).await;
    assert_eq!(traced["call_usage"], Value::Object(expected.clone()));
    let ids: Vec<String> = expected.keys().cloned().collect();
    let asked = app.ok("/calls/usage", json!({"project_id": PROJECT, "call_ids": ids})).await;
    assert_eq!(asked["call_usage"], Value::Object(expected));
}

/// The limit keeps the first calls by start time (then id in byte order), however the rows
/// were written: here the latest call is written first.
#[sqlx::test(migrator = "MIGRATOR")]
async fn trace_usage_past_its_limit_keeps_the_earliest_calls_not_the_first_written(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let calls = ["c3", "c2", "B1", "a1", "c0"].map(|id| {
        let second = match id {
            "c3" => 3,
            "c2" => 2,
            "c0" => 0,
            _ => 1,
        };
        let at = format!("2025-01-15T11:00:0{second}Z");
        (
            start(id, &at, json!({"trace_id": "t"})),
            Some(end(id, &at, json!({"summary": {"usage": {"m": usage(1, 1)}}}))),
        )
    });
    ingest(&app, calls.into_iter().collect()).await;
    let ids = |res: &Value| res["call_usage"].as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    let two = app.ok("/trace/usage", json!({"project_id": PROJECT, "filter": {"trace_ids": ["t"]}, "limit": 2})).await;
    assert_eq!(ids(&two), ["B1", "c0"]);
    let three =
        app.ok("/trace/usage", json!({"project_id": PROJECT, "filter": {"trace_ids": ["t"]}, "limit": 3})).await;
    assert_eq!(ids(&three), ["B1", "a1", "c0"]);
    let all = app.ok("/trace/usage", json!({"project_id": PROJECT, "filter": {"trace_ids": ["t"]}, "limit": 5})).await;
    assert_eq!(ids(&all), ["B1", "a1", "c0", "c2", "c3"]);
}

/// Costs are floats, so their sums depend on the order they are added in. The same calls
/// written in different orders (so lying in different orders on disk) give byte-identical
/// answers.
#[sqlx::test(migrator = "MIGRATOR")]
async fn usage_answers_do_not_depend_on_the_order_the_calls_were_written_in(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let calls = |project: &str| -> Vec<(Value, Option<Value>)> {
        (0..60)
            .map(|i: i64| {
                let id = format!("c{i:02}");
                // One start time: the default order is then by id, and an index on start time
                // gives the rows in the order they lie on disk.
                let at = "2025-01-15T11:00:00Z";
                let parent = (i > 0).then_some("c00");
                let tokens = json!({"gpt-4o": usage(1 + (i * 7919) % 997, 1 + (i * 104_729) % 991)});
                let mut s = start(&id, at, json!({"trace_id": "t", "parent_id": parent}));
                let mut e = end(&id, at, json!({"summary": {"usage": tokens}}));
                s["project_id"] = json!(project);
                e["project_id"] = json!(project);
                (s, Some(e))
            })
            .collect()
    };
    ingest(&app, calls(PROJECT)).await;
    // A batch is written in id order, so the reversed project gets its calls in batches of 10,
    // the last ids first.
    let mut reversed = calls("acme/reversed");
    while !reversed.is_empty() {
        let batch = reversed.split_off(reversed.len() - 10);
        ingest(&app, batch).await;
    }
    let answers = |project: &'static str| {
        let app = &app;
        async move {
            let traced = app.post("/trace/usage", json!({"project_id": project, "include_costs": true})).await;
            let asked = app
                .post("/calls/usage", json!({"project_id": project, "call_ids": ["c00"], "include_costs": true}))
                .await;
            assert!(traced.body["call_usage"]["c00"]["gpt-4o"]["prompt_tokens_total_cost"].as_f64().unwrap() > 0.0);
            (traced.text, asked.text)
        }
    };
    assert_eq!(answers(PROJECT).await, answers("acme/reversed").await);
}
