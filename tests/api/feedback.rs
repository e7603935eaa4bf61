//! Feedback (API.md §11.2): reactions, notes and scores written, queried, replaced and purged.
use serde_json::{json, Value};
use sqlx::PgPool;
use weave_trace_server::store::MIGRATOR;

use crate::support::*;

fn item(call: &str, kind: &str, payload: Value) -> Value {
    json!({"project_id": PROJECT, "weave_ref": format!("weave:///acme/app/call/{call}"), "feedback_type": kind, "payload": payload})
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn reactions_and_notes_are_checked_completed_and_read_back(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let created = app.ok("/feedback/create", item("c1", "wandb.reaction.1", json!({"emoji": "👍🏽"}))).await;
    assert_eq!(
        created["payload"],
        json!({"emoji": "👍🏽", "alias": ":thumbs_up_medium_skin_tone:", "detoned": "👍", "detoned_alias": ":thumbs_up:"})
    );
    assert_eq!(created["wb_user_id"], "alice");
    let mut batch =
        vec![item("c1", "wandb.note.1", json!({"note": "good"})), item("c2", "custom", json!({"score": 3}))];
    batch[0]["id"] = json!("chosen-id");
    let res = app.ok("/feedback/batch/create", json!({"batch": batch})).await;
    assert_eq!(res["res"][0]["id"], "chosen-id");
    for bad in [
        item("c1", "wandb.reaction.1", json!({"emoji": "👍👍"})),
        item("c1", "wandb.note.1", json!({"note": ""})),
        item("c1", "wandb.runnable.scorer", json!({"output": 1})),
    ] {
        assert_eq!(app.post("/feedback/create", bad.clone()).await.status, 400, "{bad}");
    }
    // A batch with one bad item stores nothing.
    let mixed = app
        .post(
            "/feedback/batch/create",
            json!({"batch": [item("c3", "x", json!({})), item("c3", "wandb.note.1", json!({}))]}),
        )
        .await;
    assert_eq!(mixed.status, 400);
    assert_eq!(app.count_rows("feedback").await, 3);

    let on_c1 = app.ok("/feedback/query", json!({"project_id": PROJECT, "query": {"$expr": {"$eq": [{"$getField": "weave_ref"}, {"$literal": "weave:///acme/app/call/c1"}]}},
        "sort_by": [{"field": "created_at", "direction": "asc"}]})).await;
    let types: Vec<&str> =
        on_c1["result"].as_array().unwrap().iter().map(|f| f["feedback_type"].as_str().unwrap()).collect();
    assert_eq!(types, ["wandb.reaction.1", "wandb.note.1"]);
    let row = &on_c1["result"][0];
    for key in ["id", "project_id", "weave_ref", "created_at", "wb_user_id", "payload", "creator"] {
        assert!(row.get(key).is_some(), "{key} missing from {row}");
    }
    let by_payload = app.ok("/feedback/query", json!({"project_id": PROJECT, "query": {"$expr": {"$eq": [{"$getField": "payload.emoji"}, {"$literal": "👍🏽"}]}},
        "fields": ["id", "payload.alias"]})).await;
    assert_eq!(by_payload["result"], json!([{"id": created["id"], "payload.alias": ":thumbs_up_medium_skin_tone:"}]));
    let paged = app
        .ok(
            "/feedback/query",
            json!({"project_id": PROJECT, "sort_by": [{"field": "payload.score", "direction": "desc"}], "limit": 1}),
        )
        .await;
    assert_eq!(paged["result"][0]["payload"]["score"], 3);
    let bad_field = app
        .post("/feedback/query", json!({"project_id": PROJECT, "sort_by": [{"field": "secret", "direction": "asc"}]}))
        .await;
    assert_eq!(bad_field.status, 400);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn feedback_is_purged_by_id_only_and_replaced_whole(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let a = app.ok("/feedback/create", item("c1", "x", json!({"n": 1}))).await["id"].clone();
    let b = app.ok("/feedback/create", item("c1", "x", json!({"n": 2}))).await["id"].clone();
    let by_type = app.post("/feedback/purge", json!({"project_id": PROJECT, "query": {"$expr": {"$eq": [{"$getField": "feedback_type"}, {"$literal": "x"}]}}})).await;
    assert_eq!(by_type.status, 400);
    let mut replacement = item("c1", "y", json!({"n": 3}));
    replacement["feedback_id"] = a.clone();
    let replaced = app.ok("/feedback/replace", replacement).await;
    assert_ne!(replaced["id"], a);
    app.ok("/feedback/purge", json!({"project_id": PROJECT, "query": {"$expr": {"$or": [
        {"$eq": [{"$getField": "id"}, {"$literal": b}]}, {"$eq": [{"$getField": "id"}, {"$literal": "never-existed"}]}]}}})).await;
    let left = app.ok("/feedback/query", json!({"project_id": PROJECT})).await;
    assert_eq!(left["result"].as_array().unwrap().len(), 1);
    assert_eq!(left["result"][0]["feedback_type"], "y");
}
