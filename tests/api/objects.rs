//! Objects, ops and refs (API.md §11.2): digests equal to Weave's, versions, soft delete, and
//! refs read through extra paths into objects and table rows.
use serde_json::{json, Value};
use sqlx::PgPool;
use weave_trace_server::store::MIGRATOR;

use crate::support::*;

/// Digests computed with Weave's own code (`weave.trace.serialization.digest`, weave 0.54.0;
/// `scripts/digest_vectors.py` prints them).
const AB_DIGEST: &str = "5vIL3DdX5eeXTjFt7YQZbxnPWVTYx2sYliKGgPze9mw";
const MYCFG_DIGEST: &str = "BCu0UjQ4klLyW9TcMTtKs3Y43ECyfH9X1geRdMYD2f4";
const OP_DIGEST: &str = "mpAz9Zk9RcLqUOXtSbBu7aUC1aXrFDt1H6stniZNyNQ";

async fn create(app: &TestApp, object_id: &str, val: Value) -> String {
    let body = app.ok("/obj/create", json!({"obj": {"project_id": PROJECT, "object_id": object_id, "val": val}})).await;
    assert_eq!(body["object_id"], object_id);
    body["digest"].as_str().unwrap().to_string()
}

async fn read(app: &TestApp, object_id: &str, digest: &str) -> Reply {
    app.post("/obj/read", json!({"project_id": PROJECT, "object_id": object_id, "digest": digest})).await
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn objects_get_weaves_digests_and_their_classes(pool: PgPool) {
    let app = TestApp::new(pool).await;
    assert_eq!(create(&app, "cfg", json!({"b": [1, 2], "a": 1})).await, AB_DIGEST);
    let my_cfg = json!({"_type": "MyCfg", "name": "mycfg", "description": null, "temperature": 0.7, "tags": ["x"],
                        "_class_name": "MyCfg", "_bases": ["Object", "BaseModel"]});
    assert_eq!(create(&app, "mycfg", my_cfg).await, MYCFG_DIGEST);
    let op = json!({"_type": "CustomWeaveType", "weave_type": {"type": "Op"},
                    "files": {"obj.py": "p56UMHX7GShIy4YTzVH2c9Iqu0YM6gh3oZQvZtEA5aI"}});
    assert_eq!(create(&app, "f", op).await, OP_DIGEST);

    let obj = read(&app, "mycfg", "latest").await.body["obj"].clone();
    assert_eq!(
        (obj["kind"].as_str(), obj["base_object_class"].as_str(), obj["leaf_object_class"].as_str()),
        (Some("object"), Some("MyCfg"), Some("MyCfg"))
    );
    assert_eq!(
        (obj["version_index"].as_i64(), obj["is_latest"].as_i64(), obj["wb_user_id"].as_str()),
        (Some(0), Some(1), Some("alice"))
    );
    // The value reads back with its keys sorted (what was hashed), floats as sent.
    let keys: Vec<&String> = obj["val"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["_bases", "_class_name", "_type", "description", "name", "tags", "temperature"]);
    assert_eq!(obj["val"]["temperature"], 0.7);
    let op = read(&app, "f", OP_DIGEST).await.body["obj"].clone();
    assert_eq!((op["kind"].as_str(), op["base_object_class"].clone()), (Some("op"), Value::Null));
    // Non-object values are objects too.
    assert_eq!(create(&app, "greeting", json!("hello world")).await, "nd7XRDWyHZAUOeVG1UoUoXWjSTuf2PvzjZ6m08v3CCY");
    assert_eq!(read(&app, "greeting", "v0").await.body["obj"]["val"], "hello world");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn versions_count_from_zero_in_arrival_order_and_the_same_content_is_the_same_version(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let v0 = create(&app, "cfg", json!({"a": 1})).await;
    let v1 = create(&app, "cfg", json!({"a": 2})).await;
    assert_eq!(create(&app, "cfg", json!({"a": 1})).await, v0, "republishing old content adds no version");
    let v2 = create(&app, "cfg", json!({"a": 3})).await;
    for (name, digest, index, latest) in [("v0", &v0, 0, 0), ("v1", &v1, 1, 0), ("v2", &v2, 2, 1)] {
        let obj = read(&app, "cfg", name).await.body["obj"].clone();
        assert_eq!(
            (obj["digest"].as_str(), obj["version_index"].as_i64(), obj["is_latest"].as_i64()),
            (Some(digest.as_str()), Some(index), Some(latest))
        );
        assert_eq!(read(&app, "cfg", digest).await.body["obj"]["version_index"], index);
    }
    assert_eq!(read(&app, "cfg", "latest").await.body["obj"]["digest"], v2);
    let missing = read(&app, "cfg", "v9").await;
    assert_eq!((missing.status.as_u16(), missing.body["reason"].as_str()), (404, Some("Obj cfg:v9 not found")));
    assert_eq!(read(&app, "nothing", "latest").await.status, 404);
    let all = app.ok("/objs/query", json!({"project_id": PROJECT})).await["objs"].clone();
    assert_eq!(
        all.as_array().unwrap().iter().map(|o| o["version_index"].as_i64().unwrap()).collect::<Vec<_>>(),
        [0, 1, 2]
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_deleted_version_reads_as_deleted_the_previous_becomes_latest_and_republishing_revives_it(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let v0 = create(&app, "cfg", json!({"a": 1})).await;
    let v1 = create(&app, "cfg", json!({"a": 2})).await;
    let deleted =
        app.ok("/obj/delete", json!({"project_id": PROJECT, "object_id": "cfg", "digests": ["latest"]})).await;
    assert_eq!(deleted["num_deleted"], 1);
    let gone = read(&app, "cfg", &v1).await;
    assert_eq!(gone.status, 404);
    assert!(gone.body["deleted_at"].is_string(), "{}", gone.text);
    assert_eq!(read(&app, "cfg", "latest").await.body["obj"]["digest"], v0);
    let listed = app.ok("/objs/query", json!({"project_id": PROJECT, "filter": {"object_ids": ["cfg"]}})).await;
    assert_eq!(listed["objs"].as_array().unwrap().len(), 1);
    // A version deleted already, or never stored, cannot be deleted.
    let again = app.post("/obj/delete", json!({"project_id": PROJECT, "object_id": "cfg", "digests": [v1]})).await;
    assert_eq!(again.status, 404, "{}", again.text);
    assert_eq!(create(&app, "cfg", json!({"a": 2})).await, v1);
    let revived = read(&app, "cfg", "latest").await.body["obj"].clone();
    assert_eq!((revived["digest"].as_str(), revived["version_index"].as_i64()), (Some(v1.as_str()), Some(1)));
    let all = app.ok("/obj/delete", json!({"project_id": PROJECT, "object_id": "cfg"})).await;
    assert_eq!(all["num_deleted"], 2);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn objs_query_filters_by_kind_class_name_and_latest_and_sorts_and_pages(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let model = |prefix: &str| json!({"_type": "M", "prefix": prefix, "_class_name": "M", "_bases": ["Model", "Object", "BaseModel"]});
    create(&app, "m", model("a")).await;
    create(&app, "m", model("b")).await;
    create(&app, "d", json!({"_type": "Dataset", "rows": "weave:///acme/app/table/t", "_class_name": "Dataset", "_bases": ["Object", "BaseModel"]})).await;
    create(&app, "f", json!({"_type": "CustomWeaveType", "weave_type": {"type": "Op"}, "files": {}})).await;
    let query = |extra: Value| {
        let mut body = json!({"project_id": PROJECT});
        merge(&mut body, extra);
        body
    };
    let names = |objs: &Value| {
        objs["objs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| format!("{}:{}", o["object_id"].as_str().unwrap(), o["version_index"]))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&app.ok("/objs/query", query(json!({"filter": {"is_op": true}}))).await), ["f:0"]);
    assert_eq!(
        names(&app.ok("/objs/query", query(json!({"filter": {"is_op": false, "latest_only": true}}))).await),
        ["m:1", "d:0"]
    );
    assert_eq!(
        names(&app.ok("/objs/query", query(json!({"filter": {"base_object_classes": ["Model"]}}))).await),
        ["m:0", "m:1"]
    );
    assert_eq!(
        names(&app.ok("/objs/query", query(json!({"filter": {"leaf_object_classes": ["Dataset"]}}))).await),
        ["d:0"]
    );
    let sorted = app
        .ok(
            "/objs/query",
            query(json!({"sort_by": [{"field": "object_id", "direction": "desc"}], "limit": 2, "offset": 1})),
        )
        .await;
    assert_eq!(names(&sorted), ["m:1", "f:0"]);
    let meta = app
        .ok(
            "/objs/query",
            query(json!({"filter": {"object_ids": ["d"]}, "metadata_only": true, "include_storage_size": true})),
        )
        .await;
    assert_eq!(meta["objs"][0]["val"], json!({}));
    assert!(meta["objs"][0]["size_bytes"].as_i64().unwrap() > 50);
    let negative = app.post("/objs/query", query(json!({"limit": -1}))).await;
    assert_eq!(negative.status, 422);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_client_digest_that_differs_is_409_and_not_retried_and_bad_names_are_422(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let body = |expected: &str| json!({"obj": {"project_id": PROJECT, "object_id": "cfg", "val": {"a": 1, "b": [1, 2]}, "expected_digest": expected}});
    let conflict = app.post("/obj/create", body("not-the-digest")).await;
    assert_eq!(conflict.status, 409, "{}", conflict.text);
    assert_eq!(conflict.headers["x-should-retry"], "false");
    assert_eq!(app.count_rows("objects").await, 0);
    assert_eq!(app.ok("/obj/create", body(AB_DIGEST)).await["digest"], AB_DIGEST);
    for bad in ["", "a b", "x/y", &"n".repeat(129)] {
        let reply = app.post("/obj/create", json!({"obj": {"project_id": PROJECT, "object_id": bad, "val": 1}})).await;
        assert_eq!(reply.status, 422, "{bad:?}: {}", reply.text);
        assert_eq!(reply.body["detail"][0]["loc"], json!(["body", "obj", "object_id"]));
    }
    let missing = app.post("/obj/create", json!({"obj": {"project_id": PROJECT, "object_id": "x"}})).await;
    assert_eq!(
        (missing.status.as_u16(), missing.body["detail"][0]["loc"].clone()),
        (422, json!(["body", "obj", "val"]))
    );
    let builtin = app
        .post(
            "/obj/create",
            json!({"obj": {"project_id": PROJECT, "object_id": "x", "val": 1, "builtin_object_class": "Leaderboard"}}),
        )
        .await;
    assert_eq!(builtin.status, 400);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn refs_follow_extra_paths_into_objects_other_objects_and_table_rows(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let table = app
        .ok("/table/create", json!({"table": {"project_id": PROJECT, "rows": [{"q": "a", "n": [1, 2]}, {"q": "b"}]}}))
        .await;
    let (table_digest, row) =
        (table["digest"].as_str().unwrap().to_string(), table["row_digests"][1].as_str().unwrap().to_string());
    let inner = create(&app, "inner", json!({"deep": {"x": [10, 20, 30]}})).await;
    let outer = create(
        &app,
        "outer",
        json!({
            "rows": format!("weave:///acme/app/table/{table_digest}"),
            "child": format!("weave:///acme/app/object/inner:{inner}/key/deep"),
            "list": ["zero", {"k": "one"}], "weird key/%": "escaped",
        }),
    )
    .await;
    let base = format!("weave:///acme/app/object/outer:{outer}");
    let refs = [
        base.clone(),
        format!("{base}/key/list/index/1/key/k"),
        format!("{base}/attr/child/key/x/index/2"),
        format!("{base}/attr/rows/id/{row}/key/q"),
        format!("{base}/attr/rows/id/{row}"),
        format!("{base}/key/missing/key/more"),
        format!("{base}/key/list/index/7"),
        format!("{base}/key/weird%20key%2F%25"),
        format!("weave:///acme/app/object/inner:{inner}"),
    ];
    let vals = app.ok("/refs/read_batch", json!({"refs": refs})).await["vals"].clone();
    assert_eq!(vals[0]["list"][0], "zero");
    assert_eq!(
        vals[0]["child"],
        format!("weave:///acme/app/object/inner:{inner}/key/deep"),
        "nested refs are not expanded"
    );
    assert_eq!(vals[1], "one");
    assert_eq!(vals[2], 30);
    assert_eq!(vals[3], "b");
    assert_eq!(vals[4], json!({"q": "b"}));
    assert_eq!(vals[5], Value::Null);
    assert_eq!(vals[6], Value::Null);
    assert_eq!(vals[7], "escaped");
    assert_eq!(vals[8], json!({"deep": {"x": [10, 20, 30]}}));

    // A deleted version reads as null; one never stored fails the request; `latest` is refused.
    app.ok("/obj/delete", json!({"project_id": PROJECT, "object_id": "inner"})).await;
    let vals = app
        .ok(
            "/refs/read_batch",
            json!({"refs": [format!("{base}/key/child/key/x"), format!("weave:///acme/app/object/inner:{inner}")]}),
        )
        .await;
    assert_eq!(vals["vals"], json!([null, null]));
    let unknown = app.post("/refs/read_batch", json!({"refs": ["weave:///acme/app/object/inner:nope"]})).await;
    assert_eq!(unknown.status, 404);
    let latest = app.post("/refs/read_batch", json!({"refs": ["weave:///acme/app/object/outer:latest"]})).await;
    assert_eq!(latest.status, 400);
    let id_on_object = app.post("/refs/read_batch", json!({"refs": [format!("{base}/key/list/id/x")]})).await;
    assert_eq!(id_on_object.status, 400);
    let malformed = app.post("/refs/read_batch", json!({"refs": ["weave:///acme"]})).await;
    assert_eq!(malformed.status, 400);
    let foreign =
        app.post("/refs/read_batch", json!({"refs": [format!("weave:///rival/app/object/outer:{outer}")]})).await;
    assert_eq!(foreign.status, 403);
}
