//! Bad input gets the bodies of API.md §1.1, never a 500.
use serde_json::json;
use sqlx::PgPool;
use weave_trace_server::store::MIGRATOR;
use weave_trace_server::Settings;

use crate::support::*;

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_missing_field_is_a_422_at_its_location(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let mut body = start("c1", "2025-01-15T11:00:00Z", json!({}));
    body.as_object_mut().unwrap().remove("op_name");
    let reply = app.post("/call/start", json!({ "start": body })).await;
    assert_eq!(reply.status, 422);
    let detail = &reply.body["detail"][0];
    assert_eq!(detail["type"], "missing");
    assert_eq!(detail["loc"], json!(["body", "start", "op_name"]));
    assert_eq!(detail["msg"], "Field required");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_unknown_key_is_extra_forbidden(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let reply = app.post("/call/read", json!({"project_id": PROJECT, "id": "x", "colour": "red"})).await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.body["detail"][0]["type"], "extra_forbidden");
    assert_eq!(reply.body["detail"][0]["loc"], json!(["body", "colour"]));
    assert_eq!(reply.body["detail"][0]["input"], "red");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_wrong_type_names_the_expected_type(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let reply = app.post("/call/read", json!({"project_id": PROJECT, "id": 5})).await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.body["detail"][0]["type"], "string_type");
    assert_eq!(reply.body["detail"][0]["loc"], json!(["body", "id"]));
    assert_eq!(reply.body["detail"][0]["input"], 5);

    let reply = app.post("/calls/query_stats", json!({"project_id": PROJECT, "limit": "many"})).await;
    assert_eq!(reply.body["detail"][0]["type"], "int_parsing");
    let reply =
        app.post("/calls/query_stats", json!({"project_id": PROJECT, "filter": {"trace_roots_only": "yes"}})).await;
    assert_eq!(reply.body["detail"][0]["type"], "bool_parsing");
    assert_eq!(reply.body["detail"][0]["loc"], json!(["body", "filter", "trace_roots_only"]));
    let reply = app.post("/call/start", json!({"start": start("c1", "not a date", json!({}))})).await;
    assert_eq!(reply.body["detail"][0]["type"], "datetime_parsing");
    assert_eq!(reply.body["detail"][0]["loc"], json!(["body", "start", "started_at"]));
    let reply = app.post("/call/upsert_batch", json!({"batch": [{"mode": "middle", "req": {}}]})).await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.body["detail"][0]["type"], "literal_error");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn invalid_json_is_json_invalid_at_its_byte_offset(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let reply = app.send("/call/read", "{\"project_id\": ", Some(&app.basic()), "application/json").await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.body["detail"][0]["type"], "json_invalid");
    assert_eq!(reply.body["detail"][0]["loc"], json!(["body", 15]));
    let empty = app.send("/call/read", "", Some(&app.basic()), "application/json").await;
    assert_eq!(empty.status, 422);
    assert_eq!(empty.body["detail"][0]["loc"], json!(["body"]));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_project_id_without_exactly_one_slash_is_rejected(pool: PgPool) {
    let app = TestApp::new(pool).await;
    for bad in ["acme", "acme/app/x", "/app", "acme/"] {
        let reply = app.post("/calls/query_stats", json!({ "project_id": bad })).await;
        assert_eq!(reply.status, 422, "{bad}");
        assert_eq!(reply.body["detail"][0]["loc"], json!(["body", "project_id"]));
        assert_eq!(reply.body["detail"][0]["type"], "value_error");
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_body_is_json_whatever_the_content_type(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let body = json!({"project_id": PROJECT}).to_string();
    let reply = app.send("/calls/query_stats", body, Some(&app.basic()), "application/x-www-form-urlencoded").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body, json!({"count": 0}));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_nul_character_is_refused_before_it_reaches_postgres(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let reply = app
        .post("/call/start", json!({"start": start("c1", "2025-01-15T11:00:00Z", json!({"inputs": {"q": "a\u{0}b"}}))}))
        .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(reply.body["detail"][0]["loc"], json!(["body", "start", "inputs", "q"]));
    assert_eq!(app.count_rows("calls").await, 0);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_oversized_id_is_a_422_not_a_database_error(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let long = "x".repeat(10_000);
    let reply = app.post("/call/start", json!({"start": start(&long, "2025-01-15T11:00:00Z", json!({}))})).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(reply.body["detail"][0]["loc"], json!(["body", "start", "id"]));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_body_over_the_limit_is_413(pool: PgPool) {
    let settings = Settings { body_limit: 1024, ..Settings::default() };
    let app = TestApp::with_settings(pool, settings).await;
    let big = json!({"start": start("c1", "2025-01-15T11:00:00Z", json!({"inputs": {"q": "x".repeat(4096)}}))});
    let reply = app.post("/call/start", big).await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.body, json!({"reason": "Request too large"}));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn unknown_routes_are_404_with_a_reason(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let reply = app.post("/no/such/route", json!({})).await;
    assert_eq!(reply.status, 404);
    assert!(reply.body["reason"].is_string());
    let wrong_method = app.get("/call/start").await;
    assert_eq!(wrong_method.status, 405);
    assert!(wrong_method.body["reason"].is_string());
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_negative_limit_is_greater_than_equal_as_pydantic_says(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let reply = app.post("/calls/query_stats", json!({"project_id": PROJECT, "limit": -1})).await;
    assert_eq!(reply.status, 422);
    let detail = &reply.body["detail"][0];
    assert_eq!(
        (detail["type"].as_str(), detail["msg"].as_str()),
        (Some("greater_than_equal"), Some("Input should be greater than or equal to 0"))
    );
    assert_eq!((detail["loc"].clone(), detail["input"].clone()), (json!(["body", "limit"]), json!(-1)));
}
