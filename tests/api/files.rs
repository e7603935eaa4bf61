//! Files (API.md §11.2): multipart upload, Weave's file digest, a 10 MB round trip.
use axum::body::Body;
use axum::http::{header, Request};
use serde_json::json;
use sqlx::PgPool;
use weave_trace_server::store::MIGRATOR;

use crate::support::*;

/// A multipart body as the SDK's HTTP client sends it, and its content type.
fn form(project: &str, expected: Option<&str>, name: &str, content: &[u8]) -> (Vec<u8>, String) {
    let boundary = "f0f626c65cac8c72af7aca08a89d3ffe";
    let mut body = Vec::new();
    let mut part = |headers: String, data: &[u8]| {
        body.extend_from_slice(format!("--{boundary}\r\n{headers}\r\n\r\n").as_bytes());
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    };
    part("Content-Disposition: form-data; name=\"project_id\"".into(), project.as_bytes());
    if let Some(expected) = expected {
        part("Content-Disposition: form-data; name=\"expected_digest\"".into(), expected.as_bytes());
    }
    part(
        format!("Content-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: text/x-python"),
        content,
    );
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (body, format!("multipart/form-data; boundary={boundary}"))
}

async fn upload(app: &TestApp, key: &str, project: &str, expected: Option<&str>, content: &[u8]) -> Reply {
    let (body, content_type) = form(project, expected, "obj.py", content);
    let request = Request::post("/file/create")
        .header(header::CONTENT_TYPE, content_type)
        .header(header::AUTHORIZATION, basic_auth(key))
        .body(Body::from(body))
        .unwrap();
    app.call(request).await
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_file_is_named_by_weaves_digest_of_its_bytes(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let source = b"import weave\n\n@weave.op\ndef f(x: int) -> int:\n    return x + 1\n";
    let digest = "p56UMHX7GShIy4YTzVH2c9Iqu0YM6gh3oZQvZtEA5aI";
    let created = upload(&app, &app.key, PROJECT, Some(digest), source).await;
    assert_eq!((created.status.as_u16(), created.body.clone()), (200, json!({"digest": digest})));
    let content = app.post("/file/content", json!({"project_id": PROJECT, "digest": digest})).await;
    assert_eq!(content.headers[header::CONTENT_TYPE], "application/octet-stream");
    assert_eq!(content.text.as_bytes(), source);
    let conflict = upload(&app, &app.key, PROJECT, Some("other"), b"hello").await;
    assert_eq!(conflict.status, 409);
    assert_eq!(
        upload(&app, &app.key, PROJECT, None, b"hello").await.body["digest"],
        "LPJNulXwow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ"
    );
    let missing = app.post("/file/content", json!({"project_id": PROJECT, "digest": "nope"})).await;
    assert_eq!(missing.status, 404);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_ten_megabyte_file_round_trips_byte_for_byte(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let content: Vec<u8> = (0..10 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let created = upload(&app, &app.key, PROJECT, None, &content).await;
    assert_eq!(created.status, 200, "{}", created.text);
    let request = Request::post("/file/content")
        .header(header::AUTHORIZATION, app.basic())
        .body(Body::from(json!({"project_id": PROJECT, "digest": created.body["digest"]}).to_string()))
        .unwrap();
    let response = tower::ServiceExt::oneshot(app.router.clone(), request).await.unwrap();
    let bytes = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    assert!(bytes.as_ref() == content.as_slice(), "the file came back changed");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn files_of_another_entity_are_403_and_broken_forms_are_refused(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let denied = upload(&app, &app.key, "rival/app", None, b"x").await;
    assert_eq!(denied.status, 403);
    let read = app.post("/file/content", json!({"project_id": "rival/app", "digest": "x"})).await;
    assert_eq!(read.status, 403);
    let no_key = {
        let (body, content_type) = form(PROJECT, None, "a", b"x");
        app.call(
            Request::post("/file/create").header(header::CONTENT_TYPE, content_type).body(Body::from(body)).unwrap(),
        )
        .await
    };
    assert_eq!(no_key.status, 401);
    let bad_project = upload(&app, &app.key, "no-slash", None, b"x").await;
    assert_eq!(
        (bad_project.status.as_u16(), bad_project.body["detail"][0]["loc"].clone()),
        (422, json!(["body", "project_id"]))
    );
    let (body, content_type) = form(PROJECT, None, "a", b"x");
    let truncated = Request::post("/file/create")
        .header(header::CONTENT_TYPE, content_type)
        .header(header::AUTHORIZATION, app.basic())
        .body(Body::from(body[..body.len() / 2].to_vec()))
        .unwrap();
    assert_eq!(app.call(truncated).await.status, 400);
    let not_multipart = app.post("/file/create", json!({"project_id": PROJECT})).await;
    assert!(not_multipart.status.is_client_error(), "{}", not_multipart.status);
    assert_eq!(app.count_rows("files").await, 0);
}
