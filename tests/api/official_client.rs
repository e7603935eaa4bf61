//! The official `weave` SDK (its `RemoteHTTPTraceServer`, batching through `/call/upsert_batch`)
//! against a real server on a loopback port. Needs the Python venv that `scripts/test` makes
//! (or `WEAVE_PYTHON` naming a Python with `weave==0.54.0`); without one this test fails.
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use sqlx::PgPool;
use weave_trace_server::store::MIGRATOR;
use weave_trace_server::{app, keys, AppState, Settings};

pub fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("WEAVE_PYTHON") {
        return path.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(venv.exists(), "no Python with weave: run scripts/test (it creates .venv) or set WEAVE_PYTHON");
    venv
}

/// Serve the app on 127.0.0.1 on a free port; returns its base URL.
pub async fn spawn_server(pool: PgPool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app(AppState::new(pool, Settings::default()))).await.unwrap();
    });
    format!("http://{addr}")
}

/// Run a script under tests/client with the server's URL and a key; parse its stdout as JSON.
pub async fn run_client_script(script: &str, url: String, key: String, extra_env: &[(&str, &str)]) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/client").join(script);
    let extra: Vec<(String, String)> = extra_env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(path)
            .env("WTS_URL", url)
            .env("WTS_KEY", key)
            .env("WEAVE_DISABLED", "false")
            .envs(extra)
            .output()
            .expect("python runs")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "client script failed:\n{stderr}");
    assert!(!stderr.contains("Error sending batch"), "the client dropped a batch:\n{stderr}");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("bad client output ({e}): {stderr}"))
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_official_client_ingests_a_nested_trace_through_upsert_batch_and_reads_it_back(pool: PgPool) {
    ingest_and_check(pool, &[("WEAVE_USE_CALLS_COMPLETE", "false")]).await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_official_client_with_default_settings_ingests_through_calls_complete(pool: PgPool) {
    ingest_and_check(pool, &[]).await;
}

async fn ingest_and_check(pool: PgPool, env: &[(&str, &str)]) {
    let key = keys::create(&pool, "pyuser", &["acme".to_string()], false).await.unwrap().secret;
    let url = spawn_server(pool.clone()).await;
    let out = run_client_script("ingest_and_read.py", url, key, env).await;

    assert_eq!(out["server_info"]["min_required_weave_python_version"], "0.52.0");
    assert_eq!(out["count"], 4);
    let calls = &out["calls"];
    let root = &calls["root"];
    assert_eq!(root["trace_id"], "trace-py-1");
    assert_eq!(root["wb_user_id"], "pyuser");
    assert_eq!(root["started_at"], "2025-01-15T11:00:00Z");
    assert_eq!(root["summary"]["weave"]["status"], "success");
    assert_eq!(root["summary"]["weave"]["latency_ms"], 10000.0);
    assert_eq!(calls["llm-2"]["parent_id"], "llm-1");
    assert_eq!(calls["llm-2"]["inputs"]["x"], "llm-2");
    assert_eq!(calls["llm-2"]["output"]["y"], "llm-2");
    assert_eq!(calls["llm-1"]["summary"]["usage"]["gpt-4o"]["prompt_tokens"], 10);
    assert_eq!(calls["tool"]["exception"], "ValueError: bad tool");
    assert_eq!(calls["tool"]["summary"]["weave"]["status"], "error");
    assert_eq!(calls["tool"]["summary"]["weave"]["latency_ms"], 1250.0);

    assert_eq!(out["streamed"], serde_json::json!(["tool", "llm-2", "llm-1", "root"]));
    let root_usage = &out["trace_usage"]["call_usage"]["root"];
    assert_eq!(root_usage["gpt-4o"]["prompt_tokens"], 10);
    assert_eq!(root_usage["claude-3-5-sonnet"]["total_tokens"], 10);
    assert_eq!(out["trace_usage"]["call_usage"]["tool"], serde_json::json!({}));
    assert_eq!(out["calls_usage"]["call_usage"]["llm-1"]["claude-3-5-sonnet"]["completion_tokens"], 3);
    assert_eq!(out["cost_ids"][0][1], "gpt-4o");
    // gpt-4o in the trace: 10 prompt tokens at 0.5, 5 completion tokens at 0.25.
    let priced = &out["priced"]["call_usage"]["root"]["gpt-4o"];
    assert_eq!(
        (priced["prompt_tokens_total_cost"].clone(), priced["completion_tokens_total_cost"].clone()),
        (serde_json::json!(5.0), serde_json::json!(1.25))
    );
    assert_eq!(out["cost_query"]["results"][0]["prompt_token_cost"], 0.5);
    let usage: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(
        "select call_id, model, input_tokens, output_tokens, total_tokens from call_usage where project_id = 'acme/client' order by call_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        usage,
        vec![("llm-1".into(), "gpt-4o".into(), 10, 5, 15), ("llm-2".into(), "claude-3-5-sonnet".into(), 7, 3, 10)]
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_official_client_parses_call_stats(pool: PgPool) {
    let app = crate::support::TestApp::new(pool.clone()).await;
    use crate::support::{end, ingest, start};
    use serde_json::json;
    ingest(
        &app,
        vec![
            (
                start("a", "2025-03-09T07:00:00Z", json!({})),
                Some(end(
                    "a",
                    "2025-03-09T07:00:00.100Z",
                    json!({"summary": {"usage": {"gpt-4o": {"total_tokens": 30}}}}),
                )),
            ),
            (start("b", "2025-03-09T07:30:00Z", json!({})), Some(end("b", "2025-03-09T07:30:00.300Z", json!({})))),
        ],
    )
    .await;
    let url = spawn_server(pool).await;
    let out = run_client_script("call_stats.py", url, app.key.clone(), &[]).await;
    assert_eq!(out["type"], "CallStatsResponse");
    let res = &out["res"];
    assert_eq!(res["granularity"], 3600);
    assert_eq!(res["timezone"], "America/New_York");
    let buckets = res["call_buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 4);
    assert_eq!(buckets[2]["timestamp"], "2025-03-09T03:00:00-04:00");
    assert_eq!(buckets[2]["avg_latency_ms"], 200.0);
    assert_eq!(buckets[2]["p50_latency_ms"], 200.0);
    assert_eq!(buckets[2]["p99.9_latency_ms"], 299.8);
    assert_eq!(buckets[2]["sum_call_count"], 2);
    assert_eq!(
        res["usage_buckets"][2],
        json!({"timestamp": "2025-03-09T03:00:00-04:00", "model": "gpt-4o", "sum_total_tokens": 30, "count": 1})
    );
}
