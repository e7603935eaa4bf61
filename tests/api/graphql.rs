//! `POST /graphql` (API.md §11.1): the questions `weave.init` asks, answered as W&B does.
use serde_json::{json, Value};
use sqlx::PgPool;
use weave_trace_server::store::MIGRATOR;

use crate::support::*;

const PROJECT_QUERY: &str = "query Project($name: String!, $entityName: String!) {\n  project(name: $name, entityName: $entityName) {\n    name\n  }\n}";
const UPSERT: &str = "mutation UpsertModel($name: String!, $id: String, $entity: String!, $description: String, $repo: String) {\n  upsertModel(\n    input: {\n      id: $id\n      name: $name\n      entityName: $entity\n      description: $description\n      repo: $repo\n    }\n  ) {\n    model {\n      name\n      description\n    }\n  }\n}";

async fn graphql(app: &TestApp, query: &str, variables: Value) -> Value {
    app.ok("/graphql", json!({"query": query, "variables": variables})).await
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_viewer_is_the_keys_user_with_its_first_entity(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let answer = graphql(
        &app,
        "query DefaultEntity {\n  viewer {\n    username\n    defaultEntity {\n      name\n    }\n  }\n}",
        Value::Null,
    )
    .await;
    assert_eq!(answer, json!({"data": {"viewer": {"username": "alice", "defaultEntity": {"name": "acme"}}}}));
    let info = graphql(&app, "query ServerInfo { serverInfo { frontendHost } }", Value::Null).await;
    assert_eq!(info["data"]["serverInfo"]["frontendHost"], "http://127.0.0.1:6345");
    let unauthenticated =
        app.send("/graphql", json!({"query": "{ viewer { username } }"}).to_string(), None, "application/json").await;
    assert_eq!(unauthenticated.status, 401);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_project_is_null_until_upserted_or_written_to_and_other_entities_are_a_permission_error(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let vars = json!({"name": "newproj", "entityName": "acme"});
    assert_eq!(graphql(&app, PROJECT_QUERY, vars.clone()).await, json!({"data": {"project": null}}));
    let upserted = graphql(&app, UPSERT, json!({"name": "newproj", "entity": "acme", "description": null})).await;
    assert_eq!(upserted, json!({"data": {"upsertModel": {"model": {"name": "newproj", "description": null}}}}));
    assert_eq!(graphql(&app, PROJECT_QUERY, vars).await, json!({"data": {"project": {"name": "newproj"}}}));
    // A first write registers a project too.
    let at = "2025-01-15T11:00:00Z";
    ingest(&app, vec![(start("c1", at, json!({"project_id": "acme/written"})), None)]).await;
    let written = graphql(&app, PROJECT_QUERY, json!({"name": "written", "entityName": "acme"})).await;
    assert_eq!(written["data"]["project"]["name"], "written");

    for (query, vars) in [
        (PROJECT_QUERY, json!({"name": "app", "entityName": "rival"})),
        (UPSERT, json!({"name": "app", "entity": "rival"})),
    ] {
        let denied = graphql(&app, query, vars).await;
        assert_eq!(denied["errors"][0]["extensions"]["code"], "PERMISSION_ERROR", "{denied}");
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn unknown_fields_and_broken_documents_are_graphql_errors(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let unknown = graphql(&app, "{ viewer { username } launchMissiles }", Value::Null).await;
    assert_eq!(unknown["data"]["viewer"]["username"], "alice");
    assert_eq!(unknown["data"]["launchMissiles"], Value::Null);
    assert!(unknown["errors"][0]["message"].as_str().unwrap().contains("launchMissiles"));
    let broken = graphql(&app, "query { viewer { ", Value::Null).await;
    assert!(broken["errors"][0]["message"].as_str().unwrap().starts_with("Syntax error"));
    let deep = format!("{{ viewer(x: {}1{}) {{ username }} }}", "[".repeat(5000), "]".repeat(5000));
    assert!(graphql(&app, &deep, Value::Null).await["errors"][0]["message"].is_string());
    let typename = graphql(&app, "{ __typename viewer { __typename } }", Value::Null).await;
    assert_eq!(typename["data"], json!({"__typename": "Query", "viewer": {"__typename": "User"}}));
}
