//! Limits that hold under hostile requests (issue: run it like a product): every one answers
//! a clean 4xx or 503, quickly, and the server keeps answering.
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request};
use serde_json::{json, Value};
use sqlx::PgPool;
use weave_trace_server::store::MIGRATOR;
use weave_trace_server::{state::Limits, Settings};

use crate::support::*;

/// `/health` answers within 100 ms.
async fn healthy(app: &TestApp) {
    let started = Instant::now();
    assert_eq!(app.get("/health").await.status, 200);
    assert!(started.elapsed() < Duration::from_millis(100), "/health took {:?}", started.elapsed());
}

fn window() -> Value {
    json!({"project_id": PROJECT, "start": "2025-01-01T00:00:00Z", "end": "2025-02-01T00:00:00Z"})
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn percentile_lists_are_capped_and_checked_in_linear_time(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let many: Vec<f64> = (0..100_000).map(|i| f64::from(i) / 1000.0).collect();
    let mut body = window();
    merge(&mut body, json!({"call_metrics": [{"metric": "latency_ms", "percentiles": many}]}));
    let started = Instant::now();
    let reply = app.post("/calls/stats", body).await;
    assert_eq!(reply.status, 422, "{}", &reply.text[..200.min(reply.text.len())]);
    assert_eq!(reply.body["detail"][0]["type"], "too_long");
    assert_eq!(reply.body["detail"][0]["loc"], json!(["body", "call_metrics", 0, "percentiles"]));
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    // Repeats: a few details, never one per repeat.
    let repeats: Vec<Value> = (0..50_000).map(|_| json!({"metric": "latency_ms", "percentiles": [50, 50]})).collect();
    let mut body = window();
    merge(&mut body, json!({"call_metrics": repeats}));
    let reply = app.post("/calls/stats", body).await;
    assert_eq!(reply.status, 422);
    assert!(reply.body["detail"].as_array().unwrap().len() <= 100);
    assert!(reply.text.len() < 100_000, "a 422 of {} bytes", reply.text.len());
    healthy(&app).await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_stats_answer_over_the_values_budget_is_413_before_and_while_reading(pool: PgPool) {
    let limits = Limits { stats_max_values: 50_000, ..Limits::default() };
    let app = TestApp::with_settings(pool, Settings { limits, ..Settings::default() }).await;
    // 31 days at the bucket cap with 20 percentiles: over the budget before anything is read.
    let percentiles: Vec<f64> = (1..=20).map(f64::from).collect();
    let mut body = window();
    merge(
        &mut body,
        json!({"granularity": 60, "call_metrics": [{"metric": "latency_ms", "percentiles": percentiles}]}),
    );
    let reply = app.post("/calls/stats", body).await;
    assert_eq!(reply.status, 413, "{}", reply.text);
    assert!(reply.body["reason"].as_str().unwrap().contains("values"));
    // Within the budget for one model, over it once a second model's rows turn up.
    let at = "2025-01-15T11:00:00Z";
    let usage = |model: &str| json!({"summary": {"usage": {model: {"input_tokens": 1}}}});
    ingest(
        &app,
        vec![
            (start("a", at, json!({})), Some(end("a", at, usage("m1")))),
            (start("b", at, json!({})), Some(end("b", at, usage("m2")))),
        ],
    )
    .await;
    let mut body = window();
    merge(&mut body, json!({"granularity": 120, "usage_metrics": [{"metric": "input_tokens"}]}));
    let one_model = app
        .post("/calls/stats", {
            let mut b = body.clone();
            merge(&mut b, json!({"filter": {"call_ids": ["a"]}}));
            b
        })
        .await;
    assert_eq!(one_model.status, 200, "{}", one_model.text);
    let two_models = app.post("/calls/stats", body).await;
    assert_eq!(two_models.status, 413, "{}", two_models.text);
    healthy(&app).await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn long_ids_names_and_projects_are_422_before_the_database(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let long = "x".repeat(6 * 1024);
    let at = "2025-01-15T11:00:00Z";
    let cases = [
        ("/call/start", json!({"start": start(&long, at, json!({}))})),
        ("/call/end", json!({"end": end("c", at, json!({"summary": {"usage": {long.clone(): {"input_tokens": 1}}}}))})),
        (
            "/cost/create",
            json!({"project_id": PROJECT, "costs": {long.clone(): {"prompt_token_cost": 1, "completion_token_cost": 1}}}),
        ),
        ("/calls/query_stats", json!({"project_id": format!("acme/{long}")})),
        ("/feedback/create", json!({"project_id": PROJECT, "weave_ref": long, "feedback_type": "x", "payload": {}})),
        ("/obj/create", json!({"obj": {"project_id": PROJECT, "object_id": long, "val": 1}})),
    ];
    for (path, body) in cases {
        let reply = app.post(path, body).await;
        assert_eq!(reply.status, 422, "{path}: {}", &reply.text[..300.min(reply.text.len())]);
    }
    assert_eq!(app.count_rows("calls").await, 0);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn huge_filters_and_expressions_are_bounded_and_never_a_retryable_503(pool: PgPool) {
    let app = TestApp::new(pool).await;
    // Ten lists of a thousand values: one bound array each.
    let list: Vec<String> = (0..1000).map(|i| format!("v{i}")).collect();
    let filter = json!({"op_names": list, "parent_ids": list, "trace_ids": list, "call_ids": list, "thread_ids": list,
        "turn_ids": list, "wb_user_ids": list, "wb_run_ids": list, "input_refs": list, "output_refs": list});
    let reply = app.post("/calls/query_stats", json!({"project_id": PROJECT, "filter": filter})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    // `$in` with 30,000 literals, and an expression of 10,000 parts: refused before SQL.
    let literals: Vec<Value> = (0..30_000).map(|i| json!({"$literal": i})).collect();
    let huge_in = json!({"$expr": {"$in": [{"$getField": "inputs.x"}, literals]}});
    let reply = app.post("/calls/query_stats", json!({"project_id": PROJECT, "query": huge_in})).await;
    assert_eq!(reply.status, 422, "{}", &reply.text[..200]);
    let parts: Vec<Value> =
        (0..10_000).map(|i| json!({"$eq": [{"$getField": "id"}, {"$literal": format!("c{i}")}]})).collect();
    let reply =
        app.post("/calls/query_stats", json!({"project_id": PROJECT, "query": {"$expr": {"$or": parts}}})).await;
    assert_eq!(reply.status, 422, "{}", &reply.text[..200]);
    // The largest accepted `$in` runs.
    let literals: Vec<Value> = (0..1000).map(|i| json!({"$literal": i})).collect();
    let max_in = json!({"$expr": {"$in": [{"$getField": "inputs.x"}, literals]}});
    assert_eq!(app.post("/calls/query_stats", json!({"project_id": PROJECT, "query": max_in})).await.status, 200);
    healthy(&app).await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_key_running_its_share_of_heavy_requests_gets_503_and_retry_after_and_others_go_on(pool: PgPool) {
    let limits = Limits { heavy_requests: 4, heavy_requests_per_key: 1, ..Limits::default() };
    let app = TestApp::with_settings(pool.clone(), Settings { limits, ..Settings::default() }).await;
    let at = "2025-01-15T11:00:00Z";
    ingest(&app, (0..200).map(|i| (start(&format!("c{i}"), at, json!({})), None)).collect()).await;
    // A stream whose body is not read yet holds its place.
    let request = Request::post("/calls/stream_query")
        .header(header::AUTHORIZATION, app.basic())
        .body(Body::from(json!({"project_id": PROJECT}).to_string()))
        .unwrap();
    let held = tower::ServiceExt::oneshot(app.router.clone(), request).await.unwrap();
    assert_eq!(held.status(), 200);
    let refused = app.post("/trace/usage", json!({"project_id": PROJECT})).await;
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert_eq!(refused.headers[header::RETRY_AFTER], "1");
    // Another tenant is served meanwhile.
    let other = weave_trace_server::keys::create(&pool, "bob", &["acme".to_string()], false).await.unwrap().secret;
    let served = app
        .send("/trace/usage", json!({"project_id": PROJECT}).to_string(), Some(&basic_auth(&other)), "application/json")
        .await;
    assert_eq!(served.status, 200, "{}", served.text);
    // The place frees when the stream is done.
    let _ = http_body_util::BodyExt::collect(held.into_body()).await.unwrap();
    assert_eq!(app.post("/trace/usage", json!({"project_id": PROJECT})).await.status, 200);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn answers_carry_safety_headers_and_unfit_request_ids_are_replaced(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let long_id = "r".repeat(60 * 1024);
    let request = Request::post("/calls/query_stats")
        .header(header::AUTHORIZATION, app.basic())
        .header("x-request-id", &long_id)
        .body(Body::from(json!({"project_id": PROJECT}).to_string()))
        .unwrap();
    let reply = app.call(request).await;
    assert_eq!(reply.status, 200);
    let echoed = reply.headers["x-request-id"].to_str().unwrap();
    assert!(echoed.len() <= 128 && echoed != long_id);
    assert_eq!(reply.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(reply.headers[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
    let fine = Request::get("/health").header("x-request-id", "my-id-1").body(Body::empty()).unwrap();
    assert_eq!(app.call(fine).await.headers["x-request-id"], "my-id-1");
    // Two credentials are ambiguous.
    let twice = Request::post("/calls/query_stats")
        .header(header::AUTHORIZATION, app.basic())
        .header(header::AUTHORIZATION, "Bearer someone-else")
        .body(Body::from(json!({"project_id": PROJECT}).to_string()))
        .unwrap();
    let reply = app.call(twice).await;
    assert_eq!(reply.status, 400, "{}", reply.text);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn run_statistics_over_more_runs_than_the_values_budget_are_413_from_rollups_and_from_runs(pool: PgPool) {
    let limits = Limits { stats_max_values: 3, ..Limits::default() };
    let app = TestApp::with_settings(pool, Settings { limits, ..Settings::default() }).await;
    let run = |i: u32| {
        let id = format!("r{i}");
        let (started, ended) = (format!("2025-01-15T11:00:0{i}Z"), format!("2025-01-15T11:00:0{}Z", i + 1));
        (start(&id, &started, json!({})), Some(end(&id, &ended, json!({}))))
    };
    // Whole days: the run rollups answer; a ragged start: the runs are read one by one.
    let whole = json!({"session": [PROJECT], "select": ["run_count"],
                       "start_time": "2025-01-15T00:00:00Z", "end_time": "2025-01-16T00:00:00Z"});
    let ragged = json!({"session": [PROJECT], "select": ["run_count"],
                        "start_time": "2025-01-15T10:59:59.5Z", "end_time": "2025-01-16T00:00:00Z"});
    ingest(&app, (0..3).map(run).collect()).await;
    weave_trace_server::store::slots::refresh_everything(&app.pool).await.unwrap();
    for body in [&whole, &ragged] {
        let reply = app.post("/api/v1/runs/stats", body.clone()).await;
        assert_eq!((reply.status.as_u16(), &reply.body["run_count"]), (200, &json!(3)), "{body}: {}", reply.text);
    }
    ingest(&app, vec![run(3)]).await;
    weave_trace_server::store::slots::refresh_everything(&app.pool).await.unwrap();
    for body in [&whole, &ragged] {
        let reply = app.post("/api/v1/runs/stats", body.clone()).await;
        assert_eq!(reply.status, 413, "{body}: {}", reply.text);
        assert!(reply.body["reason"].as_str().unwrap().contains("runs match"), "{}", reply.text);
    }
    // Over the limit in all, within it once filtered: the runs are counted, then answered.
    let roots = json!({"session": [PROJECT], "select": ["run_count"], "is_root": false,
                       "start_time": "2025-01-15T00:00:00Z", "end_time": "2025-01-16T00:00:00Z"});
    // Rollup rows written before migration 0013 carry no run count: they are counted too.
    for uncounted in [false, true] {
        if uncounted {
            sqlx::query("update run_slots set runs = null").execute(&app.pool).await.unwrap();
        }
        let reply = app.post("/api/v1/runs/stats", whole.clone()).await;
        assert_eq!(reply.status, 413, "uncounted {uncounted}: {}", reply.text);
        let reply = app.post("/api/v1/runs/stats", roots.clone()).await;
        assert_eq!((reply.status.as_u16(), &reply.body["run_count"]), (200, &json!(0)), "{}", reply.text);
    }
    healthy(&app).await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn writers_past_the_write_limit_queue_in_the_server_and_all_land(pool: PgPool) {
    let limits = Limits { write_transactions: 1, ..Limits::default() };
    let app = TestApp::with_settings(pool.clone(), Settings { limits, ..Settings::default() }).await;
    let at = "2025-01-15T11:00:00Z";
    ingest(&app, vec![(start("held", at, json!({})), None)]).await;
    // Hold the call's row: a write of it waits in Postgres until the holder commits.
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("select 1 from calls where id = 'held' for update").execute(&mut *holder).await.unwrap();
    let writes = futures_util::future::join_all((0..3).map(|i| {
        let batch = json!({"batch": [start_item(start("held", at, json!({"display_name": format!("w{i}")})))]});
        app.post("/call/upsert_batch", batch)
    }));
    let waiting = || async {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let observe = async {
        while waiting().await == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let in_postgres = waiting().await;
        holder.commit().await.unwrap();
        in_postgres
    };
    let (replies, in_postgres) = tokio::join!(writes, observe);
    assert_eq!(in_postgres, 1, "one writer waits in Postgres, the others in the server");
    for reply in replies {
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    assert_eq!(app.count_rows("calls").await, 1);
}
