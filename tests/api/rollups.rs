//! The 15-minute rollups behind `/calls/stats` (README "How /calls/stats stays fast") give the
//! same answers as reading every call, before and after late ends, retries, updates, deletes
//! and usage changes. The raw answer is forced with a query expression that every call
//! matches (rollups serve only op and root filters).
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};
use sqlx::PgPool;
use weave_trace_server::store::MIGRATOR;

use crate::support::*;

const T0: &str = "2025-03-09T05:00:00Z";
const MODELS: [&str; 3] = ["gpt-4o", "claude-3-5-sonnet-20241022", "no-price-model"];

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(T0).unwrap().to_utc()
}

fn at(offset_ms: i64) -> String {
    (t0() + TimeDelta::milliseconds(offset_ms)).to_rfc3339()
}

fn op(n: u64) -> String {
    format!("weave:///acme/app/op/op{}:v{}", n % 4, n % 2)
}

/// Call `n`: spread over 3 hours in uneven steps, children under every fifth call, an error
/// every seventh, running every eleventh, usage of one or two models on most.
fn call(n: u64) -> (Value, Option<Value>) {
    let started = (n * n * 7_919 + n * 104_729) as i64 % (3 * 3_600_000);
    let id = format!("c{n}");
    let parent = (n % 5 != 0).then(|| format!("c{}", n - n % 5));
    let start =
        start(&id, &at(started), json!({"trace_id": format!("t{}", n / 5), "parent_id": parent, "op_name": op(n)}));
    if n % 11 == 3 {
        return (start, None);
    }
    let latency = 1 + (n * 7_907) as i64 % 20_000;
    let mut usage = serde_json::Map::new();
    for (i, model) in MODELS.iter().enumerate() {
        if (n + i as u64) % 3 != 0 {
            usage.insert(
                model.to_string(),
                json!({"input_tokens": 10 + n * 13 % 997, "output_tokens": n % 101, "total_tokens": 10 + n * 13 % 997 + n % 101,
                       "cache_read_input_tokens": n % 17, "requests": 1}),
            );
        }
    }
    let exception = (n % 7 == 2).then_some("ValueError: boom");
    let end = end(&id, &at(started + latency), json!({"exception": exception, "summary": {"usage": usage}}));
    (start, Some(end))
}

fn dashboard(start: &str, end: &str, timezone: &str, granularity: i64, filter: Value) -> Value {
    json!({
        "project_id": PROJECT, "start": start, "end": end, "timezone": timezone, "granularity": granularity, "filter": filter,
        "call_metrics": [
            {"metric": "latency_ms", "aggregations": ["sum", "avg", "min", "max", "count"], "percentiles": [0, 50, 95, 99, 100]},
            {"metric": "call_count", "aggregations": ["sum", "count", "min", "max"], "percentiles": [50]},
            {"metric": "error_count", "aggregations": ["sum", "count_true", "count_false", "avg"], "percentiles": [25, 99]},
        ],
        "usage_metrics": [
            {"metric": "input_tokens", "aggregations": ["sum", "avg", "count"]},
            {"metric": "output_tokens"}, {"metric": "total_tokens"}, {"metric": "cache_read_input_tokens"},
            {"metric": "input_cost", "aggregations": ["sum", "avg"]}, {"metric": "total_cost", "aggregations": ["sum", "count"]},
        ],
    })
}

/// Requests covering aligned and unaligned windows, zones, bucket sizes and the filters
/// rollups serve.
fn requests() -> Vec<Value> {
    let end = at(3 * 3_600_000);
    vec![
        dashboard(T0, &end, "UTC", 900, json!(null)),
        dashboard(T0, &end, "UTC", 3600, json!(null)),
        dashboard(&at(-7_003), &at(3 * 3_600_000 - 61_000), "America/New_York", 1800, json!(null)),
        dashboard(T0, &end, "Asia/Kathmandu", 2700, json!(null)),
        dashboard(T0, &end, "UTC", 3600, json!({"op_names": [op(1)]})),
        dashboard(T0, &end, "UTC", 1800, json!({"op_names": ["weave:///acme/app/op/op2:*"], "trace_roots_only": true})),
    ]
}

/// Assert that every request answers the same from rollups as from the calls, both while the
/// written slots are stale (read raw) and once the background refresher has rebuilt them;
/// return the answers.
async fn same_both_ways(app: &TestApp) -> Vec<Value> {
    let everything = json!({"$expr": {"$not": [{"$eq": [{"$getField": "id"}, {"$literal": ""}]}]}});
    let mut answers = Vec::new();
    for refreshed in [false, true] {
        if refreshed {
            weave_trace_server::store::slots::refresh_everything(&app.pool).await.unwrap();
        }
        answers.clear();
        for request in requests() {
            let fast = app.ok("/calls/stats", request.clone()).await;
            let mut raw_request = request.clone();
            merge(&mut raw_request, json!({"query": everything}));
            let raw = app.ok("/calls/stats", raw_request).await;
            assert_eq!(fast, raw, "rollups (refreshed: {refreshed}) and calls disagree on {request}");
            answers.push(fast);
        }
    }
    answers
}

async fn send(app: &TestApp, items: Vec<Value>) {
    app.ok("/call/upsert_batch", json!({ "batch": items })).await;
}

fn total_calls(answer: &Value) -> i64 {
    answer["call_buckets"].as_array().unwrap().iter().map(|b| b["count"].as_i64().unwrap()).sum()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn rollups_answer_exactly_like_the_calls_through_late_ends_retries_updates_and_deletes(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let calls: Vec<_> = (0..400).map(call).collect();
    ingest(&app, calls.clone()).await;
    let first = same_both_ways(&app).await;
    assert!(app.count_rows("call_slots").await > 0, "the dashboard requests were served by rollups");
    assert!(app.count_rows("usage_slots").await > 0);
    assert!(app.count_rows("call_op_slots").await > 0 && app.count_rows("usage_op_slots").await > 0);
    assert_eq!(app.count_rows("rollup_dirty").await, 0, "a refresh consumes the marks");
    assert_eq!(total_calls(&first[0]), 400);

    // A retry of the whole batch changes nothing.
    ingest(&app, calls.clone()).await;
    assert_eq!(same_both_ways(&app).await, first);

    // Late ends of the running calls, one of them an error.
    let late: Vec<Value> = (0..400)
        .filter(|n| n % 11 == 3)
        .map(|n| {
            let exception = (n % 2 == 0).then_some("TimeoutError");
            end_item(end(&format!("c{n}"), &at(3 * 3_600_000 - 1), json!({"exception": exception})))
        })
        .collect();
    send(&app, late).await;
    let after_late_ends = same_both_ways(&app).await;
    assert_ne!(after_late_ends, first);

    // A start re-sent with a new time and op moves the call to another slot.
    let (moved, _) = call(42);
    let mut moved = moved;
    merge(&mut moved, json!({"started_at": at(2 * 3_600_000 + 5), "op_name": op(3), "parent_id": null}));
    send(&app, vec![start_item(moved)]).await;
    same_both_ways(&app).await;

    // New usage for a finished call, and an end arriving before its start.
    send(
        &app,
        vec![
            end_item(end(
                "c10",
                &at(600_000),
                json!({"summary": {"usage": {"gpt-4o": {"input_tokens": 5000, "output_tokens": 7}}}}),
            )),
            end_item(end("late-start", &at(4_000_000), json!({"summary": {"usage": {"gpt-4o": {"input_tokens": 3}}}}))),
        ],
    )
    .await;
    same_both_ways(&app).await;
    send(&app, vec![start_item(start("late-start", &at(3_999_000), json!({"trace_id": "t-late"})))]).await;
    let answers = same_both_ways(&app).await;
    assert_eq!(total_calls(&answers[0]), 401);

    // Deleting calls (and their descendants) removes them from every slot.
    app.ok("/calls/delete", json!({"project_id": PROJECT, "call_ids": ["c0", "c15", "c33"]})).await;
    let answers = same_both_ways(&app).await;
    assert!(total_calls(&answers[0]) < 401);

    // A price taking effect inside a quarter hour: those rows cannot share one price.
    app.ok(
        "/cost/create",
        json!({"project_id": PROJECT, "costs": {"gpt-4o": {"prompt_token_cost": 0.5, "completion_token_cost": 2.0,
               "effective_date": at(3_600_000 + 123_456)}}}),
    )
    .await;
    same_both_ways(&app).await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_write_made_while_a_refresh_runs_is_picked_up_by_the_next_request(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    ingest(&app, (0..50).map(call).collect()).await;
    same_both_ways(&app).await;

    // A writer's transaction is open when the refresh starts: its mark is not visible yet,
    // so the refresh must leave it for the next one.
    let mut writer = pool.begin().await.unwrap();
    sqlx::query("update calls set exception = 'late error' where project_id = $1 and id = 'c1'")
        .bind(PROJECT)
        .execute(&mut *writer)
        .await
        .unwrap();
    let during = same_both_ways(&app).await;
    writer.commit().await.unwrap();
    let after = same_both_ways(&app).await;
    assert_ne!(during, after, "the committed write shows in the next answer");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn maintenance_vacuums_and_analyzes_the_rollup_tables_and_answers_stay_the_same(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let batch: Vec<Value> = (0..200)
        .flat_map(|n| {
            let (start, end) = call(n);
            [Some(start_item(start)), end.map(end_item)].into_iter().flatten()
        })
        .collect();
    app.ok("/call/upsert_batch", json!({ "batch": batch })).await;
    let request = dashboard(T0, &at(3 * 3_600_000), "UTC", 3600, json!({}));
    let before = app.ok("/calls/stats", request.clone()).await;
    weave_trace_server::store::slots::maintain(&pool).await.unwrap();
    let cleaned: Vec<(String, bool, bool)> = sqlx::query_as(
        "select relname::text, last_vacuum is not null, last_analyze is not null from pg_stat_user_tables
         where relname in ('rollup_dirty', 'call_slots', 'call_op_slots', 'call_latency_pages', 'usage_slots',
                           'usage_op_slots', 'run_slots', 'calls', 'call_usage')
         order by 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(cleaned.len(), 9);
    for (table, vacuumed, analyzed) in cleaned {
        assert!(analyzed, "{table} analyzed");
        assert_eq!(
            vacuumed,
            !["calls", "call_usage"].contains(&table.as_str()),
            "{table}: only rollup tables are vacuumed"
        );
    }
    // The planner's columns are sampled; the JSON payloads are not (half the cost, unused).
    let sampled: Vec<String> =
        sqlx::query_scalar("select attname::text from pg_stats where tablename = 'calls' order by 1")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(sampled.contains(&"started_at".to_string()) && sampled.contains(&"op_name".to_string()), "{sampled:?}");
    for payload in ["attributes", "inputs", "output", "summary", "otel_dump"] {
        assert!(!sampled.contains(&payload.to_string()), "{payload} is sampled: {sampled:?}");
    }
    assert_eq!(app.ok("/calls/stats", request).await, before);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_request_reads_a_few_stale_slots_raw_and_rebuilds_a_backlog_first(pool: PgPool) {
    let app = TestApp::new(pool).await;
    // One call in each of 120 quarter hours, its end arriving after its start and then again,
    // later (an update of an ended call, which appends no rollup rows): more stale slots than a
    // request reads raw.
    let spread = |id: String, slot: i64| {
        vec![
            start_item(start(&id, &at(slot * 900_000 + 1_000), json!({"trace_id": id, "op_name": op(slot as u64)}))),
            end_item(end(&id, &at(slot * 900_000 + 2_000 + slot), json!({}))),
        ]
    };
    let starts: Vec<Value> = (0..120)
        .map(|n| {
            start_item(start(
                &format!("s{n}"),
                &at(n * 900_000 + 1_000),
                json!({"trace_id": format!("s{n}"), "op_name": op(n as u64)}),
            ))
        })
        .collect();
    let ends = |later: i64| -> Vec<Value> {
        (0..120).map(|n| end_item(end(&format!("s{n}"), &at(n * 900_000 + 2_000 + n + later), json!({})))).collect()
    };
    send(&app, starts).await;
    send(&app, ends(0)).await;
    send(&app, ends(500)).await;
    assert_eq!(app.count_rows("rollup_dirty where not covered").await, 120);
    let request = dashboard(T0, &at(120 * 900_000), "UTC", 3600, json!(null));
    let everything = json!({"$expr": {"$not": [{"$eq": [{"$getField": "id"}, {"$literal": ""}]}]}});
    let mut raw_request = request.clone();
    merge(&mut raw_request, json!({"query": everything}));
    let answer = app.ok("/calls/stats", request.clone()).await;
    assert_eq!(answer, app.ok("/calls/stats", raw_request.clone()).await);
    assert_eq!(app.count_rows("rollup_dirty").await, 0, "a backlog is rebuilt by the request");
    assert_eq!(app.count_rows("call_slots where minutes = 15").await, 120);
    assert_eq!(app.count_rows("call_slots where minutes = 60").await, 30, "and their hours");

    // A few changed calls leave their slots stale: the request reads them raw and rebuilds
    // nothing.
    send(&app, (7..10).map(|n| end_item(end(&format!("s{n}"), &at(n * 900_000 + 5_000), json!({})))).collect()).await;
    send(&app, (7..10).flat_map(|n| spread(format!("late{n}"), n)).collect()).await;
    let stale = app.count_rows("rollup_dirty").await;
    assert!(app.count_rows("rollup_dirty where not covered").await > 0);
    let answer = app.ok("/calls/stats", request).await;
    assert_eq!(answer, app.ok("/calls/stats", raw_request).await);
    assert_eq!(app.count_rows("rollup_dirty").await, stale, "stale slots are left to the refresher");
    assert_eq!(total_calls(&answer), 123);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn usage_sums_past_the_bigint_range_are_read_raw_and_stay_exact(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let huge = 9_000_000_000_000_000_000_i64;
    let items: Vec<Value> = (0..3)
        .flat_map(|n| {
            let id = format!("h{n}");
            [
                start_item(start(&id, &at(60_000 * n), json!({"trace_id": id, "op_name": op(1)}))),
                end_item(end(
                    &id,
                    &at(60_000 * n + 500),
                    json!({"summary": {"usage": {"gpt-4o": {"input_tokens": huge, "output_tokens": 1, "cache_read_input_tokens": -huge}}}}),
                )),
            ]
        })
        .collect();
    send(&app, items).await;
    weave_trace_server::store::slots::refresh_everything(&app.pool).await.unwrap();
    let stored: Option<i64> = sqlx::query_scalar("select input_tokens from usage_slots where model = 'gpt-4o'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, None, "a sum past bigint is stored as unknown");
    let (uncached, read): (Option<i64>, Option<i64>) =
        sqlx::query_as("select uncached_input_tokens, cache_read_input_tokens from usage_slots where model = 'gpt-4o'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((uncached, read), (None, None), "uncached input saturates per row at i64::MAX: 3 of them overflow");
    let request = json!({"project_id": PROJECT, "start": T0, "end": at(3_600_000), "granularity": 3600,
        "usage_metrics": [{"metric": "input_tokens", "aggregations": ["sum"]}, {"metric": "output_tokens", "aggregations": ["sum"]}]});
    let answer = app.ok("/calls/stats", request.clone()).await;
    assert_eq!(answer["usage_buckets"][0]["sum_input_tokens"], json!(i64::MAX), "3 × 9e18 saturates, read raw");
    assert_eq!(answer["usage_buckets"][0]["sum_output_tokens"], json!(3));

    // A new call in the same slot appends a row that fits: the slot's gpt-4o rows are still
    // read raw, and the appended row is not counted on top of them.
    ingest(
        &app,
        vec![(
            start("h9", &at(90_000), json!({"trace_id": "h9", "op_name": op(1)})),
            Some(end(
                "h9",
                &at(90_500),
                json!({"summary": {"usage": {"gpt-4o": {"input_tokens": 5, "output_tokens": 2}}}}),
            )),
        )],
    )
    .await;
    assert_eq!(app.count_rows("rollup_dirty where covered").await, 1, "the new call's slot is covered");
    assert_eq!(app.count_rows("usage_slots where model = 'gpt-4o'").await, 2, "its row is appended");
    let answer = app.ok("/calls/stats", request).await;
    assert_eq!(answer["usage_buckets"][0]["sum_input_tokens"], json!(i64::MAX));
    assert_eq!(answer["usage_buckets"][0]["sum_output_tokens"], json!(5));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn new_calls_append_rollup_rows_that_stats_read_before_any_rebuild(pool: PgPool) {
    let app = TestApp::new(pool).await;
    // Six batches of new calls, as a live app sends them: each appends its own rows.
    let calls: Vec<_> = (0..300).map(call).collect();
    for batch in calls.chunks(50) {
        ingest(&app, batch.to_vec()).await;
    }
    let marks = app.count_rows("rollup_dirty").await;
    assert!(marks > 0);
    assert_eq!(app.count_rows("rollup_dirty where covered").await, marks, "new calls cover their slots");
    let stacked = "(select 1 from call_slots group by minutes, slot having count(*) > 1) s";
    assert!(app.count_rows(stacked).await > 0, "several batches append to one slot");
    assert_eq!(app.count_rows("call_latency_pages").await, 0, "appended rows list their latencies");

    // The answers come from those rows: spoil them and the answer changes.
    let request = dashboard(T0, &at(3 * 3_600_000), "UTC", 900, json!(null));
    let before = app.ok("/calls/stats", request.clone()).await;
    assert_eq!(total_calls(&before), 300);
    sqlx::query("update call_slots set calls = calls + 1000").execute(&app.pool).await.unwrap();
    assert_ne!(app.ok("/calls/stats", request.clone()).await, before, "stats read the appended rows");
    sqlx::query("update call_slots set calls = calls - 1000").execute(&app.pool).await.unwrap();

    // Exactly the calls' answers, before and after a rebuild folds the rows into one per slot.
    same_both_ways(&app).await;
    assert_eq!(app.count_rows(stacked).await, 0, "a rebuild leaves one row per slot");
    assert_eq!(app.ok("/calls/stats", request.clone()).await, before);

    // The first ends of running calls (every eleventh: started, never ended) append what they
    // add, latency, error and usage, without counting the calls again: their slots stay covered.
    let running: Vec<Value> = (0..300).filter(|n| n % 11 == 3).map(first_end).collect();
    send(&app, running.clone()).await;
    assert!(app.count_rows("rollup_dirty").await > 0);
    assert_eq!(app.count_rows("rollup_dirty where not covered").await, 0, "first ends cover their slots");
    assert!(app.count_rows("call_slots where calls = 0").await > 0, "ends append rows that count no call");
    assert!(
        app.count_rows("usage_slots").await > app.count_rows("(select distinct slot, model from usage_slots) s").await
    );
    let answers = same_both_ways(&app).await;
    assert_eq!(total_calls(&app.ok("/calls/stats", request.clone()).await), 300, "no call is counted twice");

    // Sent again unchanged, they change nothing and mark nothing; with another exception,
    // they change calls that have ended: not covered, read raw.
    send(&app, running.clone()).await;
    assert_eq!(app.count_rows("rollup_dirty").await, 0);
    let changed = running
        .into_iter()
        .map(|mut item| {
            item["req"]["end"]["exception"] = json!("ValueError: changed");
            item
        })
        .collect();
    send(&app, changed).await;
    assert!(app.count_rows("rollup_dirty where not covered").await > 0);
    assert_ne!(same_both_ways(&app).await, answers);

    // A bulk write (more calls than a row lists) is left to the rebuild.
    let bulk: Vec<_> = (0..200)
        .map(|n| {
            let id = format!("bulk{n}");
            (
                start(&id, &at(4 * 3_600_000 + n as i64), json!({"trace_id": id})),
                Some(end(&id, &at(4 * 3_600_000 + 500), json!({}))),
            )
        })
        .collect();
    ingest(&app, bulk).await;
    assert_eq!(app.count_rows("rollup_dirty where not covered").await, 1);
    assert_eq!(app.count_rows("rollup_dirty where covered").await, 0);
    same_both_ways(&app).await;
}

/// The end of running call `n` (see [`call`]), late: an error on every other one, usage of
/// two models.
fn first_end(n: u64) -> Value {
    let exception = (n % 2 == 0).then_some("TimeoutError: late");
    let usage = json!({
        MODELS[0]: {"input_tokens": 100 + n, "output_tokens": n % 13, "requests": 1},
        MODELS[2]: {"input_tokens": 7, "output_tokens": 3, "total_tokens": 10, "requests": 2},
    });
    end_item(end(
        &format!("c{n}"),
        &at(3 * 3_600_000 - 1),
        json!({"exception": exception, "summary": {"usage": usage}}),
    ))
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_first_end_of_a_running_call_is_counted_once_when_sent_by_racing_batches(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let running: Vec<(Value, Option<Value>)> = (0..300).filter(|n| n % 11 == 3).map(|n| (call(n).0, None)).collect();
    ingest(&app, running).await;
    weave_trace_server::store::slots::refresh_everything(&app.pool).await.unwrap();
    // Four batches carrying the same first ends at once: each end is appended by whichever
    // batch ends its call first; the others wait for its lock, find the call ended and, writing
    // the same values, change nothing.
    let ends: Vec<Value> = (0..300).filter(|n| n % 11 == 3).map(first_end).collect();
    tokio::join!(
        send(&app, ends.clone()),
        send(&app, ends.clone()),
        send(&app, ends.clone()),
        send(&app, ends.clone())
    );
    let end_rows: i64 = sqlx::query_scalar("select count(*) from call_slots s where s.minutes = 15 and s.calls = 0")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(end_rows > 0, "the first ends appended");
    same_both_ways(&app).await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn looking_up_the_running_calls_of_some_ends_probes_each_id_rather_than_scanning_the_project(pool: PgPool) {
    use weave_trace_server::store::calls::LOCK_RUNNING;
    // A project of many ended calls, as the planner sees it at scale: almost none running.
    sqlx::query(
        "insert into calls (project_id, id, trace_id, op_name, started_at, ended_at)
         select $1, 'e' || i, 'e' || i, 'op', now() - interval '1 hour', now() from generate_series(1, 40000) i",
    )
    .bind(PROJECT)
    .execute(&pool)
    .await
    .unwrap();
    // Before its first analyze (as after a burst of writes) and after it.
    for analyzed in [false, true] {
        if analyzed {
            sqlx::query("analyze calls").execute(&pool).await.unwrap();
        }
        let plan: Vec<String> = sqlx::query_scalar(&format!("explain {LOCK_RUNNING}"))
            .bind(PROJECT)
            .bind((1..=100).map(|i| format!("e{i}")).collect::<Vec<_>>())
            .fetch_all(&pool)
            .await
            .unwrap();
        let plan = plan.join("\n");
        assert!(plan.contains("calls_pkey") && !plan.contains("calls_project_started"), "analyzed {analyzed}: {plan}");
    }
}

/// Call `n` of a busy half hour: most on one op, latencies with many exact ties (0, 1 and 5 ms),
/// some spread over six decades, a few ending before they start.
fn busy_call(n: u64) -> (Value, Option<Value>) {
    let started = (n * 7_919) as i64 % 1_800_000;
    let id = format!("b{n}");
    let op_name = if n % 5 == 0 { op(1) } else { op(2) };
    let parent = (n % 3 != 0).then(|| format!("b{}", n - n % 3));
    let start =
        start(&id, &at(started), json!({"trace_id": format!("bt{}", n / 3), "parent_id": parent, "op_name": op_name}));
    if n % 97 == 5 {
        return (start, None);
    }
    let latency_us: i64 = match n % 10 {
        0 => 0,
        1 => 1_000,
        2 | 3 => 5_000,
        4 if n % 40 == 4 => -((n * 31) as i64 % 7_000),
        _ => (((n * 2_654_435_761) % 1_000_000) as f64 / 1_000_000.0 * 13.8).exp() as i64,
    };
    let exception = (n % 13 == 0).then_some("ValueError");
    let end = end(
        &id,
        &(t0() + TimeDelta::microseconds(started * 1000 + latency_us)).to_rfc3339(),
        json!({"exception": exception}),
    );
    (start, Some(end))
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn paged_latencies_answer_every_percentile_exactly_like_the_calls(pool: PgPool) {
    let app = TestApp::new(pool).await;
    // ~1,000 calls a quarter hour: whole slots and the busy op's groups keep their latencies in
    // pages, the quiet op's groups list them.
    let calls: Vec<_> = (0..2_000).map(busy_call).collect();
    ingest(&app, calls).await;
    let everything = json!({"$expr": {"$not": [{"$eq": [{"$getField": "id"}, {"$literal": ""}]}]}});
    let latency = json!([{"metric": "latency_ms", "aggregations": ["sum", "avg", "min", "max", "count", "count_true", "count_false"],
                          "percentiles": [0, 0.1, 1, 5, 25, 33.3, 50, 75, 90, 95, 99, 99.9, 100]}]);
    let requests = [
        (T0.to_string(), at(1_800_000), "UTC", 900, json!(null)),
        (T0.to_string(), at(1_800_000), "UTC", 3600, json!(null)),
        // Whole hours: read from hour rows and their pages.
        (at(-3_600_000), at(7_200_000), "UTC", 3600, json!(null)),
        (at(-7_200_000), at(7_200_000), "America/New_York", 86_400, json!({"op_names": [op(2)]})),
        (at(-7_003), at(1_800_000 - 61_000), "America/New_York", 1800, json!(null)),
        (T0.to_string(), at(1_800_000), "Asia/Kathmandu", 2700, json!(null)),
        (T0.to_string(), at(1_800_000), "UTC", 1800, json!({"op_names": [op(2)]})),
        (T0.to_string(), at(1_800_000), "UTC", 900, json!({"op_names": [op(2)], "trace_roots_only": true})),
    ];
    let same_both_ways = || async {
        for (start, end, timezone, granularity, filter) in &requests {
            let request = json!({"project_id": PROJECT, "start": start, "end": end, "timezone": timezone,
                                 "granularity": granularity, "filter": filter, "call_metrics": latency});
            let mut raw_request = request.clone();
            merge(&mut raw_request, json!({"query": everything}));
            let fast = app.ok("/calls/stats", request.clone()).await;
            assert_eq!(
                fast,
                app.ok("/calls/stats", raw_request).await,
                "paged rollups and calls disagree on {request}"
            );
        }
    };
    weave_trace_server::store::slots::refresh_everything(&app.pool).await.unwrap();
    same_both_ways().await;
    let pages = app.count_rows("call_latency_pages").await;
    assert!(pages >= 2 * 4 * 2, "whole slots and the busy op's groups are paged ({pages} pages)");
    let hour_pages = app.count_rows("call_latency_pages where minutes = 60").await;
    assert!(hour_pages >= 2 * 8, "the hour's whole and busy op groups are paged ({hour_pages} pages)");
    // The whole-hour requests are served by the hour rows: spoil the pages of the hours' whole
    // groups and they differ.
    sqlx::query(
        "update call_latency_pages set latencies = substring(latencies from 9) || substring(latencies for 8)
         where minutes = 60 and part = 0",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let request = json!({"project_id": PROJECT, "start": at(-3_600_000), "end": at(7_200_000), "timezone": "UTC",
                         "granularity": 3600, "call_metrics": latency});
    let mut raw_request = request.clone();
    merge(&mut raw_request, json!({"query": everything}));
    let (spoiled, raw) = (app.post("/calls/stats", request).await, app.ok("/calls/stats", raw_request).await);
    assert_ne!(spoiled.body, raw, "hour pages are read for whole hours");
    sqlx::query("insert into rollup_dirty (project_id, slot) select distinct project_id, slot from call_slots")
        .execute(&app.pool)
        .await
        .unwrap();
    weave_trace_server::store::slots::refresh_everything(&app.pool).await.unwrap();
    same_both_ways().await;

    // Late ends, deletes and a new call move values between bins and pages.
    let late: Vec<Value> = (0..2_000)
        .filter(|n| n % 97 == 5)
        .map(|n| end_item(end(&format!("b{n}"), &at(1_799_999), json!({}))))
        .collect();
    send(&app, late).await;
    app.ok("/calls/delete", json!({"project_id": PROJECT, "call_ids": ["b3", "b300", "b1201"]})).await;
    ingest(&app, vec![busy_call(5_000)]).await;
    same_both_ways().await;
    weave_trace_server::store::slots::refresh_everything(&app.pool).await.unwrap();
    same_both_ways().await;

    // A write whose transaction is open while the refresher rebuilds its slot's pages (dirty
    // from a committed write too): its mark stays, the next request reads the slot raw, and
    // the next refresh pages it.
    ingest(&app, vec![busy_call(5_001)]).await;
    let mut writer = app.pool.begin().await.unwrap();
    sqlx::query("update calls set ended_at = started_at + interval '2 hours' where project_id = $1 and id = 'b7'")
        .bind(PROJECT)
        .execute(&mut *writer)
        .await
        .unwrap();
    weave_trace_server::store::slots::refresh_everything(&app.pool).await.unwrap();
    writer.commit().await.unwrap();
    assert!(app.count_rows("rollup_dirty").await > 0, "the racing write's mark survived the refresh");
    same_both_ways().await;
    weave_trace_server::store::slots::refresh_everything(&app.pool).await.unwrap();
    assert_eq!(app.count_rows("rollup_dirty").await, 0);
    same_both_ways().await;

    // New calls into paged slots append listed rows beside them: percentiles merge both.
    ingest(&app, (5_002..5_012).map(busy_call).collect()).await;
    assert!(app.count_rows("rollup_dirty").await > 0);
    assert_eq!(app.count_rows("rollup_dirty where not covered").await, 0, "the new calls' slots are covered");
    same_both_ways().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_write_committing_while_a_rebuild_waits_is_counted_once(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    ingest(&app, (0..50).map(call).collect()).await;
    weave_trace_server::store::slots::refresh_everything(&pool).await.unwrap();
    ingest(&app, (50..60).map(call).collect()).await;

    // Hold the rollup rows, so the next rebuild stops where it deletes them; a write of new
    // calls into the same hours commits while it waits.
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("select 1 from call_slots for update").execute(&mut *holder).await.unwrap();
    let rebuild = tokio::spawn({
        let pool = pool.clone();
        async move { weave_trace_server::store::slots::refresh_everything(&pool).await }
    });
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    ingest(&app, (60..100).map(call).collect()).await;
    holder.commit().await.unwrap();
    rebuild.await.unwrap().unwrap();

    // The write's calls are either in the rebuilt rows or in its own: not in both.
    let answers = same_both_ways(&app).await;
    assert_eq!(total_calls(&answers[0]), 100);
}
