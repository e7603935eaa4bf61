//! Shared test helpers: an app with a key, requests, and call builders.
#![allow(dead_code)]
use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use base64::Engine;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sqlx::PgPool;
use tower::ServiceExt;
use weave_trace_server::{app, keys, AppState, Settings};

pub const PROJECT: &str = "acme/app";

pub struct TestApp {
    pub router: Router,
    pub pool: PgPool,
    /// A key of user `alice` on entity `acme`.
    pub key: String,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl TestApp {
    pub async fn new(pool: PgPool) -> Self {
        Self::with_settings(pool, Settings::default()).await
    }

    pub async fn with_settings(pool: PgPool, settings: Settings) -> Self {
        let key = keys::create(&pool, "alice", &["acme".to_string()], false).await.unwrap().secret;
        let router = app(AppState::new(pool.clone(), settings));
        Self { router, pool, key }
    }

    pub fn basic(&self) -> String {
        basic_auth(&self.key)
    }

    /// POST JSON with this app's key; returns status and parsed body.
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(path, body.to_string(), Some(&self.basic()), "application/json").await
    }

    pub async fn send(
        &self,
        path: &str,
        body: impl Into<Body>,
        authorization: Option<&str>,
        content_type: &str,
    ) -> Reply {
        let mut request = Request::post(path).header(header::CONTENT_TYPE, content_type);
        if let Some(auth) = authorization {
            request = request.header(header::AUTHORIZATION, auth);
        }
        self.call(request.body(body.into()).unwrap()).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Request::get(path).body(Body::empty()).unwrap()).await
    }

    pub async fn call(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).to_string();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply { status, headers, body, text }
    }

    /// POST and insist on 200.
    pub async fn ok(&self, path: &str, body: Value) -> Value {
        let reply = self.post(path, body).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text);
        reply.body
    }

    pub async fn read(&self, id: &str) -> Value {
        self.ok("/call/read", json!({"project_id": PROJECT, "id": id})).await["call"].clone()
    }

    pub async fn count_rows(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("select count(*) from {table}")).fetch_one(&self.pool).await.unwrap()
    }
}

pub fn basic_auth(key: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("api:{key}")))
}

/// A start item body (`req.start`) with the required fields and `extra` merged in.
pub fn start(id: &str, started_at: &str, extra: Value) -> Value {
    let mut start = json!({
        "project_id": PROJECT, "id": id, "trace_id": "t1", "op_name": "weave:///acme/app/op/llm:v1",
        "started_at": started_at, "attributes": {}, "inputs": {},
    });
    merge(&mut start, extra);
    start
}

/// An end item body (`req.end`).
pub fn end(id: &str, ended_at: &str, extra: Value) -> Value {
    let mut end = json!({"project_id": PROJECT, "id": id, "ended_at": ended_at, "summary": {}});
    merge(&mut end, extra);
    end
}

pub fn merge(target: &mut Value, extra: Value) {
    if let (Value::Object(target), Value::Object(extra)) = (target, extra) {
        for (k, v) in extra {
            target.insert(k, v);
        }
    }
}

pub fn start_item(start: Value) -> Value {
    json!({"mode": "start", "req": {"start": start}})
}

pub fn end_item(end: Value) -> Value {
    json!({"mode": "end", "req": {"end": end}})
}

/// Ingest finished calls: each `(start, end)` pair in one batch.
pub async fn ingest(app: &TestApp, calls: Vec<(Value, Option<Value>)>) {
    let mut batch = Vec::new();
    for (s, e) in calls {
        batch.push(start_item(s));
        if let Some(e) = e {
            batch.push(end_item(e));
        }
    }
    app.ok("/call/upsert_batch", json!({ "batch": batch })).await;
}
