//! The checked-in OpenAPI document must match the generated one.
use std::path::Path;

#[test]
fn the_checked_in_openapi_document_matches_the_generated_one() {
    let generated = weave_trace_server::routes::openapi().to_pretty_json().unwrap() + "\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "openapi/openapi.json is out of date; regenerate it with `UPDATE_OPENAPI=1 cargo test --test api openapi`"
    );
}

/// Every operation's example body, as `/docs` pre-fills it, works on the demo project.
#[sqlx::test(migrator = "weave_trace_server::store::MIGRATOR")]
async fn every_example_body_of_the_api_document_works_on_the_demo_project(pool: sqlx::PgPool) {
    use serde_json::Value;

    use crate::support::*;

    let app = TestApp::new(pool.clone()).await;
    weave_trace_server::demo::load(&pool, "demo/app").await.unwrap();
    let admin = weave_trace_server::keys::create(&pool, "admin", &[], true).await.unwrap().secret;
    let auth = basic_auth(&admin);
    // The file the `/file/content` example reads.
    let form = "--b\r\nContent-Disposition: form-data; name=\"project_id\"\r\n\r\ndemo/app\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nhello\r\n--b--\r\n";
    let reply = app.send("/file/create", form, Some(&auth), "multipart/form-data; boundary=b").await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    let document = weave_trace_server::routes::openapi().to_json().unwrap();
    let document: Value = serde_json::from_str(&document).unwrap();
    let mut operations: Vec<(String, Value)> = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        let Some(body) = item.pointer("/post/requestBody/content/application~1json/schema/$ref") else { continue };
        let name = body.as_str().unwrap().rsplit('/').next().unwrap();
        let example = document["components"]["schemas"][name]["example"].clone();
        assert!(!example.is_null(), "{path}: {name} has no example");
        operations.push((path.replace("{entity}", "demo").replace("{project}", "app"), example));
    }
    // Reads and writes first, deletions last (they remove what other examples read).
    operations.sort_by_key(|(path, _)| path.contains("delete") || path.contains("purge"));
    assert!(operations.len() >= 35, "{} operations", operations.len());
    for (path, example) in operations {
        let reply = app.send(&path, example.to_string(), Some(&auth), "application/json").await;
        assert!(reply.status.is_success(), "{path} with its example: {} {}", reply.status, reply.text);
    }
}
