//! Authentication and authorisation (API.md §1.2).
use serde_json::json;
use sqlx::PgPool;
use weave_trace_server::keys;
use weave_trace_server::store::{self, MIGRATOR};

use crate::support::*;

fn query_stats() -> String {
    json!({ "project_id": PROJECT }).to_string()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn no_credentials_is_401_with_a_basic_challenge(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let reply = app.send("/calls/query_stats", query_stats(), None, "application/json").await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.headers["www-authenticate"], "Basic realm=\"weave\"");
    assert!(reply.body["reason"].is_string());
    // Credentials are checked before the body is read.
    let invalid_body = app.send("/calls/query_stats", "not json", None, "application/json").await;
    assert_eq!(invalid_body.status, 401);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_wrong_key_is_401(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let reply = app.send("/calls/query_stats", query_stats(), Some(&basic_auth("wts_nope")), "application/json").await;
    assert_eq!(reply.status, 401);
    let garbage = app.send("/calls/query_stats", query_stats(), Some("Basic !!!"), "application/json").await;
    assert_eq!(garbage.status, 401);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_bearer_key_works_like_basic(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let reply =
        app.send("/calls/query_stats", query_stats(), Some(&format!("Bearer {}", app.key)), "application/json").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn another_entitys_project_is_403_whether_or_not_it_has_data(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let admin = keys::create(&pool, "root", &[], true).await.unwrap().secret;
    let other_start = start("c1", "2025-01-15T11:00:00Z", json!({"project_id": "other/app"}));
    let as_admin = app
        .send("/call/start", json!({ "start": other_start }).to_string(), Some(&basic_auth(&admin)), "application/json")
        .await;
    assert_eq!(as_admin.status, 200, "admin keys reach every entity");

    let with_data = app.post("/call/read", json!({"project_id": "other/app", "id": "c1"})).await;
    let without_data = app.post("/call/read", json!({"project_id": "other/empty", "id": "c1"})).await;
    assert_eq!(with_data.status, 403);
    assert_eq!(with_data.body, without_data.body);
    assert_eq!(app.post("/calls/delete", json!({"project_id": "other/app", "call_ids": ["c1"]})).await.status, 403);
    assert_eq!(
        app.post("/call/end", json!({"end": end("c1", "2025-01-15T11:00:01Z", json!({"project_id": "other/app"}))}))
            .await
            .status,
        403
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_revoked_key_stops_working_at_once(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    assert_eq!(app.post("/calls/query_stats", json!({"project_id": PROJECT})).await.status, 200);
    let key_id = store::keys::list(&pool).await.unwrap().into_iter().find(|k| k.user_id == "alice").unwrap().id;
    assert!(store::keys::revoke(&pool, &key_id).await.unwrap());
    assert_eq!(app.post("/calls/query_stats", json!({"project_id": PROJECT})).await.status, 401);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn keys_are_stored_only_as_hashes(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("select secret_hash from api_keys").fetch_all(&pool).await.unwrap();
    assert_eq!(stored, vec![weave_trace_server::domain::keys::hash(&app.key).to_vec()]);
    let dump: String =
        sqlx::query_scalar("select string_agg(t::text, ' ') from api_keys t").fetch_one(&pool).await.unwrap();
    assert!(!dump.contains(&app.key));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_fresh_install_bootstraps_one_admin_key_and_only_once(pool: PgPool) {
    let keys::Bootstrap::Generated(secret) = keys::bootstrap(&pool, None).await.unwrap() else {
        panic!("a key is generated when none exists");
    };
    let principal = keys::verify(&pool, &secret).await.unwrap().unwrap();
    assert!(principal.is_admin);
    assert_eq!(keys::bootstrap(&pool, None).await.unwrap(), keys::Bootstrap::KeysExist);
    assert_eq!(keys::bootstrap(&pool, Some("late")).await.unwrap(), keys::Bootstrap::KeysExist);
    assert!(keys::verify(&pool, "late").await.unwrap().is_none(), "a preset is ignored once keys exist");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_preset_bootstrap_key_is_installed_without_printing(pool: PgPool) {
    assert_eq!(keys::bootstrap(&pool, Some("preset-secret")).await.unwrap(), keys::Bootstrap::Installed);
    assert!(keys::verify(&pool, "preset-secret").await.unwrap().unwrap().is_admin);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn service_endpoints_need_no_credentials(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let health = app.get("/health").await;
    assert_eq!((health.status.as_u16(), health.body.clone()), (200, json!({"status": "ok"})));
    let info = app.get("/server_info").await;
    assert_eq!(info.body["min_required_weave_python_version"], "0.52.0");
    assert_eq!(info.body["trace_server_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(app.get("/openapi.json").await.status, 200);
    let docs = app.get("/docs/").await;
    assert_eq!(docs.status, 200);
    assert!(docs.text.contains("swagger"), "the docs UI is served");
}
