//! Ingestion and reads (API.md §2, §3, §7.3).
use serde_json::{json, Value};
use sqlx::PgPool;
use weave_trace_server::store::MIGRATOR;

use crate::support::*;

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_started_and_ended_call_reads_back_with_computed_summary_fields(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let started = app
        .ok("/call/start", json!({"start": start("c1", "2025-01-15T11:00:00Z", json!({"inputs": {"q": "hi"}, "attributes": {"a": 1}}))}))
        .await;
    assert_eq!(started, json!({"id": "c1", "trace_id": "t1"}));
    let ended = app
        .ok("/call/end", json!({"end": end("c1", "2025-01-15T11:00:01.500250Z", json!({"output": {"answer": 42}, "summary": {"usage": {"gpt-4o": {"prompt_tokens": 3}}}}))}))
        .await;
    assert_eq!(ended, json!({}));

    let call = app.read("c1").await;
    assert_eq!(call["id"], "c1");
    assert_eq!(call["trace_id"], "t1");
    assert_eq!(call["parent_id"], Value::Null);
    assert_eq!(call["op_name"], "weave:///acme/app/op/llm:v1");
    assert_eq!(call["started_at"], "2025-01-15T11:00:00Z");
    assert_eq!(call["ended_at"], "2025-01-15T11:00:01.500250Z");
    assert_eq!(call["inputs"], json!({"q": "hi"}));
    assert_eq!(call["attributes"], json!({"a": 1}));
    assert_eq!(call["output"], json!({"answer": 42}));
    assert_eq!(call["wb_user_id"], "alice");
    assert_eq!(call["deleted_at"], Value::Null);
    assert_eq!(call["summary"]["usage"], json!({"gpt-4o": {"prompt_tokens": 3}}));
    assert_eq!(call["summary"]["weave"], json!({"status": "success", "latency_ms": 1500.25, "trace_name": "llm"}));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn missing_ids_are_generated_and_a_child_takes_its_parents_trace(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let mut root = start("ignored", "2025-01-15T11:00:00Z", json!({}));
    root.as_object_mut().unwrap().remove("id");
    root.as_object_mut().unwrap().remove("trace_id");
    let root_res = app.ok("/call/start", json!({ "start": root })).await;
    let root_id = root_res["id"].as_str().unwrap().to_string();
    let trace_id = root_res["trace_id"].as_str().unwrap().to_string();
    assert_eq!(uuid::Uuid::parse_str(&root_id).unwrap().get_version_num(), 7);
    assert_ne!(root_id, trace_id);

    // A child in a later request, and a grandchild in the same batch as its parent.
    let mut child = start("child", "2025-01-15T11:00:01Z", json!({ "parent_id": root_id }));
    child.as_object_mut().unwrap().remove("trace_id");
    let mut grandchild = start("grandchild", "2025-01-15T11:00:02Z", json!({"parent_id": "child"}));
    grandchild.as_object_mut().unwrap().remove("trace_id");
    let res = app.ok("/call/upsert_batch", json!({"batch": [start_item(child), start_item(grandchild)]})).await;
    assert_eq!(res["res"][0]["trace_id"], trace_id.as_str());
    assert_eq!(res["res"][1]["trace_id"], trace_id.as_str());
    assert_eq!(app.read("grandchild").await["trace_id"], trace_id.as_str());
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_end_before_its_start_stays_invisible_until_the_start_arrives(pool: PgPool) {
    let app = TestApp::new(pool).await;
    app.ok("/call/end", json!({"end": end("c1", "2025-01-15T11:00:02Z", json!({"exception": "boom"}))})).await;
    assert_eq!(app.read("c1").await, Value::Null);
    assert_eq!(app.ok("/calls/query_stats", json!({"project_id": PROJECT})).await["count"], 0);

    app.ok("/call/start", json!({"start": start("c1", "2025-01-15T11:00:00Z", json!({}))})).await;
    let call = app.read("c1").await;
    assert_eq!(call["ended_at"], "2025-01-15T11:00:02Z");
    assert_eq!(call["exception"], "boom");
    assert_eq!(call["summary"]["weave"]["status"], "error");
    assert_eq!(call["summary"]["weave"]["latency_ms"], 2000.0);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_running_call_has_no_latency_and_status_running(pool: PgPool) {
    let app = TestApp::new(pool).await;
    app.ok("/call/start", json!({"start": start("c1", "2025-01-15T11:00:00Z", json!({}))})).await;
    let call = app.read("c1").await;
    assert_eq!(call["ended_at"], Value::Null);
    // No latency_ms key at all while running, as in Weave.
    assert_eq!(call["summary"]["weave"], json!({"status": "running", "trace_name": "llm"}));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn descendant_errors_in_the_summary_give_status_descendant_error(pool: PgPool) {
    let app = TestApp::new(pool).await;
    ingest(
        &app,
        vec![(
            start("c1", "2025-01-15T11:00:00Z", json!({})),
            Some(end("c1", "2025-01-15T11:00:01Z", json!({"summary": {"status_counts": {"error": 1, "success": 2}}}))),
        )],
    )
    .await;
    assert_eq!(app.read("c1").await["summary"]["weave"]["status"], "descendant_error");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_retried_batch_changes_nothing(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let batch = json!({"batch": [
        start_item(start("c1", "2025-01-15T11:00:00Z", json!({}))),
        end_item(end("c1", "2025-01-15T11:00:01Z", json!({"summary": {"usage": {"m": {"input_tokens": 5}}}}))),
        start_item(start("c2", "2025-01-15T11:00:00Z", json!({"parent_id": "c1"}))),
    ]});
    let first = app.ok("/call/upsert_batch", batch.clone()).await;
    let c1 = app.read("c1").await;
    let second = app.ok("/call/upsert_batch", batch).await;
    assert_eq!(first, second);
    assert_eq!(app.read("c1").await, c1);
    assert_eq!(app.count_rows("calls").await, 2);
    assert_eq!(app.count_rows("call_usage").await, 1);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_last_write_of_each_half_wins(pool: PgPool) {
    let app = TestApp::new(pool).await;
    app.ok(
        "/call/upsert_batch",
        json!({"batch": [
            start_item(start("c1", "2025-01-15T11:00:00Z", json!({"inputs": {"v": 1}}))),
            start_item(start("c1", "2025-01-15T11:00:00Z", json!({"inputs": {"v": 2}}))),
            end_item(end("c1", "2025-01-15T11:00:01Z", json!({"summary": {"usage": {"a": {"input_tokens": 1}}}}))),
        ]}),
    )
    .await;
    app.ok(
        "/call/end",
        json!({"end": end("c1", "2025-01-15T11:00:03Z", json!({"summary": {"usage": {"b": {"input_tokens": 2}}}}))}),
    )
    .await;
    let call = app.read("c1").await;
    assert_eq!(call["inputs"], json!({"v": 2}));
    assert_eq!(call["ended_at"], "2025-01-15T11:00:03Z");
    let models: Vec<String> = sqlx::query_scalar("select model from call_usage").fetch_all(&app.pool).await.unwrap();
    assert_eq!(models, vec!["b"]);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_batch_with_one_bad_item_writes_nothing_and_points_at_the_item(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let reply = app
        .post(
            "/call/upsert_batch",
            json!({"batch": [
                start_item(start("c1", "2025-01-15T11:00:00Z", json!({}))),
                start_item(start("c2", "2025-01-15T11:00:00Z", json!({"project_id": "no-slash"}))),
            ]}),
        )
        .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(reply.body["detail"][0]["loc"], json!(["body", "batch", 1, "req", "start", "project_id"]));
    assert_eq!(reply.body["detail"][0]["type"], "value_error");
    assert_eq!(app.count_rows("calls").await, 0);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_batch_touching_another_entitys_project_writes_nothing(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let reply = app
        .post(
            "/call/upsert_batch",
            json!({"batch": [
                start_item(start("c1", "2025-01-15T11:00:00Z", json!({}))),
                start_item(start("c2", "2025-01-15T11:00:00Z", json!({"project_id": "other/app"}))),
            ]}),
        )
        .await;
    assert_eq!(reply.status, 403);
    assert_eq!(app.count_rows("calls").await, 0);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn usage_in_every_provider_style_is_normalised_into_rows(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let usage = json!({
        "openai": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "requests": 1},
        "anthropic": {"input_tokens": 7, "output_tokens": 3, "cache_read_input_tokens": 2, "cache_creation_input_tokens": 1, "requests": 2},
        "gross": {"gross_input_tokens": "40", "prompt_tokens": 1, "output_tokens": 2.9},
        "not-an-object": 12,
    });
    ingest(
        &app,
        vec![(
            start("c1", "2025-01-15T11:00:00Z", json!({})),
            Some(end("c1", "2025-01-15T11:00:01Z", json!({"summary": {"usage": usage}}))),
        )],
    )
    .await;
    let rows: Vec<(String, i64, i64, i64, i64, i64, i64)> = sqlx::query_as(
        "select model, requests, input_tokens, output_tokens, total_tokens, cache_read_input_tokens, cache_creation_input_tokens
         from call_usage order by model",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            ("anthropic".into(), 2, 7, 3, 10, 2, 1),
            ("gross".into(), 0, 40, 2, 42, 0, 0),
            ("openai".into(), 1, 10, 5, 15, 0, 0),
        ]
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_keys_user_is_written_whatever_the_client_sends(pool: PgPool) {
    let app = TestApp::new(pool).await;
    app.ok("/call/start", json!({"start": start("c1", "2025-01-15T11:00:00Z", json!({"wb_user_id": "mallory"}))}))
        .await;
    assert_eq!(app.read("c1").await["wb_user_id"], "alice");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn update_renames_a_call_and_its_trace_name(pool: PgPool) {
    let app = TestApp::new(pool).await;
    app.ok("/call/start", json!({"start": start("c1", "2025-01-15T11:00:00Z", json!({}))})).await;
    app.ok("/call/update", json!({"project_id": PROJECT, "call_id": "c1", "display_name": "Nice name"})).await;
    let call = app.read("c1").await;
    assert_eq!(call["display_name"], "Nice name");
    assert_eq!(call["summary"]["weave"]["trace_name"], "Nice name");
    // "" clears the name (the SDK's remove_display_name), as Weave does; null is refused.
    app.ok("/call/update", json!({"project_id": PROJECT, "call_id": "c1", "display_name": ""})).await;
    let call = app.read("c1").await;
    assert_eq!(call["display_name"], Value::Null);
    assert_eq!(call["summary"]["weave"]["trace_name"], "llm");
    let null = app.post("/call/update", json!({"project_id": PROJECT, "call_id": "c1", "display_name": null})).await;
    assert_eq!(null.status, 400, "{}", null.text);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_rename_that_arrives_before_its_call_is_kept_and_applied_when_the_call_arrives(pool: PgPool) {
    let app = TestApp::new(pool).await;
    // The SDK sends renames from another thread: they can beat the batch carrying the call.
    app.ok("/call/update", json!({"project_id": PROJECT, "call_id": "early", "display_name": "Named early"})).await;
    assert_eq!(app.ok("/calls/query_stats", json!({"project_id": PROJECT})).await["count"], 0, "still invisible");
    let at = "2025-01-15T11:00:00Z";
    ingest(
        &app,
        vec![(start("early", at, json!({"display_name": "from the start"})), Some(end("early", at, json!({}))))],
    )
    .await;
    let call = app.read("early").await;
    assert_eq!(call["display_name"], "Named early");
    assert_eq!(call["summary"]["weave"]["trace_name"], "Named early");
    // A later start (a retry) keeps the rename too; a later rename wins.
    app.ok("/call/start", json!({"start": start("early", at, json!({"display_name": "retried"}))})).await;
    assert_eq!(app.read("early").await["display_name"], "Named early");
    app.ok("/call/update", json!({"project_id": PROJECT, "call_id": "early", "display_name": "Renamed"})).await;
    assert_eq!(app.read("early").await["display_name"], "Renamed");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn deleting_a_call_soft_deletes_its_whole_subtree_once(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let at = "2025-01-15T11:00:00Z";
    ingest(
        &app,
        vec![
            (start("root", at, json!({})), None),
            (start("child", at, json!({"parent_id": "root"})), None),
            (start("grandchild", at, json!({"parent_id": "child"})), None),
            (start("other", at, json!({"trace_id": "t2"})), None),
        ],
    )
    .await;
    let res = app.ok("/calls/delete", json!({"project_id": PROJECT, "call_ids": ["child"]})).await;
    assert_eq!(res, json!({"num_deleted": 2}));
    assert_eq!(app.read("child").await, Value::Null);
    assert_eq!(app.read("grandchild").await, Value::Null);
    assert_eq!(app.read("root").await["id"], "root");
    assert_eq!(app.ok("/calls/query_stats", json!({"project_id": PROJECT})).await["count"], 2);

    let again = app.ok("/calls/delete", json!({"project_id": PROJECT, "call_ids": ["root", "child"]})).await;
    assert_eq!(again, json!({"num_deleted": 1}));
    assert_eq!(app.ok("/calls/query_stats", json!({"project_id": PROJECT})).await["count"], 1);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn deleting_a_parent_cycle_terminates(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let at = "2025-01-15T11:00:00Z";
    ingest(
        &app,
        vec![
            (start("a", at, json!({"parent_id": "b"})), None),
            (start("b", at, json!({"parent_id": "a"})), None),
            (start("s", at, json!({"parent_id": "s"})), None),
        ],
    )
    .await;
    assert_eq!(
        app.ok("/calls/delete", json!({"project_id": PROJECT, "call_ids": ["a", "s"]})).await,
        json!({"num_deleted": 3})
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn query_stats_counts_up_to_a_limit_and_says_whether_there_are_more(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let at = "2025-01-15T11:00:00Z";
    ingest(&app, (0..5).map(|i| (start(&format!("c{i}"), at, json!({})), None)).collect()).await;
    assert_eq!(app.ok("/calls/query_stats", json!({"project_id": PROJECT})).await, json!({"count": 5}));
    assert_eq!(
        app.ok("/calls/query_stats", json!({"project_id": PROJECT, "limit": 3})).await,
        json!({"count": 3, "has_more": true})
    );
    assert_eq!(
        app.ok("/calls/query_stats", json!({"project_id": PROJECT, "limit": 5})).await,
        json!({"count": 5, "has_more": false})
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn datetimes_with_offsets_are_stored_in_utc_at_microsecond_precision(pool: PgPool) {
    let app = TestApp::new(pool).await;
    ingest(
        &app,
        vec![(
            start("c1", "2025-01-15 16:30:00.1234567+05:30", json!({})),
            Some(end("c1", "2025-01-15T11:00:00.2234567", json!({}))),
        )],
    )
    .await;
    let call = app.read("c1").await;
    assert_eq!(call["started_at"], "2025-01-15T11:00:00.123456Z");
    assert_eq!(call["ended_at"], "2025-01-15T11:00:00.223456Z");
    assert_eq!(call["summary"]["weave"]["latency_ms"], 100.0);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_call_sent_whole_in_one_batch_reads_the_same_as_one_sent_in_halves(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let extra_start = json!({"inputs": {"doc": "weave:///acme/app/object/d:1"}, "thread_id": "th", "wb_run_step": 3});
    let extra_end = json!({"exception": "boom", "output": ["weave:///acme/app/object/o:1"], "wb_run_step_end": 4,
        "summary": {"usage": {"m": {"input_tokens": 5, "output_tokens": 2}}}});
    let whole = |id: &str| {
        (
            start(id, "2025-01-15T11:00:00Z", extra_start.clone()),
            Some(end(id, "2025-01-15T11:00:01Z", extra_end.clone())),
        )
    };
    ingest(&app, vec![whole("together")]).await;
    app.ok("/call/start", json!({"start": start("apart", "2025-01-15T11:00:00Z", extra_start.clone())})).await;
    app.ok("/call/end", json!({"end": end("apart", "2025-01-15T11:00:01Z", extra_end.clone())})).await;

    let mut together = app.read("together").await;
    let mut apart = app.read("apart").await;
    together["id"] = json!("x");
    apart["id"] = json!("x");
    assert_eq!(together, apart);
    let usage: Vec<(String, i64)> = sqlx::query_as("select call_id, total_tokens from call_usage order by call_id")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(usage, vec![("apart".into(), 7), ("together".into(), 7)]);
    for (filter, expected) in [
        (json!({"input_refs": ["weave:///acme/app/object/d:1"]}), 2),
        (json!({"output_refs": ["weave:///acme/app/object/o:1"]}), 2),
    ] {
        assert_eq!(
            app.ok("/calls/query_stats", json!({"project_id": PROJECT, "filter": filter})).await["count"],
            expected
        );
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn extreme_floats_in_stored_json_read_back_exactly(pool: PgPool) {
    let app = TestApp::new(pool).await;
    // Postgres prints these positionally (300+ digits); they must still read back as sent.
    let floats = json!([2.2250738585072014e-308, -1.1125369292536007e-308, 5e-324, 1.7976931348623157e308, 0.1]);
    let at = "2025-01-15T11:00:00Z";
    ingest(
        &app,
        vec![(start("f", at, json!({"inputs": {"x": floats}})), Some(end("f", at, json!({"output": floats}))))],
    )
    .await;
    let call = app.read("f").await;
    assert_eq!((call["inputs"]["x"].clone(), call["output"].clone()), (floats.clone(), floats.clone()));
    let feedback = json!({"project_id": PROJECT, "weave_ref": "weave:///acme/app/call/f", "feedback_type": "x", "payload": {"v": floats}});
    app.ok("/feedback/create", feedback).await;
    let read = app.ok("/feedback/query", json!({"project_id": PROJECT})).await;
    assert_eq!(read["result"][0]["payload"]["v"], floats);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn inputs_and_outputs_pass_through_as_text_numbers_beyond_f64_included(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let body = r#"{"batch": [{"mode": "start", "req": {"start": {"project_id": "acme/app", "id": "huge", "trace_id": "t",
        "op_name": "o", "started_at": "2025-01-15T11:00:00Z", "attributes": {}, "inputs": {"x": 1e400, "n": 123456789012345678901234567890}}}},
        {"mode": "end", "req": {"end": {"project_id": "acme/app", "id": "huge", "ended_at": "2025-01-15T11:00:01Z", "summary": {},
        "output": [1e-400, "weave:///acme/app/object/o:1"]}}}]}"#;
    let reply = app.send("/call/upsert_batch", body, Some(&app.basic()), "application/json").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let read = app.post("/call/read", json!({"project_id": PROJECT, "id": "huge"})).await;
    assert_eq!(read.status, 200);
    assert!(read.text.contains(&format!("\"x\": 1{}", "0".repeat(400))), "{}", &read.text[..300]);
    assert!(read.text.contains("123456789012345678901234567890"));
    let stream = app
        .send(
            "/calls/stream_query",
            json!({"project_id": PROJECT, "columns": ["inputs"]}).to_string(),
            Some(&app.basic()),
            "application/json",
        )
        .await;
    assert_eq!(stream.status, 200);
    assert!(stream.text.contains("123456789012345678901234567890"), "{}", stream.text);
    let refs = app
        .ok(
            "/calls/query_stats",
            json!({"project_id": PROJECT, "filter": {"output_refs": ["weave:///acme/app/object/o:1"]}}),
        )
        .await;
    assert_eq!(refs["count"], 1);
}
