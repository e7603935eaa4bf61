//! `GET /metrics` in a test binary of its own: the Prometheus recorder is one per process, so
//! exact counts need a process in which nothing else records.
#[path = "api/support.rs"]
mod support;

use serde_json::json;
use sqlx::PgPool;
use support::{end, ingest, start, TestApp, PROJECT};
use weave_trace_server::store::MIGRATOR;

#[sqlx::test(migrator = "MIGRATOR")]
async fn metrics_count_requests_by_route_and_status_and_calls_ingested(pool: PgPool) {
    let app = TestApp::new(pool).await;
    ingest(
        &app,
        vec![
            (start("m1", "2025-01-15T10:00:00Z", json!({})), None),
            (start("m2", "2025-01-15T10:00:00Z", json!({})), Some(end("m2", "2025-01-15T10:00:01Z", json!({})))),
        ],
    )
    .await;
    assert_eq!(app.post("/call/read", json!({"project_id": PROJECT})).await.status, 422);
    assert_eq!(app.get("/no/such/route/123").await.status, 404);
    let metrics = app.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.headers["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = metrics.text;
    assert!(
        text.contains("weave_http_requests_total{method=\"POST\",route=\"/call/upsert_batch\",status=\"200\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("weave_http_requests_total{method=\"POST\",route=\"/call/read\",status=\"422\"} 1\n"),
        "{text}"
    );
    // Unknown paths share one label: clients cannot mint label values.
    assert!(text.contains("route=\"unmatched\",status=\"404\"} 1\n"), "{text}");
    assert!(!text.contains("/no/such/route"));
    assert!(text.contains("weave_calls_ingested_total 2\n"), "{text}");
    assert!(text.contains("weave_http_request_duration_seconds_count{route=\"/call/upsert_batch\"} 1\n"), "{text}");
    assert!(text.contains("weave_db_pool_max_connections "), "{text}");
}
