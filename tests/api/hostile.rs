//! Hostile input on every endpoint (API.md §1.1): malformed JSON, wrong types, deep nesting,
//! huge numbers, NaN, invalid UTF-8, huge strings, oversized bodies and lists, an SQL-injection
//! corpus in every string field and JSON path, edge datetimes and timezones. Each is refused
//! with a 4xx and the spec's body (or, where the input is merely unusual, answered correctly),
//! never a 500, and nothing is written. Plus the isolation matrix: every project endpoint × a
//! key of another entity.
use serde_json::{json, Value};
use sqlx::PgPool;
use weave_trace_server::store::MIGRATOR;
use weave_trace_server::Settings;

use crate::support::*;

/// Every endpoint that takes a project, with a valid body for `project` (`entity/name`).
fn endpoints(project: &str) -> Vec<(String, Value)> {
    let (entity, name) = project.split_once('/').unwrap();
    let started = || start("h1", "2025-01-15T10:00:00Z", json!({"project_id": project}));
    let ended = || end("h1", "2025-01-15T10:00:01Z", json!({"project_id": project}));
    let mut complete = started();
    merge(&mut complete, json!({"ended_at": "2025-01-15T10:00:01Z", "summary": {}}));
    vec![
        ("/call/start".into(), json!({ "start": started() })),
        ("/call/end".into(), json!({ "end": ended() })),
        ("/call/upsert_batch".into(), json!({"batch": [start_item(started()), end_item(ended())]})),
        ("/call/read".into(), json!({"project_id": project, "id": "h1"})),
        ("/call/update".into(), json!({"project_id": project, "call_id": "h1", "display_name": "x"})),
        ("/calls/delete".into(), json!({"project_id": project, "call_ids": ["h1"]})),
        ("/calls/query_stats".into(), json!({"project_id": project})),
        (
            "/calls/stats".into(),
            json!({"project_id": project, "start": "2025-01-15T00:00:00Z", "end": "2025-01-16T00:00:00Z",
                                       "call_metrics": [{"metric": "call_count"}]}),
        ),
        ("/calls/stream_query".into(), json!({"project_id": project})),
        ("/calls/usage".into(), json!({"project_id": project, "call_ids": ["h1"]})),
        ("/trace/usage".into(), json!({"project_id": project, "filter": {"trace_ids": ["t1"]}})),
        (
            "/cost/create".into(),
            json!({"project_id": project, "costs": {"m": {"prompt_token_cost": 1.0, "completion_token_cost": 1.0}}}),
        ),
        ("/cost/query".into(), json!({"project_id": project})),
        (
            "/cost/purge".into(),
            json!({"project_id": project, "query": {"$expr": {"$eq": [{"$getField": "id"}, {"$literal": "x"}]}}}),
        ),
        (format!("/v2/{entity}/{name}/call/start"), json!({ "start": started() })),
        (format!("/v2/{entity}/{name}/call/end"), json!({ "end": ended() })),
        (format!("/v2/{entity}/{name}/calls/complete"), json!({ "batch": [complete] })),
        (
            "/obj/create".into(),
            json!({"obj": {"project_id": project, "object_id": "cfg", "val": {"a": 1, "b": [1, 2]}}}),
        ),
        ("/obj/read".into(), json!({"project_id": project, "object_id": "cfg", "digest": "latest"})),
        ("/objs/query".into(), json!({"project_id": project, "filter": {"object_ids": ["cfg"]}})),
        (
            "/refs/read_batch".into(),
            json!({"refs": [format!("weave:///{project}/object/cfg:{CFG_DIGEST}/key/b/index/1")]}),
        ),
        ("/obj/delete".into(), json!({"project_id": project, "object_id": "cfg", "digests": [CFG_DIGEST]})),
        ("/table/create".into(), json!({"table": {"project_id": project, "rows": [{"x": 1}, {"x": 2}]}})),
        ("/table/query".into(), json!({"project_id": project, "digest": TABLE_DIGEST, "limit": 10})),
        ("/table/query_stats".into(), json!({"project_id": project, "digest": TABLE_DIGEST})),
        ("/table/query_stats_batch".into(), json!({"project_id": project, "digests": [TABLE_DIGEST]})),
        (
            "/table/update".into(),
            json!({"project_id": project, "base_digest": TABLE_DIGEST, "updates": [{"append": {"row": {"x": 3}}}]}),
        ),
        (
            "/table/create_from_digests".into(),
            json!({"project_id": project, "row_digests": [ROW_DIGESTS[1], ROW_DIGESTS[0]]}),
        ),
        (
            "/feedback/create".into(),
            json!({"project_id": project, "weave_ref": format!("weave:///{project}/call/h1"),
                   "feedback_type": "wandb.note.1", "payload": {"note": "hi"}}),
        ),
        (
            "/feedback/batch/create".into(),
            json!({"batch": [{"project_id": project, "weave_ref": format!("weave:///{project}/call/h1"),
                              "feedback_type": "x", "payload": {"n": 1}}]}),
        ),
        ("/feedback/query".into(), json!({"project_id": project, "limit": 5})),
        (
            "/feedback/replace".into(),
            json!({"project_id": project, "feedback_id": "f0", "weave_ref": format!("weave:///{project}/call/h1"),
                   "feedback_type": "x", "payload": {"n": 2}}),
        ),
        (
            "/feedback/purge".into(),
            json!({"project_id": project, "query": {"$expr": {"$eq": [{"$getField": "id"}, {"$literal": "f0"}]}}}),
        ),
    ]
}

/// Weave's digests of the values the endpoints above write.
const CFG_DIGEST: &str = "5vIL3DdX5eeXTjFt7YQZbxnPWVTYx2sYliKGgPze9mw";
const TABLE_DIGEST: &str = "ed8bd1f8cb829eeb6b3fef95a7cd8401f7e5af825c4c9aa144a1ceb9f32c3654";
const ROW_DIGESTS: [&str; 2] =
    ["YTYlqmU0Pbsbmr5qusZ3P1yRvWDT8vX34urmnh24sic", "JPVyYA4VDTIwE4OFqgAGyhuZO0a7Qn90bMaQyY2TJBM"];

/// Rows in every table a request could write.
async fn snapshot(app: &TestApp) -> Vec<i64> {
    let mut counts = Vec::new();
    for table in [
        "calls",
        "call_usage",
        "llm_token_prices",
        "api_keys",
        "objects",
        "tables",
        "table_rows",
        "feedback",
        "projects",
    ] {
        counts.push(app.count_rows(table).await);
    }
    counts
}

/// A 4xx with the spec's body: 422 `{"detail": [{loc, msg, type}, ...]}`, else `{"reason"}`.
fn assert_clean_refusal(what: &str, reply: &Reply) {
    assert!(reply.status.is_client_error(), "{what}: expected a 4xx, got {} {}", reply.status, reply.text);
    if reply.status == 422 {
        let detail =
            reply.body["detail"].as_array().unwrap_or_else(|| panic!("{what}: no detail list: {}", reply.text));
        assert!(!detail.is_empty(), "{what}");
        for item in detail {
            assert!(item["loc"].is_array() && item["msg"].is_string() && item["type"].is_string(), "{what}: {item}");
        }
    } else {
        assert!(reply.body["reason"].is_string(), "{what}: no reason: {}", reply.text);
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn malformed_bodies_are_refused_cleanly_on_every_endpoint_and_write_nothing(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let before = snapshot(&app).await;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_object = format!("{{\"project_id\": {}1{}}}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("truncated JSON", b"{\"project_id\": \"acme/app\"".to_vec()),
        ("not an object", b"[1, 2, 3]".to_vec()),
        ("a bare string", b"\"acme/app\"".to_vec()),
        ("empty body", Vec::new()),
        ("10,000 nested arrays", deep.into_bytes()),
        ("10,000 nested objects", deep_object.into_bytes()),
        ("NaN", b"{\"project_id\": NaN}".to_vec()),
        ("Infinity", b"{\"project_id\": Infinity}".to_vec()),
        ("a number past f64", b"{\"project_id\": 1e400}".to_vec()),
        ("invalid UTF-8", b"{\"project_id\": \"acme/\xff\xfe\"}".to_vec()),
        ("a lone surrogate escape", br#"{"project_id": "acme/\ud800"}"#.to_vec()),
        ("trailing garbage", b"{\"project_id\": \"acme/app\"} x".to_vec()),
    ];
    for (path, _) in endpoints(PROJECT) {
        for (what, body) in &bodies {
            let reply = app.send(&path, body.clone(), Some(&app.basic()), "application/json").await;
            assert_clean_refusal(&format!("{path} with {what}"), &reply);
        }
    }
    assert_eq!(snapshot(&app).await, before);
}

/// `body` with the value at `pointer` replaced (the pointer's parent must exist).
fn with(body: &Value, pointer: &str, value: Value) -> Value {
    let mut body = body.clone();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = body.pointer_mut(parent).unwrap_or_else(|| panic!("no {parent}"));
    match target {
        Value::Object(map) => {
            map.insert(key.to_string(), value);
        }
        Value::Array(items) => items[key.parse::<usize>().unwrap()] = value,
        _ => panic!("{parent} is not a container"),
    }
    body
}

/// Every string field of `body` (JSON pointers), found by walking it.
fn string_fields(body: &Value, at: String, out: &mut Vec<String>) {
    match body {
        Value::String(_) => out.push(at),
        Value::Object(map) => map.iter().for_each(|(k, v)| string_fields(v, format!("{at}/{k}"), out)),
        Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| string_fields(v, format!("{at}/{i}"), out)),
        _ => {}
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn wrong_types_and_ten_megabyte_strings_in_every_field_are_4xx_never_5xx(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let before = snapshot(&app).await;
    let huge = "x".repeat(10 * 1024 * 1024);
    for (path, body) in endpoints(PROJECT) {
        let mut fields = Vec::new();
        string_fields(&body, String::new(), &mut fields);
        for field in &fields {
            for (what, value) in [("a number", json!(12345)), ("an object", json!({"a": 1})), ("null", Value::Null)] {
                let reply = app.post(&path, with(&body, field, value)).await;
                assert!(reply.status != 500 && reply.status.as_u16() < 500, "{path} {field} as {what}: {}", reply.text);
                if reply.status != 200 {
                    assert_clean_refusal(&format!("{path} {field} as {what}"), &reply);
                }
            }
        }
        // Ten megabytes in the endpoint's first string field (an id or the project id).
        for field in fields.iter().take(1) {
            let reply = app.post(&path, with(&body, field, json!(huge))).await;
            assert!(
                reply.status.as_u16() < 500,
                "{path} {field} 10 MB: {} {}",
                reply.status,
                &reply.text[..200.min(reply.text.len())]
            );
        }
    }
    // Ten-megabyte ids, names and project ids are refused; only free-form fields (inputs,
    // display names) may hold them, and the requests above wrote at most the test's own call.
    let after = snapshot(&app).await;
    assert_eq!(after[2..4], before[2..4], "no price or key was written");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn bodies_over_the_limit_are_413_on_every_endpoint(pool: PgPool) {
    let settings = Settings { body_limit: 64 * 1024, ..Settings::default() };
    let app = TestApp::with_settings(pool, settings).await;
    let before = snapshot(&app).await;
    for (path, body) in endpoints(PROJECT) {
        let mut padded = body.to_string();
        padded.insert_str(1, &format!("\"padding\": \"{}\", ", "x".repeat(100 * 1024)));
        let reply = app.send(&path, padded, Some(&app.basic()), "application/json").await;
        assert_eq!(reply.status, 413, "{path}: {}", reply.text);
        assert!(reply.body["reason"].is_string(), "{path}: {}", reply.text);
    }
    assert_eq!(snapshot(&app).await, before);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn lists_over_a_thousand_ids_are_422_at_their_location(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let ids: Vec<String> = (0..1001).map(|i| format!("c{i}")).collect();
    let cases = [
        ("/calls/delete", json!({"project_id": PROJECT, "call_ids": ids}), "call_ids"),
        ("/calls/usage", json!({"project_id": PROJECT, "call_ids": ids}), "call_ids"),
        ("/calls/query_stats", json!({"project_id": PROJECT, "filter": {"op_names": ids}}), "filter"),
        ("/calls/stream_query", json!({"project_id": PROJECT, "filter": {"trace_ids": ids}}), "filter"),
        ("/trace/usage", json!({"project_id": PROJECT, "filter": {"call_ids": ids}}), "filter"),
        (
            "/calls/stats",
            json!({"project_id": PROJECT, "start": "2025-01-01T00:00:00Z", "filter": {"parent_ids": ids}}),
            "filter",
        ),
        ("/objs/query", json!({"project_id": PROJECT, "filter": {"object_ids": ids}}), "filter"),
        ("/table/query", json!({"project_id": PROJECT, "digest": "d", "filter": {"row_digests": ids}}), "filter"),
        ("/table/query_stats_batch", json!({"project_id": PROJECT, "digests": ids}), "digests"),
        (
            "/feedback/batch/create",
            json!({"batch": ids.iter().map(|_| json!({"project_id": PROJECT, "weave_ref": "r", "feedback_type": "t", "payload": {}})).collect::<Vec<_>>()}),
            "batch",
        ),
    ];
    for (path, body, field) in cases {
        let reply = app.post(path, body).await;
        assert_eq!(reply.status, 422, "{path}: {}", reply.text);
        assert_eq!(reply.body["detail"][0]["loc"][1], field, "{path}: {}", reply.text);
    }
}

const INJECTIONS: [&str; 8] = [
    "'; drop table calls; --",
    "\" or \"1\"=\"1",
    "x' or '1'='1",
    "acme/app'--",
    "$1; select pg_sleep(10)",
    "inputs.a') or true or ('",
    "\\'; delete from api_keys; --",
    "weave:///acme/app/op/x:*'); drop table call_usage; --",
];

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_sql_injection_corpus_in_every_string_field_and_json_path_is_inert(pool: PgPool) {
    let app = TestApp::new(pool).await;
    ingest(
        &app,
        vec![(start("c1", "2025-01-15T10:00:00Z", json!({})), Some(end("c1", "2025-01-15T10:00:01Z", json!({}))))],
    )
    .await;
    for (path, body) in endpoints(PROJECT) {
        let mut fields = Vec::new();
        string_fields(&body, String::new(), &mut fields);
        for field in &fields {
            for injection in INJECTIONS {
                let reply = app.post(&path, with(&body, field, json!(injection))).await;
                assert!(reply.status.as_u16() < 500, "{path} {field} = {injection}: {}", reply.text);
                if !reply.status.is_success() {
                    assert_clean_refusal(&format!("{path} {field}"), &reply);
                }
            }
        }
    }
    // JSON paths, sort fields, filters and timezones.
    for injection in INJECTIONS {
        let get = json!({"$getField": injection});
        let queries = [
            (
                "/calls/stream_query",
                json!({"project_id": PROJECT, "query": {"$expr": {"$eq": [get, {"$literal": "x"}]}}}),
            ),
            (
                "/calls/stream_query",
                json!({"project_id": PROJECT, "sort_by": [{"field": injection, "direction": "asc"}]}),
            ),
            (
                "/calls/query_stats",
                json!({"project_id": PROJECT, "query": {"$expr": {"$contains": {"input": get, "substr": {"$literal": injection}}}}}),
            ),
            (
                "/calls/stats",
                json!({"project_id": PROJECT, "start": "2025-01-15T00:00:00Z", "end": "2025-01-16T00:00:00Z", "timezone": injection}),
            ),
            (
                "/calls/stats",
                json!({"project_id": PROJECT, "start": "2025-01-15T00:00:00Z", "end": "2025-01-16T00:00:00Z",
                                    "call_metrics": [{"metric": "call_count"}], "filter": {"op_names": [injection], "wb_user_ids": [injection]}}),
            ),
            (
                "/cost/query",
                json!({"project_id": PROJECT, "fields": [injection], "sort_by": [{"field": injection, "direction": "desc"}]}),
            ),
            (
                "/trace/usage",
                json!({"project_id": PROJECT, "filter": {"trace_ids": [injection]}, "query": {"$expr": {"$eq": [get, {"$literal": 1}]}}}),
            ),
        ];
        for (path, body) in queries {
            let reply = app.post(path, body.clone()).await;
            assert!(reply.status.as_u16() < 500, "{path} {body}: {}", reply.text);
            if !reply.status.is_success() {
                assert_clean_refusal(&format!("{path} {body}"), &reply);
            }
        }
    }
    // Everything is still there, and a hostile id is stored and read back verbatim.
    assert_eq!(app.read("c1").await["id"], "c1");
    let odd = "it's\"; drop table calls; --";
    ingest(&app, vec![(start(odd, "2025-01-15T10:00:00Z", json!({"trace_id": odd})), None)]).await;
    assert_eq!(app.read(odd).await["id"], odd);
    assert!(app.count_rows("api_keys").await >= 1);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn datetimes_and_timezones_at_the_edges_are_answered_or_refused_never_5xx(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let stats = |start: &str, end: &str, timezone: &str| json!({"project_id": PROJECT, "start": start, "end": end, "timezone": timezone, "call_metrics": [{"metric": "call_count"}]});
    // Valid edges are answered.
    for (start, end, tz) in [
        ("0001-01-01T00:00:00Z", "0001-01-02T00:00:00Z", "UTC"),
        ("0001-01-01T00:00:00Z", "0001-01-02T00:00:00Z", "America/New_York"),
        ("9999-12-30T00:00:00Z", "9999-12-31T23:59:59.999999Z", "Pacific/Kiritimati"),
        ("9999-12-30T00:00:00Z", "9999-12-31T23:59:59Z", "Etc/GMT+12"),
        ("2016-12-31T00:00:00Z", "2017-01-02T00:00:00Z", "UTC"),
    ] {
        let reply = app.post("/calls/stats", stats(start, end, tz)).await;
        assert_eq!(reply.status, 200, "{start}..{end} {tz}: {}", reply.text);
    }
    // Invalid ones are refused.
    for (start, end, tz) in [
        ("2016-12-31T23:59:60Z", "2017-01-02T00:00:00Z", "UTC"),
        ("0000-12-31T00:00:00Z", "0001-01-02T00:00:00Z", "UTC"),
        ("9999-12-31T00:00:00Z", "10000-01-01T00:00:00Z", "UTC"),
        ("2025-02-30T00:00:00Z", "2025-03-01T00:00:00Z", "UTC"),
        ("2025-01-01T00:00:00+25:00", "2025-01-02T00:00:00Z", "UTC"),
        ("2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z", "Mars/Olympus_Mons"),
        ("2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z", "UTC+5"),
        ("2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z", "../../etc/passwd"),
        ("2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z", ""),
    ] {
        let reply = app.post("/calls/stats", stats(start, end, tz)).await;
        assert_eq!(reply.status, 422, "{start}..{end} {tz}: {}", reply.text);
        assert_clean_refusal(start, &reply);
    }
    // Calls at the edges of time are stored and read back.
    let before = app.count_rows("calls").await;
    for (id, at) in [("first", "0001-01-01T00:00:00Z"), ("last", "9999-12-31T23:59:59.999999Z")] {
        ingest(&app, vec![(start(id, at, json!({})), Some(end(id, at, json!({}))))]).await;
        assert_eq!(app.read(id).await["started_at"], at);
    }
    let leap = app.post("/call/start", json!({"start": start("leap", "2016-12-31T23:59:60Z", json!({}))})).await;
    assert_eq!(leap.status, 422, "{}", leap.text);
    assert_eq!(app.count_rows("calls").await, before + 2);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn every_project_endpoint_refuses_another_entitys_key_alike_for_existing_and_missing_projects(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    // "rival/data" holds calls and prices (written by an admin); "rival/empty" holds nothing.
    let admin = weave_trace_server::keys::create(&pool, "root", &[], true).await.unwrap().secret;
    for (path, body) in endpoints("rival/data") {
        if path.contains("delete") || path.contains("purge") {
            continue;
        }
        let reply = app.send(&path, body.to_string(), Some(&basic_auth(&admin)), "application/json").await;
        assert!(reply.status.is_success(), "admin {path}: {}", reply.text);
    }
    let before = snapshot(&app).await;
    let existing = endpoints("rival/data");
    let missing = endpoints("rival/empty");
    assert_eq!(existing.len(), 33);
    for ((path, body), (missing_path, missing_body)) in existing.into_iter().zip(missing) {
        let with_data = app.post(&path, body).await;
        let without = app.post(&missing_path, missing_body).await;
        assert_eq!(with_data.status, 403, "{path}: {}", with_data.text);
        assert_eq!(with_data.body, without.body, "{path} reveals whether the project exists");
        assert!(with_data.body["reason"].is_string());
    }
    assert_eq!(snapshot(&app).await, before, "refused requests wrote nothing");
}
