//! `/calls/stream_query`: order, sorting, paging, columns, JSON lines.
use serde_json::{json, Value};
use sqlx::PgPool;
use weave_trace_server::store::MIGRATOR;

use crate::support::*;

async fn seeded(pool: PgPool) -> TestApp {
    let app = TestApp::new(pool).await;
    let op = |n: &str| format!("weave:///acme/app/op/{n}:v1");
    ingest(
        &app,
        vec![
            // Same start for B and a: ids break the tie in byte order (B before a).
            (
                start("a", "2025-01-15T11:00:01Z", json!({"op_name": op("zeta"), "inputs": {"n": 3}})),
                Some(end("a", "2025-01-15T11:00:04Z", json!({}))),
            ),
            (
                start("B", "2025-01-15T11:00:01Z", json!({"op_name": op("alpha"), "inputs": {"n": 10}})),
                Some(end("B", "2025-01-15T11:00:02Z", json!({"exception": "boom"}))),
            ),
            (
                start(
                    "c",
                    "2025-01-15T11:00:00Z",
                    json!({"op_name": op("mid"), "display_name": "Custom", "inputs": {"n": 1}}),
                ),
                None,
            ),
            (start("d", "2025-01-15T11:00:03Z", json!({"op_name": op("gone")})), None),
        ],
    )
    .await;
    app.ok("/calls/delete", json!({"project_id": PROJECT, "call_ids": ["d"]})).await;
    app
}

async fn query(app: &TestApp, extra: Value) -> Vec<Value> {
    let mut body = json!({"project_id": PROJECT});
    merge(&mut body, extra);
    let reply = app.post("/calls/stream_query", body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.headers["content-type"], "application/jsonl");
    reply.text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

async fn ids(app: &TestApp, extra: Value) -> Vec<String> {
    query(app, extra).await.iter().map(|c| c["id"].as_str().unwrap().to_string()).collect()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_default_order_is_start_then_id_in_byte_order(pool: PgPool) {
    let app = seeded(pool).await;
    assert_eq!(ids(&app, json!({})).await, ["c", "B", "a"]);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn sort_by_accepts_columns_computed_fields_and_json_paths(pool: PgPool) {
    let app = seeded(pool).await;
    let by = |field: &str, direction: &str| json!({"sort_by": [{"field": field, "direction": direction}]});
    assert_eq!(ids(&app, by("op_name", "asc")).await, ["B", "c", "a"]);
    assert_eq!(ids(&app, by("started_at", "desc")).await, ["B", "a", "c"]);
    assert_eq!(ids(&app, by("summary.weave.latency_ms", "desc")).await, ["a", "B", "c"]); // running (null) last, as in Weave
    assert_eq!(ids(&app, by("summary.weave.status", "asc")).await, ["B", "c", "a"]); // error, running, success
    assert_eq!(ids(&app, by("summary.weave.trace_name", "asc")).await, ["c", "B", "a"]); // Custom, alpha, zeta
    assert_eq!(ids(&app, by("inputs.n", "desc")).await, ["B", "a", "c"]); // numbers compare as numbers
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn limit_and_offset_page_through_the_order(pool: PgPool) {
    let app = seeded(pool).await;
    assert_eq!(ids(&app, json!({"limit": 2})).await, ["c", "B"]);
    assert_eq!(ids(&app, json!({"limit": 2, "offset": 2})).await, ["a"]);
    assert_eq!(ids(&app, json!({"offset": 5})).await, Vec::<String>::new());
    let negative = app.post("/calls/stream_query", json!({"project_id": PROJECT, "limit": -1, "offset": -2})).await;
    assert_eq!(negative.status, 422);
    assert_eq!(negative.body["detail"].as_array().unwrap().len(), 2);
    assert_eq!(ids(&app, json!({"filter": {"op_names": ["weave:///acme/app/op/zeta:*"]}})).await, ["a"]);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn columns_fill_the_asked_fields_and_keep_every_key_with_empty_values(pool: PgPool) {
    let app = seeded(pool).await;
    let all = query(&app, json!({"limit": 1})).await;
    let every: Vec<&String> = all[0].as_object().unwrap().keys().collect();
    // Every key the SDK's Call model reads is there; the fields not asked for are empty.
    let calls = query(&app, json!({"columns": ["output_dump"], "limit": 1})).await;
    let call = calls[0].as_object().unwrap();
    assert_eq!(call.keys().collect::<Vec<_>>(), every);
    assert_eq!((call["attributes"].clone(), call["inputs"].clone()), (json!({}), json!({})));
    assert_eq!(
        (call["exception"].clone(), call["ended_at"].clone(), call["display_name"].clone()),
        (Value::Null, Value::Null, Value::Null)
    );
    assert_eq!(call["output"], all[0]["output"], "output_dump names output");
    assert_eq!(call["summary"], json!({"weave": all[0]["summary"]["weave"]}), "only the computed summary");
    for field in ["id", "project_id", "trace_id", "op_name", "started_at"] {
        assert_eq!(call[field], all[0][field], "{field} is always filled");
    }
    // A dotted name selects its field whole; `summary` brings what its status needs.
    let calls = query(&app, json!({"columns": ["summary.weave.status", "inputs.n"], "limit": 1})).await;
    assert_eq!(calls[0]["inputs"], all[0]["inputs"]);
    assert_eq!(calls[0]["summary"], all[0]["summary"]);
    assert_eq!(calls[0]["display_name"], all[0]["display_name"]);
    // include_costs fills summary.weave.costs whatever the columns.
    let costed = query(&app, json!({"columns": ["id"], "include_costs": true, "limit": 1})).await;
    assert_eq!(costed[0]["summary"]["weave"]["status"], all[0]["summary"]["weave"]["status"]);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn unknown_sort_fields_are_refused_with_400(pool: PgPool) {
    let app = seeded(pool).await;
    for field in ["password", "inputs..x", "summary.weave.nope; drop table calls", "c.id"] {
        let reply = app
            .post(
                "/calls/stream_query",
                json!({"project_id": PROJECT, "sort_by": [{"field": field, "direction": "asc"}]}),
            )
            .await;
        if field == "summary.weave.nope; drop table calls" {
            // A JSON path under summary: valid, just matches nothing useful.
            assert_eq!(reply.status, 200, "{field}");
        } else {
            assert_eq!(reply.status, 400, "{field}");
            assert_eq!(reply.body["reason"], format!("Field {field} is not allowed"));
        }
    }
    assert_eq!(app.count_rows("calls").await, 4);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn sorting_by_a_json_path_puts_numbers_before_strings_and_missing_last_both_ways(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let values = [("n10", json!(10)), ("n2", json!(2)), ("sb", json!("b")), ("sa", json!("a")), ("null", Value::Null)];
    let mut calls: Vec<(Value, Option<Value>)> =
        values.iter().map(|(id, v)| (start(id, "2025-01-15T11:00:00Z", json!({"inputs": {"v": v}})), None)).collect();
    calls.push((start("missing", "2025-01-15T11:00:00Z", json!({})), None));
    ingest(&app, calls).await;
    let by = |direction: &str| json!({"sort_by": [{"field": "inputs.v", "direction": direction}]});
    // Null and missing tie last, ordered by start then id.
    assert_eq!(ids(&app, by("asc")).await, ["n2", "n10", "sa", "sb", "missing", "null"]);
    assert_eq!(ids(&app, by("desc")).await, ["n10", "n2", "sb", "sa", "missing", "null"]);
}
