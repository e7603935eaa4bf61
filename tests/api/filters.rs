//! Every `CallsFilter` field (API.md §7.1), checked through `/calls/query_stats`.
use serde_json::{json, Value};
use sqlx::PgPool;
use weave_trace_server::store::MIGRATOR;

use crate::support::*;

async fn seeded(pool: PgPool) -> TestApp {
    let app = TestApp::new(pool).await;
    let at = "2025-01-15T11:00:00Z";
    let op = |name: &str, v: &str| format!("weave:///acme/app/op/{name}:{v}");
    ingest(
        &app,
        vec![
            (
                start(
                    "root",
                    at,
                    json!({"op_name": op("pipeline", "v1"), "thread_id": "th1", "turn_id": "tu1", "wb_run_id": "acme/app/run1",
            "inputs": {"doc": {"nested": ["weave:///acme/app/object/doc:d1"]}}}),
                ),
                Some(end("root", at, json!({"output": "weave:///acme/app/object/answer:a1"}))),
            ),
            (
                start(
                    "child",
                    at,
                    json!({"parent_id": "root", "op_name": op("llm", "v1"), "thread_id": "th1", "turn_id": "tu2"}),
                ),
                None,
            ),
            (
                start(
                    "child2",
                    at,
                    json!({"parent_id": "root", "op_name": op("llm", "v2"),
            "inputs": {"x": "weave:///acme/app/object/doc:d2"}}),
                ),
                None,
            ),
            (start("other", at, json!({"trace_id": "t2", "op_name": "plain-op", "wb_run_id": "acme/app/run2"})), None),
        ],
    )
    .await;
    app
}

async fn count(app: &TestApp, filter: Value) -> i64 {
    app.ok("/calls/query_stats", json!({"project_id": PROJECT, "filter": filter})).await["count"].as_i64().unwrap()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn op_names_match_exactly_or_every_version_with_colon_star(pool: PgPool) {
    let app = seeded(pool).await;
    assert_eq!(count(&app, json!({"op_names": ["weave:///acme/app/op/llm:v1"]})).await, 1);
    assert_eq!(count(&app, json!({"op_names": ["weave:///acme/app/op/llm:*"]})).await, 2);
    assert_eq!(count(&app, json!({"op_names": ["weave:///acme/app/op/llm:*", "plain-op"]})).await, 3);
    assert_eq!(count(&app, json!({"op_names": ["weave:///acme/app/op/ll:*"]})).await, 0);
    assert_eq!(count(&app, json!({"op_names": []})).await, 4);
    assert_eq!(count(&app, json!({"op_names": null})).await, 4);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn input_and_output_refs_match_refs_found_anywhere(pool: PgPool) {
    let app = seeded(pool).await;
    assert_eq!(count(&app, json!({"input_refs": ["weave:///acme/app/object/doc:d1"]})).await, 1);
    assert_eq!(count(&app, json!({"input_refs": ["weave:///acme/app/object/doc:*"]})).await, 2);
    assert_eq!(count(&app, json!({"output_refs": ["weave:///acme/app/object/answer:a1"]})).await, 1);
    assert_eq!(count(&app, json!({"output_refs": ["weave:///acme/app/object/doc:*"]})).await, 0);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn id_lists_match_their_columns_and_null_never_matches(pool: PgPool) {
    let app = seeded(pool).await;
    assert_eq!(count(&app, json!({"parent_ids": ["root"]})).await, 2);
    assert_eq!(count(&app, json!({"trace_ids": ["t2"]})).await, 1);
    assert_eq!(count(&app, json!({"call_ids": ["root", "other", "missing"]})).await, 2);
    assert_eq!(count(&app, json!({"thread_ids": ["th1"]})).await, 2);
    assert_eq!(count(&app, json!({"turn_ids": ["tu2"]})).await, 1);
    assert_eq!(count(&app, json!({"wb_user_ids": ["alice"]})).await, 4);
    assert_eq!(count(&app, json!({"wb_user_ids": ["bob"]})).await, 0);
    // Bare run ids are qualified with the project, as the SDK stores them.
    assert_eq!(count(&app, json!({"wb_run_ids": ["run1", "acme/app/run2"]})).await, 2);
    assert_eq!(count(&app, json!({"wb_run_ids": ["other/app/run1"]})).await, 0);
    assert_eq!(count(&app, json!({"trace_roots_only": true})).await, 2);
    assert_eq!(count(&app, json!({"trace_roots_only": false})).await, 4);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn filter_fields_are_anded(pool: PgPool) {
    let app = seeded(pool).await;
    assert_eq!(count(&app, json!({"thread_ids": ["th1"], "trace_roots_only": true})).await, 1);
    assert_eq!(count(&app, json!({"parent_ids": ["root"], "op_names": ["weave:///acme/app/op/llm:v2"]})).await, 1);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_filter_list_over_1000_values_is_rejected(pool: PgPool) {
    let app = seeded(pool).await;
    let ids: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
    let reply = app.post("/calls/query_stats", json!({"project_id": PROJECT, "filter": {"call_ids": ids}})).await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.body["detail"][0]["loc"], json!(["body", "filter", "call_ids"]));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn ref_filters_can_use_the_ref_indexes_that_skip_calls_without_refs(pool: PgPool) {
    use weave_trace_server::domain::filter::CallsFilter;
    use weave_trace_server::store::filter::{push_conditions, Selection};
    let app = seeded(pool.clone()).await;
    // A project of many calls without refs, as the planner sees it at scale.
    sqlx::query(
        "insert into calls (project_id, id, trace_id, op_name, started_at, wb_user_id)
         select $1, 'bulk' || i, 'bulk' || i, 'plain-op', now(), 'alice' from generate_series(1, 5000) i",
    )
    .bind(PROJECT)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("analyze calls").execute(&pool).await.unwrap();
    assert_eq!(count(&app, json!({"input_refs": ["weave:///acme/app/object/doc:d2"]})).await, 1);
    for (column, filter) in [
        ("input_refs", json!({"input_refs": ["weave:///acme/app/object/doc:d2"]})),
        ("output_refs", json!({"output_refs": ["weave:///acme/app/object/answer:a1"]})),
    ] {
        let selection = Selection { filter: serde_json::from_value::<CallsFilter>(filter).unwrap(), query: None };
        let mut qb = sqlx::QueryBuilder::new("explain select c.id from calls c where c.project_id = ");
        qb.push_bind(PROJECT);
        push_conditions(&mut qb, "c", &selection);
        let plan: Vec<String> = qb.build_query_scalar().fetch_all(&pool).await.unwrap();
        let plan = plan.join("\n");
        assert!(plan.contains(&format!("calls_{column}")), "{plan}");
        // Calls without refs are not in the index at all.
        let (definition,): (String,) = sqlx::query_as("select pg_get_indexdef($1::regclass)")
            .bind(format!("calls_{column}"))
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(definition.ends_with(&format!("WHERE ({column} <> '{{}}'::text[])")), "{definition}");
    }
}
