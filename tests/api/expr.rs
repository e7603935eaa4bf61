//! Query expressions (API.md §7.2, §7.3): each operator and reading rule through the API, SQL
//! injection attempts, and a property test comparing the SQL compiler with the Rust evaluator.
use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{json, Value};
use sqlx::PgPool;
use weave_trace_server::domain::expr::{evaluate, CallView, Query};
use weave_trace_server::store::MIGRATOR;

use crate::support::*;

/// Six calls with inputs of every JSON type, a number stored as a string, errors, a running
/// call, a display name, and a parent link.
async fn seeded(pool: PgPool) -> TestApp {
    let app = TestApp::new(pool).await;
    let op = |n: &str| format!("weave:///acme/app/op/{n}:v1");
    ingest(
        &app,
        vec![
            (
                start(
                    "c1",
                    "2025-01-15T11:00:00Z",
                    json!({"op_name": op("chat"), "wb_run_step": 1,
            "inputs": {"n": 5, "s": "12", "f": 5.0, "flag": true, "list": ["a", "b"], "text": "Hello World"},
            "attributes": {"env": "prod"}}),
                ),
                Some(end("c1", "2025-01-15T11:00:01.5Z", json!({"output": {"score": 0.5}}))),
            ),
            (
                start(
                    "c2",
                    "2025-01-15T11:00:10Z",
                    json!({"op_name": op("chat"), "parent_id": "c1",
            "inputs": {"n": 10, "s": "abc", "f": 2.5, "flag": false, "list": ["b"], "text": "hello"},
            "attributes": {"env": "dev"}}),
                ),
                Some(end("c2", "2025-01-15T11:00:12Z", json!({"exception": "boom", "output": {"score": 1}}))),
            ),
            (
                start(
                    "c3",
                    "2025-01-15T11:00:20Z",
                    json!({"op_name": op("tool"), "display_name": "Custom",
            "inputs": {"n": -1, "s": "5", "list": []}}),
                ),
                None,
            ),
            (
                start("c4", "2025-01-15T11:00:30Z", json!({"op_name": "plain", "inputs": {"n": "1000", "s": null}})),
                Some(end("c4", "2025-01-15T11:00:30.25Z", json!({"summary": {"status_counts": {"error": 1}}}))),
            ),
            (
                start("c5", "2025-01-15T11:00:40Z", json!({"op_name": op("chat"), "wb_run_step": 12, "inputs": {}})),
                Some(end("c5", "2025-01-15T11:00:42Z", json!({"output": "done"}))),
            ),
            (
                start("c6", "2025-01-15T11:00:50Z", json!({"op_name": op("tool"), "inputs": {"n": 2.5, "flag": true}})),
                Some(end("c6", "2025-01-15T11:00:50.001Z", json!({}))),
            ),
        ],
    )
    .await;
    app
}

async fn matching(app: &TestApp, expr: Value) -> Vec<String> {
    let reply = app.post("/calls/stream_query", json!({"project_id": PROJECT, "query": {"$expr": expr}})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let mut ids: Vec<String> = reply
        .text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

fn get(field: &str) -> Value {
    json!({"$getField": field})
}

fn lit(value: Value) -> Value {
    json!({"$literal": value})
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn comparison_operators_read_json_as_the_literals_type(pool: PgPool) {
    let app = seeded(pool).await;
    assert_eq!(matching(&app, json!({"$eq": [get("inputs.n"), lit(json!(5))]})).await, ["c1"]);
    assert_eq!(matching(&app, json!({"$gt": [get("inputs.n"), lit(json!(5))]})).await, ["c2", "c4"]); // "1000" reads as a number
    assert_eq!(matching(&app, json!({"$gte": [get("inputs.n"), lit(json!(5))]})).await, ["c1", "c2", "c4"]);
    assert_eq!(matching(&app, json!({"$lt": [get("inputs.n"), lit(json!(2.5))]})).await, ["c3"]);
    assert_eq!(matching(&app, json!({"$lte": [get("inputs.n"), lit(json!(2.5))]})).await, ["c3", "c6"]);
    // A number stored as a string reads as a number against a number; "abc" matches nothing.
    assert_eq!(matching(&app, json!({"$gt": [get("inputs.s"), lit(json!(10))]})).await, ["c1"]);
    // Against a string, numbers print normalised: 5.0 reads "5".
    assert_eq!(matching(&app, json!({"$eq": [get("inputs.f"), lit(json!("5"))]})).await, ["c1"]);
    assert_eq!(matching(&app, json!({"$eq": [get("inputs.flag"), lit(json!(true))]})).await, ["c1", "c6"]);
    assert_eq!(matching(&app, json!({"$eq": [get("inputs.list.1"), lit(json!("b"))]})).await, ["c1"]);
    assert_eq!(
        matching(&app, json!({"$in": [get("attributes.env"), [lit(json!("prod")), lit(json!("dev"))]]})).await,
        ["c1", "c2"]
    );
    assert_eq!(matching(&app, json!({"$eq": [get("output.score"), lit(json!(1))]})).await, ["c2"]);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn missing_paths_match_nothing_but_not_and_is_null(pool: PgPool) {
    let app = seeded(pool).await;
    assert_eq!(matching(&app, json!({"$eq": [get("inputs.nope"), lit(json!("x"))]})).await, Vec::<String>::new());
    // A comparison with a missing path is unknown, and `$not` of unknown is unknown (SQL's
    // three-valued logic, as in Weave): it matches nothing either.
    assert_eq!(
        matching(&app, json!({"$not": [{"$eq": [get("inputs.nope"), lit(json!("x"))]}]})).await,
        Vec::<String>::new()
    );
    assert_eq!(matching(&app, json!({"$not": [{"$gt": [get("inputs.n"), lit(json!(5))]}]})).await, ["c1", "c3", "c6"]);
    // `$or`: true wins over unknown; unknown or false is unknown.
    let n_big = json!({"$gt": [get("inputs.n"), lit(json!(5))]});
    let nope = json!({"$eq": [get("inputs.nope"), lit(json!("x"))]});
    assert_eq!(matching(&app, json!({"$or": [n_big, nope]})).await, ["c2", "c4"]);
    assert_eq!(
        matching(&app, json!({"$not": [{"$or": [{"$gt": [get("inputs.n"), lit(json!(100))]}, nope]}]})).await,
        Vec::<String>::new()
    );
    // `$contains` with "" matches every call, a missing path included (Weave reads it as "").
    let contains = |path: &str, substr: &str| json!({"$contains": {"input": get(path), "substr": lit(json!(substr))}});
    assert_eq!(matching(&app, contains("inputs.nope", "")).await.len(), 6);
    assert_eq!(matching(&app, contains("inputs.nope", "x")).await, Vec::<String>::new());
    assert_eq!(matching(&app, json!({"$not": [contains("inputs.nope", "x")]})).await.len(), 6);
    assert_eq!(matching(&app, json!({"$eq": [get("inputs.text"), lit(json!(null))]})).await, ["c3", "c4", "c5", "c6"]);
    assert_eq!(matching(&app, json!({"$eq": [get("inputs.s"), lit(json!(null))]})).await, ["c4", "c5", "c6"]); // JSON null too
    assert_eq!(
        matching(&app, json!({"$eq": [get("parent_id"), lit(json!(null))]})).await,
        ["c1", "c3", "c4", "c5", "c6"]
    );
    let exists = json!({"$convert": {"input": get("inputs.flag"), "to": "exists"}});
    assert_eq!(matching(&app, json!({"$eq": [exists, lit(json!(true))]})).await, ["c1", "c2", "c6"]);
    assert_eq!(matching(&app, json!({"$gt": [get("inputs.nope"), lit(json!(null))]})).await, Vec::<String>::new());
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn logic_contains_and_convert_work(pool: PgPool) {
    let app = seeded(pool).await;
    let chat = json!({"$eq": [get("op_name"), lit(json!("weave:///acme/app/op/chat:v1"))]});
    assert_eq!(matching(&app, chat.clone()).await, ["c1", "c2", "c5"]);
    assert_eq!(
        matching(&app, json!({"$and": [chat.clone(), {"$gt": [get("inputs.n"), lit(json!(6))]}]})).await,
        ["c2"]
    );
    assert_eq!(
        matching(&app, json!({"$or": [chat.clone(), {"$eq": [get("op_name"), lit(json!("plain"))]}]})).await,
        ["c1", "c2", "c4", "c5"]
    );
    assert_eq!(matching(&app, json!({"$not": [chat]})).await, ["c3", "c4", "c6"]);
    assert_eq!(
        matching(&app, json!({"$contains": {"input": get("inputs.text"), "substr": lit(json!("World"))}})).await,
        ["c1"]
    );
    assert_eq!(
        matching(
            &app,
            json!({"$contains": {"input": get("inputs.text"), "substr": lit(json!("HELLO")), "case_insensitive": true}})
        )
        .await,
        ["c1", "c2"]
    );
    assert_eq!(
        matching(&app, json!({"$eq": [{"$convert": {"input": get("inputs.s"), "to": "double"}}, lit(json!(12))]}))
            .await,
        ["c1"]
    );
    assert_eq!(
        matching(&app, json!({"$eq": [{"$convert": {"input": get("inputs.n"), "to": "int"}}, lit(json!(2))]})).await,
        ["c6"]
    );
    assert_eq!(
        matching(&app, json!({"$eq": [{"$convert": {"input": get("inputs.n"), "to": "string"}}, lit(json!("-1"))]}))
            .await,
        ["c3"]
    );
    assert_eq!(
        matching(&app, json!({"$eq": [{"$convert": {"input": get("inputs.flag"), "to": "bool"}}, lit(json!(false))]}))
            .await,
        ["c2"]
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn dates_compare_with_unix_seconds_and_iso_strings_and_computed_fields_work(pool: PgPool) {
    let app = seeded(pool).await;
    // 2025-01-15T11:00:30Z is 1736938830.
    assert_eq!(matching(&app, json!({"$gte": [get("started_at"), lit(json!(1736938830))]})).await, ["c4", "c5", "c6"]);
    assert_eq!(
        matching(&app, json!({"$lt": [get("started_at"), lit(json!("2025-01-15T16:30:10+05:30"))]})).await,
        ["c1"]
    );
    assert_eq!(matching(&app, json!({"$eq": [get("summary.weave.status"), lit(json!("error"))]})).await, ["c2"]);
    assert_eq!(
        matching(&app, json!({"$eq": [get("summary.weave.status"), lit(json!("descendant_error"))]})).await,
        ["c4"]
    );
    assert_eq!(matching(&app, json!({"$eq": [get("summary.weave.status"), lit(json!("running"))]})).await, ["c3"]);
    assert_eq!(matching(&app, json!({"$gt": [get("summary.weave.latency_ms"), lit(json!(1500))]})).await, ["c2", "c5"]);
    assert_eq!(matching(&app, json!({"$eq": [get("summary.weave.trace_name"), lit(json!("Custom"))]})).await, ["c3"]);
    assert_eq!(matching(&app, json!({"$eq": [get("summary.weave.trace_name"), lit(json!("tool"))]})).await, ["c6"]);
    let bad_date = app
        .post(
            "/calls/stream_query",
            json!({"project_id": PROJECT, "query": {"$expr": {"$gt": [get("started_at"), lit(json!("soon"))]}}}),
        )
        .await;
    assert_eq!(bad_date.status, 400);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn queries_work_on_every_endpoint_that_selects_calls(pool: PgPool) {
    let app = seeded(pool).await;
    let query = json!({"$expr": {"$eq": [get("op_name"), lit(json!("weave:///acme/app/op/chat:v1"))]}});
    assert_eq!(app.ok("/calls/query_stats", json!({"project_id": PROJECT, "query": query})).await["count"], 3);
    let usage = app.ok("/trace/usage", json!({"project_id": PROJECT, "query": query})).await;
    assert_eq!(usage["call_usage"].as_object().unwrap().len(), 3);
    let stats = app
        .ok(
            "/calls/stats",
            json!({"project_id": PROJECT, "query": query, "start": "2025-01-15T11:00:00Z",
        "end": "2025-01-15T12:00:00Z", "call_metrics": [{"metric": "call_count"}]}),
        )
        .await;
    assert_eq!(stats["call_buckets"][0]["count"], 3);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn unknown_fields_are_400_and_malformed_expressions_422(pool: PgPool) {
    let app = seeded(pool).await;
    let reply = app
        .post(
            "/calls/query_stats",
            json!({"project_id": PROJECT, "query": {"$expr": {"$eq": [get("secret"), lit(json!(1))]}}}),
        )
        .await;
    assert_eq!((reply.status.as_u16(), reply.body["reason"].clone()), (400, json!("Field secret is not allowed")));
    for bad in [
        json!({"$eq": [get("op_name")]}),
        json!({"$nope": []}),
        json!({"$and": []}),
        json!("x"),
        json!({"$eq": [1, 2]}),
    ] {
        let reply = app.post("/calls/query_stats", json!({"project_id": PROJECT, "query": {"$expr": bad}})).await;
        assert_eq!(reply.status, 422, "{bad}: {}", reply.text);
        assert_eq!(reply.body["detail"][0]["loc"], json!(["body", "query"]));
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn sql_injection_in_paths_and_literals_matches_nothing_and_breaks_nothing(pool: PgPool) {
    let app = seeded(pool).await;
    let attacks = ["'; drop table calls; --", "\" or 1=1 --", "x') or ('1'='1", "$1", "\\", "%", "_", "{a,b}"];
    for attack in attacks {
        assert_eq!(
            matching(&app, json!({"$eq": [get("op_name"), lit(json!(attack))]})).await,
            Vec::<String>::new(),
            "{attack}"
        );
        assert_eq!(
            matching(&app, json!({"$eq": [get(&format!("inputs.{attack}")), lit(json!(1))]})).await,
            Vec::<String>::new(),
            "{attack}"
        );
        assert_eq!(
            matching(&app, json!({"$contains": {"input": get("op_name"), "substr": lit(json!(attack))}})).await,
            Vec::<String>::new(),
            "{attack}"
        );
        let as_field = app
            .post(
                "/calls/query_stats",
                json!({"project_id": PROJECT, "query": {"$expr": {"$eq": [get(attack), lit(json!(1))]}}}),
            )
            .await;
        assert_eq!(as_field.status, 400, "{attack}");
    }
    assert_eq!(app.count_rows("calls").await, 6);
}

// ---- property test ------------------------------------------------------------------------

const FIELDS: &[&str] = &[
    "op_name",
    "display_name",
    "parent_id",
    "exception",
    "started_at",
    "ended_at",
    "wb_run_step",
    "inputs.n",
    "inputs.s",
    "inputs.f",
    "inputs.flag",
    "inputs.list.0",
    "inputs.nope",
    "inputs.text",
    "output.score",
    "output",
    "attributes.env",
    "summary.weave.status",
    "summary.weave.latency_ms",
    "summary.weave.trace_name",
    "summary.status_counts.error",
];

fn literal_strategy() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec![
            json!(-1),
            json!(0),
            json!(1),
            json!(2.5),
            json!(5),
            json!(10),
            json!(12),
            json!(1000),
            json!(1500),
            json!(1736938830)
        ]),
        prop::sample::select(vec![
            json!("a"),
            json!("b"),
            json!("12"),
            json!("5"),
            json!("hello"),
            json!("Custom"),
            json!("error"),
            json!("running"),
            json!("prod"),
            json!(""),
            json!("2025-01-15T11:00:20Z"),
            json!("weave:///acme/app/op/chat:v1"),
            json!("true")
        ]),
        prop::sample::select(vec![json!(true), json!(false), Value::Null]),
    ]
}

fn operand_strategy() -> impl Strategy<Value = Value> {
    let field = prop::sample::select(FIELDS.to_vec()).prop_map(get);
    let to = prop::sample::select(vec!["double", "int", "bool", "string", "exists"]);
    prop_oneof![
        3 => field.clone(),
        3 => literal_strategy().prop_map(lit),
        1 => (field, to).prop_map(|(f, to)| json!({"$convert": {"input": f, "to": to}})),
    ]
}

fn expr_strategy() -> impl Strategy<Value = Value> {
    let cmp = prop::sample::select(vec!["$eq", "$gt", "$gte", "$lt", "$lte"]);
    let field = prop::sample::select(FIELDS.to_vec()).prop_map(get);
    let leaf = prop_oneof![
        4 => (cmp.clone(), field, literal_strategy().prop_map(lit)).prop_map(|(c, a, b)| json!({ c: [a, b] })),
        2 => (cmp, operand_strategy(), operand_strategy()).prop_map(|(c, a, b)| json!({ c: [a, b] })),
        1 => (operand_strategy(), prop::collection::vec(literal_strategy().prop_map(lit), 1..4)).prop_map(|(a, l)| json!({"$in": [a, l]})),
        1 => (prop::sample::select(FIELDS.to_vec()), literal_strategy().prop_filter("text", Value::is_string), any::<bool>())
            .prop_map(|(f, s, ci)| json!({"$contains": {"input": get(f), "substr": lit(s), "case_insensitive": ci}})),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(|ops| json!({"$and": ops})),
            prop::collection::vec(inner.clone(), 1..4).prop_map(|ops| json!({"$or": ops})),
            inner.clone().prop_map(|op| json!({"$not": [op]})),
            (inner.clone(), prop::sample::select(vec![true, false]))
                .prop_map(|(op, b)| json!({"$eq": [op, lit(json!(b))]})),
        ]
    })
}

/// id, stored fields, status, latency, trace name.
type EvaluatedCall = (String, serde_json::Map<String, Value>, String, Option<f64>, String);

#[sqlx::test(migrator = "MIGRATOR")]
async fn random_expressions_select_exactly_what_the_rust_evaluator_selects(pool: PgPool) {
    let app = seeded(pool).await;
    // The calls as the evaluator sees them: read back, computed fields split from the stored summary.
    let reply = app.post("/calls/stream_query", json!({"project_id": PROJECT})).await;
    let calls: Vec<Value> = reply.text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let views: Vec<EvaluatedCall> = calls
        .iter()
        .map(|call| {
            let mut fields = call.as_object().unwrap().clone();
            let weave = fields["summary"]["weave"].clone();
            fields["summary"].as_object_mut().unwrap().remove("weave");
            (
                call["id"].as_str().unwrap().to_string(),
                fields,
                weave["status"].as_str().unwrap().to_string(),
                weave["latency_ms"].as_f64(),
                weave["trace_name"].as_str().unwrap().to_string(),
            )
        })
        .collect();

    let strategy = expr_strategy();
    let mut runner = TestRunner::deterministic();
    let (mut refused, mut discriminating) = (0, 0);
    for _ in 0..300 {
        let expr = strategy.new_tree(&mut runner).unwrap().current();
        let query: Query = serde_json::from_value(json!({ "$expr": expr })).unwrap();
        let expected: BTreeSet<String> = views
            .iter()
            .filter(|(_, fields, status, latency, name)| {
                evaluate(&query.expr, &CallView { fields, status, latency_ms: *latency, trace_name: name })
            })
            .map(|(id, ..)| id.clone())
            .collect();
        let reply = app.post("/calls/stream_query", json!({"project_id": PROJECT, "query": {"$expr": expr}})).await;
        if reply.status == 400 {
            // A date compared with a string that is no datetime is refused rather than run.
            assert!(reply.text.contains("is not a datetime"), "expression: {expr}: {}", reply.text);
            refused += 1;
            continue;
        }
        assert_eq!(reply.status, 200, "expression: {expr}: {}", reply.text);
        let got: BTreeSet<String> = reply
            .text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, expected, "expression: {expr}");
        if !got.is_empty() && got.len() < views.len() {
            discriminating += 1;
        }
    }
    assert!(refused < 60, "{refused} of 300 expressions were refused");
    assert!(discriminating > 40, "only {discriminating} of 300 expressions selected some but not all calls");
}
