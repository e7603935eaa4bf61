//! CORS, and the binary's key commands against a real database.
use std::process::Command;

use axum::body::Body;
use axum::http::Request;
use sqlx::PgPool;
use weave_trace_server::store::MIGRATOR;
use weave_trace_server::{keys, Settings};

use crate::support::*;

#[sqlx::test(migrator = "MIGRATOR")]
async fn cors_preflight_is_answered_for_configured_origins_only(pool: PgPool) {
    let settings = Settings { cors_origins: vec!["https://ui.example".into()], ..Settings::default() };
    let app = TestApp::with_settings(pool, settings).await;
    let preflight = |origin: &str| {
        Request::options("/calls/stats")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type")
            .body(Body::empty())
            .unwrap()
    };
    let allowed = app.call(preflight("https://ui.example")).await;
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.headers["access-control-allow-origin"], "https://ui.example");
    let other = app.call(preflight("https://evil.example")).await;
    assert!(other.headers.get("access-control-allow-origin").is_none());
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn no_origin_is_allowed_by_default(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let request = Request::options("/calls/stats")
        .header("origin", "https://ui.example")
        .header("access-control-request-method", "POST")
        .body(Body::empty())
        .unwrap();
    assert!(app.call(request).await.headers.get("access-control-allow-origin").is_none());
}

fn database_url_of(db: &str) -> String {
    let base = std::env::var("DATABASE_URL").unwrap();
    let (server, _) = base.rsplit_once('/').unwrap();
    format!("{server}/{db}")
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn keys_create_prints_the_secret_alone_on_the_last_line_and_revoke_stops_it(pool: PgPool) {
    let db: String = sqlx::query_scalar("select current_database()").fetch_one(&pool).await.unwrap();
    let url = database_url_of(&db);
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_weave-trace-server"))
            .args(args)
            .env("DATABASE_URL", &url)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let created = run(&["keys", "create", "--entity", "acme", "--user", "bob"]);
    let secret = created.lines().last().unwrap().trim().to_string();
    let principal = keys::verify(&pool, &secret).await.unwrap().expect("the printed secret is a live key");
    assert_eq!(
        (principal.user_id.as_str(), principal.entities.clone(), principal.is_admin),
        ("bob", vec!["acme".to_string()], false)
    );

    let listed = run(&["keys", "list"]);
    assert!(listed.contains(&principal.key_id) && !listed.contains(&secret));
    run(&["keys", "revoke", &principal.key_id]);
    assert!(keys::verify(&pool, &secret).await.unwrap().is_none());
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn metrics_move_off_the_api_port_when_they_have_a_listener_of_their_own(pool: PgPool) {
    let public = TestApp::new(pool.clone()).await;
    assert_eq!(public.get("/metrics").await.status, 200);
    let private = TestApp::with_settings(pool, Settings { public_metrics: false, ..Settings::default() }).await;
    assert_eq!(private.get("/metrics").await.status, 404);
}
