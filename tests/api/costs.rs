//! Prices and costs (API.md §6) across `/cost/*`, `/call/read`, `/calls/stream_query`, the usage
//! endpoints and `/calls/stats`.
use serde_json::{json, Value};
use sqlx::PgPool;
use weave_trace_server::store::MIGRATOR;

use crate::support::*;

fn close(value: &Value, expected: f64) -> bool {
    value.as_f64().is_some_and(|v| (v - expected).abs() <= 1e-12 * expected.abs().max(1.0))
}

/// Calls at two dates using several model names (prices below are powers of two, so the
/// expected costs are exact).
async fn seeded(pool: PgPool) -> TestApp {
    let app = TestApp::new(pool).await;
    let usage = |u: Value| json!({"summary": {"usage": u}});
    ingest(&app, vec![
        (start("jan", "2025-01-15T11:00:00Z", json!({})), Some(end("jan", "2025-01-15T11:00:01Z", usage(json!({
            "my-model": {"input_tokens": 100, "output_tokens": 10, "cache_read_input_tokens": 30, "cache_creation_input_tokens": 20},
            "unknown-model": {"input_tokens": 7},
        }))))),
        (start("jul", "2025-07-15T11:00:00Z", json!({"parent_id": "jan", "trace_id": "t1"})), Some(end("jul", "2025-07-15T11:00:01Z", usage(json!({
            "my-model": {"input_tokens": 10, "output_tokens": 0, "cache_read_input_tokens": 30},
            "vendor/my-model-2025-07-01": {"input_tokens": 4, "output_tokens": 4},
        }))))),
    ]).await;
    let prices = |prompt: f64, date: &str| {
        json!({"prompt_token_cost": prompt, "completion_token_cost": 2.0,
        "cache_read_input_token_cost": 0.5, "cache_creation_input_token_cost": 0.25, "effective_date": date})
    };
    app.ok("/cost/create", json!({"project_id": PROJECT, "costs": {"my-model": prices(1.0, "2024-01-01T00:00:00Z")}}))
        .await;
    app.ok("/cost/create", json!({"project_id": PROJECT, "costs": {"my-model": prices(4.0, "2025-06-01T00:00:00Z")}}))
        .await;
    app
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn read_with_costs_prices_each_model_by_the_calls_start(pool: PgPool) {
    let app = seeded(pool).await;
    let jan =
        app.ok("/call/read", json!({"project_id": PROJECT, "id": "jan", "include_costs": true})).await["call"].clone();
    let costs = &jan["summary"]["weave"]["costs"];
    // January: the price effective since 2024 (prompt 1.0). Uncached input = 100 - 30 - 20 = 50.
    let mine = &costs["my-model"];
    assert_eq!(
        (mine["prompt_tokens_total_cost"].clone(), mine["completion_tokens_total_cost"].clone()),
        (json!(50.0), json!(20.0))
    );
    assert_eq!(
        (mine["cache_read_input_tokens_total_cost"].clone(), mine["cache_creation_input_tokens_total_cost"].clone()),
        (json!(15.0), json!(5.0))
    );
    assert_eq!(mine["total_cost"], 90.0);
    assert_eq!(mine["prompt_token_cost"], 1.0);
    assert_eq!(mine["pricing_level"], "project");
    // Every field of Weave's cost entries, the price's creation included.
    for key in [
        "prompt_tokens",
        "completion_tokens",
        "requests",
        "total_tokens",
        "prompt_token_cost",
        "completion_token_cost",
        "prompt_token_cost_unit",
        "completion_token_cost_unit",
        "effective_date",
        "provider_id",
        "pricing_level",
        "pricing_level_id",
        "created_at",
        "created_by",
    ] {
        assert!(mine.get(key).is_some(), "{key} missing from {mine}");
    }
    assert_eq!(mine["created_by"], "alice");
    // Models without a price have no cost entry; they are listed apart so they stay visible.
    assert!(costs.get("unknown-model").is_none());
    assert_eq!(jan["summary"]["weave"]["unpriced_models"], json!(["unknown-model"]));

    let jul =
        app.ok("/call/read", json!({"project_id": PROJECT, "id": "jul", "include_costs": true})).await["call"].clone();
    let costs = &jul["summary"]["weave"]["costs"];
    // July: the June price (prompt 4.0); cache reads above the input never make input negative.
    assert_eq!(costs["my-model"]["prompt_tokens_total_cost"], 0.0);
    assert_eq!(costs["my-model"]["cache_read_input_tokens_total_cost"], 15.0);
    assert_eq!(costs["my-model"]["prompt_token_cost"], 4.0);
    // A provider prefix and a date fall back to the base name's price.
    assert_eq!(costs["vendor/my-model-2025-07-01"]["total_cost"], 4.0 * 4.0 + 4.0 * 2.0);
    assert!(jul["summary"]["weave"].get("unpriced_models").is_none(), "every model of July is priced");
    let plain = app.read("jul").await;
    assert!(plain["summary"]["weave"].get("costs").is_none());
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_call_without_usage_or_without_priced_usage_has_no_costs_key(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let at = "2025-01-15T11:00:00Z";
    ingest(
        &app,
        vec![
            (start("none", at, json!({})), Some(end("none", at, json!({})))),
            (
                start("odd", at, json!({})),
                Some(end("odd", at, json!({"summary": {"usage": {"no-such-model": {"input_tokens": 3}}}}))),
            ),
        ],
    )
    .await;
    let read = |id: &str| app.ok("/call/read", json!({"project_id": PROJECT, "id": id, "include_costs": true}));
    let none = read("none").await["call"]["summary"]["weave"].clone();
    assert!(none.get("costs").is_none() && none.get("unpriced_models").is_none(), "{none}");
    let odd = read("odd").await["call"]["summary"]["weave"].clone();
    assert!(odd.get("costs").is_none(), "{odd}");
    assert_eq!(odd["unpriced_models"], json!(["no-such-model"]));
}

async fn read_costs(app: &TestApp) -> Value {
    app.ok("/call/read", json!({"project_id": PROJECT, "id": "c", "include_costs": true})).await["call"]["summary"]
        ["weave"]["costs"]
        .clone()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn default_prices_ship_with_the_server_and_project_prices_win(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let usage = json!({"summary": {"usage": {"gpt-4o": {"prompt_tokens": 1000, "completion_tokens": 100},
                                              "openai/gpt-4o-2024-08-06": {"prompt_tokens": 1000}}}});
    ingest(
        &app,
        vec![(start("c", "2025-01-15T11:00:00Z", json!({})), Some(end("c", "2025-01-15T11:00:01Z", usage.clone())))],
    )
    .await;
    let costs = read_costs(&app).await;
    assert_eq!(costs["gpt-4o"]["pricing_level"], "default");
    assert!(close(&costs["gpt-4o"]["prompt_tokens_total_cost"], 1000.0 * 2.5e-6), "{}", costs["gpt-4o"]);
    assert!(close(&costs["gpt-4o"]["completion_tokens_total_cost"], 100.0 * 1e-5));
    assert_eq!(costs["openai/gpt-4o-2024-08-06"]["llm_id"], "gpt-4o");
    app.ok(
        "/cost/create",
        json!({"project_id": PROJECT, "costs": {"gpt-4o": {"prompt_token_cost": 0.5, "completion_token_cost": 0.25,
        "effective_date": "2020-01-01T00:00:00Z"}}}),
    )
    .await;
    let costs = read_costs(&app).await;
    assert_eq!(costs["gpt-4o"]["pricing_level"], "project");
    assert_eq!(costs["gpt-4o"]["total_cost"], 525.0);
    // The server keeps the defaults in memory once read: one project's own rows never reach
    // another's book.
    let other = json!({"project_id": "acme/other"});
    let mut other_end = usage.clone();
    merge(&mut other_end, other.clone());
    ingest(
        &app,
        vec![(start("c", "2025-01-15T11:00:00Z", other.clone()), Some(end("c", "2025-01-15T11:00:01Z", other_end)))],
    )
    .await;
    let read = app.ok("/call/read", json!({"project_id": "acme/other", "id": "c", "include_costs": true})).await;
    assert_eq!(read["call"]["summary"]["weave"]["costs"]["gpt-4o"]["pricing_level"], "default");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn cost_query_lists_the_projects_rows_defaults_come_apart_and_purge_takes_ids_only(pool: PgPool) {
    let app = seeded(pool).await;
    let mine = json!({"$expr": {"$eq": [{"$getField": "llm_id"}, {"$literal": "my-model"}]}});
    let res = app
        .ok(
            "/cost/query",
            json!({"project_id": PROJECT, "query": mine, "sort_by": [{"field": "effective_date", "direction": "desc"}],
        "fields": ["llm_id", "prompt_token_cost", "effective_date"]}),
        )
        .await;
    assert_eq!(
        res["results"],
        json!([
            {"llm_id": "my-model", "prompt_token_cost": 4.0, "effective_date": "2025-06-01T00:00:00Z"},
            {"llm_id": "my-model", "prompt_token_cost": 1.0, "effective_date": "2024-01-01T00:00:00Z"},
        ])
    );
    // The project's own rows only, as Weave answers; the shipped defaults come apart.
    let gpt = json!({"$expr": {"$eq": [{"$getField": "llm_id"}, {"$literal": "gpt-4o"}]}});
    assert_eq!(app.ok("/cost/query", json!({"project_id": PROJECT, "query": gpt})).await["results"], json!([]));
    let all = app.ok("/cost/query", json!({"project_id": PROJECT, "limit": 1000})).await;
    assert_eq!(all["results"].as_array().unwrap().len(), 2);
    let defaults = app.ok("/cost/query_defaults", json!({"project_id": PROJECT, "query": gpt})).await;
    assert_eq!(defaults["results"][0]["pricing_level"], "default");
    let every_default = app.ok("/cost/query_defaults", json!({"project_id": PROJECT, "limit": 1000})).await;
    assert!(every_default["results"].as_array().unwrap().len() > 100, "default prices ship with the server");

    // Purges name ids only (as Weave allows); they remove the project's rows only.
    let everything = json!({"$expr": {"$gte": [{"$getField": "prompt_token_cost"}, {"$literal": 0}]}});
    let refused = app.post("/cost/purge", json!({"project_id": PROJECT, "query": everything})).await;
    assert_eq!(
        (refused.status.as_u16(), refused.body["reason"].as_str()),
        (400, Some("Can only purge costs by specifying one or more cost ids"))
    );
    let ids: Vec<Value> = all["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| json!({"$eq": [{"$getField": "id"}, {"$literal": r["id"]}]}))
        .collect();
    let default_id = defaults["results"][0]["id"].clone();
    let by_id = json!({"$expr": {"$or": [ids[0], ids[1], {"$eq": [{"$getField": "id"}, {"$literal": default_id}]}]}});
    assert_eq!(app.ok("/cost/purge", json!({"project_id": PROJECT, "query": by_id})).await, json!({}));
    assert_eq!(app.ok("/cost/query", json!({"project_id": PROJECT, "query": mine})).await["results"], json!([]));
    assert_eq!(
        app.ok("/cost/query_defaults", json!({"project_id": PROJECT, "query": gpt})).await["results"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "a default row is never purged"
    );
    // Another project's prices are not this project's.
    let admin = weave_trace_server::keys::create(&app.pool, "root", &[], true).await.unwrap().secret;
    let other = app
        .send(
            "/cost/query",
            json!({"project_id": "other/app", "query": mine}).to_string(),
            Some(&basic_auth(&admin)),
            "application/json",
        )
        .await;
    assert_eq!(other.body["results"], json!([]));
    let bad = app
        .post(
            "/cost/query",
            json!({"project_id": PROJECT, "query": {"$expr": {"$eq": [{"$getField": "op_name"}, {"$literal": 1}]}}}),
        )
        .await;
    assert_eq!(bad.status, 400);
    let negative = app
        .post(
            "/cost/create",
            json!({"project_id": PROJECT, "costs": {"m": {"prompt_token_cost": -1, "completion_token_cost": 0}}}),
        )
        .await;
    assert_eq!(negative.status, 422);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn stats_cost_metrics_take_every_aggregation_and_count_unpriced_rows(pool: PgPool) {
    let app = seeded(pool).await;
    let res = app.ok("/calls/stats", json!({"project_id": PROJECT, "start": "2025-01-15T00:00:00Z", "end": "2025-01-16T00:00:00Z",
        "granularity": 86400, "usage_metrics": [{"metric": "total_cost", "aggregations": ["sum", "avg", "max"], "percentiles": [50]},
                                                {"metric": "input_cost"}, {"metric": "output_cost"}]})).await;
    assert_eq!(
        res["usage_buckets"],
        json!([
            {"timestamp": "2025-01-15T00:00:00+00:00", "model": "my-model", "sum_total_cost": 90.0, "avg_total_cost": 90.0, "max_total_cost": 90.0,
             "p50_total_cost": 90.0, "sum_input_cost": 50.0, "sum_output_cost": 20.0, "count": 1, "unpriced_count": 0},
            {"timestamp": "2025-01-15T00:00:00+00:00", "model": "unknown-model", "sum_total_cost": 0.0, "avg_total_cost": 0.0, "max_total_cost": 0.0,
             "p50_total_cost": 0.0, "sum_input_cost": 0.0, "sum_output_cost": 0.0, "count": 1, "unpriced_count": 1},
        ])
    );
    let tokens_only = app
        .ok(
            "/calls/stats",
            json!({"project_id": PROJECT, "start": "2025-01-15T00:00:00Z", "end": "2025-01-16T00:00:00Z",
        "granularity": 86400, "usage_metrics": [{"metric": "input_tokens"}]}),
        )
        .await;
    assert!(tokens_only["usage_buckets"][0].get("unpriced_count").is_none());
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn usage_endpoints_roll_costs_up_with_the_tokens(pool: PgPool) {
    let app = seeded(pool).await;
    let res = app.ok("/calls/usage", json!({"project_id": PROJECT, "call_ids": ["jan"], "include_costs": true})).await;
    let mine = &res["call_usage"]["jan"]["my-model"];
    // jan's own 50 + 0 (input), 20 (output), 15 + 15 (cache reads), 5 (cache creation).
    assert_eq!(
        (
            mine["prompt_tokens_total_cost"].clone(),
            mine["completion_tokens_total_cost"].clone(),
            mine["cache_read_input_tokens_total_cost"].clone(),
            mine["cache_creation_input_tokens_total_cost"].clone()
        ),
        (json!(50.0), json!(20.0), json!(30.0), json!(5.0))
    );
    assert_eq!(res["call_usage"]["jan"]["unknown-model"]["prompt_tokens_total_cost"], 0.0);
    let without = app.ok("/trace/usage", json!({"project_id": PROJECT})).await;
    assert_eq!(without["call_usage"]["jan"]["my-model"]["prompt_tokens_total_cost"], Value::Null);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn stream_query_adds_costs_when_asked(pool: PgPool) {
    let app = seeded(pool).await;
    let reply = app.post("/calls/stream_query", json!({"project_id": PROJECT, "include_costs": true})).await;
    let calls: Vec<Value> = reply.text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(calls[0]["summary"]["weave"]["costs"]["my-model"]["total_cost"], 90.0);
    assert_eq!(calls[1]["summary"]["weave"]["costs"]["my-model"]["prompt_token_cost"], 4.0);
}
