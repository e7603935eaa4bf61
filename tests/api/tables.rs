//! Tables (API.md §11.2): Weave's row and table digests, updates, paging through 100k rows.
use serde_json::{json, Value};
use sqlx::PgPool;
use weave_trace_server::store::MIGRATOR;

use crate::support::*;

/// Computed with Weave's own code (`scripts/digest_vectors.py`).
const X12: &str = "ed8bd1f8cb829eeb6b3fef95a7cd8401f7e5af825c4c9aa144a1ceb9f32c3654";
const X123: &str = "5e60679e4f53ad49b637bfc4d78d8ceb1c68f1de6b7ced522a2899a7c0a0a0e1";
const ROW_X1: &str = "YTYlqmU0Pbsbmr5qusZ3P1yRvWDT8vX34urmnh24sic";
const ROW_X2: &str = "JPVyYA4VDTIwE4OFqgAGyhuZO0a7Qn90bMaQyY2TJBM";
const ROW_X3: &str = "BUt9jW0r2GnOQY0YMPuYODqbuuwMskAQwvR7GFDF2u0";
const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn rows(reply: &Value) -> Vec<Value> {
    reply["rows"].as_array().unwrap().iter().map(|r| r["val"].clone()).collect()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn tables_get_weaves_digests_and_updates_make_new_tables(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let created =
        app.ok("/table/create", json!({"table": {"project_id": PROJECT, "rows": [{"x": 1}, {"x": 2}]}})).await;
    assert_eq!(created, json!({"digest": X12, "row_digests": [ROW_X1, ROW_X2]}));
    let again = app.ok("/table/create", json!({"table": {"project_id": PROJECT, "rows": [{"x": 1}, {"x": 2}]}})).await;
    assert_eq!(again["digest"], X12);
    assert_eq!(app.ok("/table/create", json!({"table": {"project_id": PROJECT, "rows": []}})).await["digest"], EMPTY);

    let appended = app
        .ok(
            "/table/update",
            json!({"project_id": PROJECT, "base_digest": X12, "updates": [{"append": {"row": {"x": 3}}}]}),
        )
        .await;
    assert_eq!(appended, json!({"digest": X123, "updated_row_digests": [ROW_X3]}));
    let edited = app
        .ok(
            "/table/update",
            json!({"project_id": PROJECT, "base_digest": X123, "updates": [
        {"pop": {"index": 0}}, {"insert": {"index": 2, "row": {"x": 0}}}, {"insert": {"index": 0, "row": {"x": 9}}}]}),
        )
        .await;
    assert_eq!(edited["updated_row_digests"][0], ROW_X1);
    let read = app.ok("/table/query", json!({"project_id": PROJECT, "digest": edited["digest"]})).await;
    assert_eq!(rows(&read), [json!({"x": 9}), json!({"x": 2}), json!({"x": 3}), json!({"x": 0})]);
    // The base tables are kept.
    assert_eq!(
        rows(&app.ok("/table/query", json!({"project_id": PROJECT, "digest": X12})).await),
        [json!({"x": 1}), json!({"x": 2})]
    );

    let out_of_range = app
        .post("/table/update", json!({"project_id": PROJECT, "base_digest": X12, "updates": [{"pop": {"index": 2}}]}))
        .await;
    assert_eq!(out_of_range.status, 400);
    let unknown = app.post("/table/update", json!({"project_id": PROJECT, "base_digest": "nope", "updates": []})).await;
    assert_eq!(unknown.status, 404);
    let not_a_row = app.post("/table/create", json!({"table": {"project_id": PROJECT, "rows": [{"x": 1}, 5]}})).await;
    assert_eq!(
        (not_a_row.status.as_u16(), not_a_row.body["detail"][0]["loc"].clone()),
        (422, json!(["body", "table", "rows", 1]))
    );
    let conflict = app
        .post("/table/create", json!({"table": {"project_id": PROJECT, "rows": [{"x": 1}], "expected_digest": X12}}))
        .await;
    assert_eq!(conflict.status, 409);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_table_can_be_made_of_stored_rows_and_unknown_rows_are_refused(pool: PgPool) {
    let app = TestApp::new(pool).await;
    app.ok("/table/create", json!({"table": {"project_id": PROJECT, "rows": [{"x": 1}, {"x": 2}]}})).await;
    let made = app
        .ok("/table/create_from_digests", json!({"project_id": PROJECT, "row_digests": [ROW_X2, ROW_X1, ROW_X2]}))
        .await;
    let read = app.ok("/table/query", json!({"project_id": PROJECT, "digest": made["digest"]})).await;
    assert_eq!(rows(&read), [json!({"x": 2}), json!({"x": 1}), json!({"x": 2})]);
    let unknown =
        app.post("/table/create_from_digests", json!({"project_id": PROJECT, "row_digests": [ROW_X1, ROW_X3]})).await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    // The SDK probes the endpoint with an empty list.
    assert_eq!(
        app.ok("/table/create_from_digests", json!({"project_id": PROJECT, "row_digests": []})).await["digest"],
        EMPTY
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_table_of_100k_rows_pages_through_table_query_in_order(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let all: Vec<Value> = (0..100_000).map(|i| json!({"i": i, "text": format!("row {i}")})).collect();
    let created = app.ok("/table/create", json!({"table": {"project_id": PROJECT, "rows": all}})).await;
    let digest = created["digest"].as_str().unwrap().to_string();
    assert_eq!(created["row_digests"].as_array().unwrap().len(), 100_000);
    assert_eq!(app.ok("/table/query_stats", json!({"project_id": PROJECT, "digest": digest})).await["count"], 100_000);
    let mut seen = 0;
    for page in 0..100 {
        let reply = app
            .ok("/table/query", json!({"project_id": PROJECT, "digest": digest, "limit": 1000, "offset": page * 1000}))
            .await;
        let page_rows = reply["rows"].as_array().unwrap();
        assert_eq!(page_rows.len(), 1000);
        for row in page_rows {
            assert_eq!((row["val"]["i"].as_i64(), row["original_index"].as_i64()), (Some(seen), Some(seen)));
            seen += 1;
        }
    }
    let past =
        app.ok("/table/query", json!({"project_id": PROJECT, "digest": digest, "limit": 10, "offset": 100_000})).await;
    assert_eq!(rows(&past), Vec::<Value>::new());
    // Sorted by a path, descending, and filtered by row digest.
    let top = app.ok("/table/query", json!({"project_id": PROJECT, "digest": digest, "limit": 2, "sort_by": [{"field": "i", "direction": "desc"}]})).await;
    assert_eq!(rows(&top), [json!({"i": 99_999, "text": "row 99999"}), json!({"i": 99_998, "text": "row 99998"})]);
    let picked = created["row_digests"][12_345].clone();
    let one = app
        .ok("/table/query", json!({"project_id": PROJECT, "digest": digest, "filter": {"row_digests": [picked]}}))
        .await;
    assert_eq!((one["rows"][0]["original_index"].as_i64(), one["rows"].as_array().unwrap().len()), (Some(12_345), 1));
    let stats = app
        .ok(
            "/table/query_stats_batch",
            json!({"project_id": PROJECT, "digests": [digest, "unknown"], "include_storage_size": true}),
        )
        .await;
    assert_eq!(stats["tables"].as_array().unwrap().len(), 1);
    assert!(stats["tables"][0]["storage_size_bytes"].as_i64().unwrap() > 2_000_000);
    let stream = app
        .send(
            "/table/query_stream",
            json!({"project_id": PROJECT, "digest": digest, "limit": 3, "offset": 5}).to_string(),
            Some(&app.basic()),
            "application/json",
        )
        .await;
    let lines: Vec<Value> = stream.text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.iter().map(|l| l["val"]["i"].as_i64().unwrap()).collect::<Vec<_>>(), [5, 6, 7]);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn sorting_rows_puts_numbers_before_strings_and_missing_values_last_both_ways(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let created = app
        .ok(
            "/table/create",
            json!({"table": {"project_id": PROJECT, "rows": [
        {"v": "b"}, {"v": 10}, {}, {"v": 2}, {"v": "a"}, {"v": null}]}}),
        )
        .await;
    let sorted = |direction: &str| json!({"project_id": PROJECT, "digest": created["digest"], "sort_by": [{"field": "v", "direction": direction}]});
    let values =
        |reply: &Value| rows(reply).iter().map(|r| r.get("v").cloned().unwrap_or(json!("missing"))).collect::<Vec<_>>();
    assert_eq!(
        values(&app.ok("/table/query", sorted("asc")).await),
        [json!(2), json!(10), json!("a"), json!("b"), json!("missing"), json!(null)]
    );
    assert_eq!(
        values(&app.ok("/table/query", sorted("desc")).await),
        [json!(10), json!(2), json!("b"), json!("a"), json!("missing"), json!(null)]
    );
    let bad = app.post("/table/query", json!({"project_id": PROJECT, "digest": created["digest"], "sort_by": [{"field": "a..b", "direction": "asc"}]})).await;
    assert_eq!(bad.status, 400);
}
