//! `/calls/stats` (API.md §4), with expected numbers worked out by hand from the spec.
use serde_json::{json, Value};
use sqlx::PgPool;
use weave_trace_server::store::MIGRATOR;

use crate::support::*;

/// A finished call starting at `start` lasting `ms` milliseconds (None: still running).
fn call(id: &str, start: &str, ms: Option<i64>, extra_end: Value) -> (Value, Option<Value>) {
    let started = chrono::DateTime::parse_from_rfc3339(start).unwrap();
    let end = ms.map(|ms| {
        let ended = (started + chrono::TimeDelta::milliseconds(ms)).to_rfc3339();
        end(id, &ended, extra_end)
    });
    (start_json(id, start), end)
}

fn start_json(id: &str, at: &str) -> Value {
    start(id, at, json!({"trace_id": format!("t-{id}")}))
}

async fn stats(app: &TestApp, body: Value) -> Value {
    let mut body = body;
    merge(&mut body, json!({"project_id": PROJECT}));
    app.ok("/calls/stats", body).await
}

fn column(buckets: &Value, key: &str) -> Vec<Value> {
    buckets.as_array().unwrap().iter().map(|b| b[key].clone()).collect()
}

fn counts(res: &Value) -> Vec<i64> {
    column(&res["call_buckets"], "count").iter().map(|v| v.as_i64().unwrap()).collect()
}

fn timestamps(res: &Value) -> Vec<String> {
    column(&res["call_buckets"], "timestamp").iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

const COUNT_ONLY: &str = r#"[{"metric": "call_count"}]"#;

fn count_only() -> Value {
    serde_json::from_str(COUNT_ONLY).unwrap()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn new_york_daily_buckets_follow_local_midnight_across_both_dst_changes(pool: PgPool) {
    let app = TestApp::new(pool).await;
    ingest(
        &app,
        vec![
            call("a", "2025-03-08T13:00:00Z", Some(1), json!({})),
            call("b", "2025-03-09T04:59:59Z", Some(1), json!({})), // 23:59:59 EST on the 8th
            call("c", "2025-03-09T05:00:00Z", Some(1), json!({})), // midnight of the 23-hour day
            call("d", "2025-03-10T03:59:00Z", Some(1), json!({})), // 23:59 EDT on the 9th
            call("e", "2025-03-10T04:00:00Z", Some(1), json!({})),
            call("f", "2025-11-03T04:30:00Z", Some(1), json!({})), // 23:30 EST on Nov 2, a 25-hour day
        ],
    )
    .await;
    let spring = stats(
        &app,
        json!({"start": "2025-03-08T12:00:00Z", "end": "2025-03-11T12:00:00Z", "granularity": 86400,
        "timezone": "America/New_York", "call_metrics": count_only()}),
    )
    .await;
    assert_eq!(
        timestamps(&spring),
        [
            "2025-03-08T00:00:00-05:00",
            "2025-03-09T00:00:00-05:00",
            "2025-03-10T00:00:00-04:00",
            "2025-03-11T00:00:00-04:00"
        ]
    );
    assert_eq!(counts(&spring), [2, 2, 1, 0]);
    assert_eq!(spring["timezone"], "America/New_York");
    assert_eq!(spring["granularity"], 86400);

    let fall = stats(
        &app,
        json!({"start": "2025-11-01T12:00:00Z", "end": "2025-11-04T12:00:00Z", "granularity": 86400,
        "timezone": "America/New_York", "call_metrics": count_only()}),
    )
    .await;
    assert_eq!(
        timestamps(&fall),
        [
            "2025-11-01T00:00:00-04:00",
            "2025-11-02T00:00:00-04:00",
            "2025-11-03T00:00:00-05:00",
            "2025-11-04T00:00:00-05:00"
        ]
    );
    assert_eq!(counts(&fall), [0, 1, 0, 0]);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn on_spring_forward_night_the_02_00_label_merges_into_03_00(pool: PgPool) {
    let app = TestApp::new(pool).await;
    ingest(
        &app,
        vec![
            call("a", "2025-03-09T06:59:59Z", Some(1), json!({})), // 01:59:59 EST
            call("b", "2025-03-09T07:00:00Z", Some(1), json!({})), // 03:00 EDT
            call("c", "2025-03-09T07:30:00Z", Some(1), json!({})),
        ],
    )
    .await;
    let res = stats(
        &app,
        json!({"start": "2025-03-09T05:00:00Z", "end": "2025-03-09T09:00:00Z", "granularity": 3600,
        "timezone": "America/New_York", "call_metrics": count_only()}),
    )
    .await;
    assert_eq!(
        timestamps(&res),
        [
            "2025-03-09T00:00:00-05:00",
            "2025-03-09T01:00:00-05:00",
            "2025-03-09T03:00:00-04:00",
            "2025-03-09T04:00:00-04:00"
        ]
    );
    assert_eq!(counts(&res), [0, 1, 2, 0]);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn on_fall_back_night_the_01_00_bucket_lasts_two_hours(pool: PgPool) {
    let app = TestApp::new(pool).await;
    ingest(
        &app,
        vec![
            call("a", "2025-11-02T05:10:00Z", Some(1), json!({})), // 01:10 EDT
            call("b", "2025-11-02T06:10:00Z", Some(1), json!({})), // 01:10 EST
            call("c", "2025-11-02T07:10:00Z", Some(1), json!({})), // 02:10 EST
        ],
    )
    .await;
    let res = stats(
        &app,
        json!({"start": "2025-11-02T03:00:00Z", "end": "2025-11-02T08:00:00Z", "granularity": 3600,
        "timezone": "America/New_York", "call_metrics": count_only()}),
    )
    .await;
    assert_eq!(
        timestamps(&res),
        [
            "2025-11-01T23:00:00-04:00",
            "2025-11-02T00:00:00-04:00",
            "2025-11-02T01:00:00-04:00",
            "2025-11-02T02:00:00-05:00"
        ]
    );
    assert_eq!(counts(&res), [0, 0, 2, 1]);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn kolkata_hourly_buckets_sit_on_the_half_hour_of_utc(pool: PgPool) {
    let app = TestApp::new(pool).await;
    ingest(
        &app,
        vec![
            call("a", "2025-01-15T00:00:00Z", Some(1), json!({})),
            call("b", "2025-01-15T00:30:00Z", Some(1), json!({})),
        ],
    )
    .await;
    let res = stats(
        &app,
        json!({"start": "2025-01-15T00:00:00Z", "end": "2025-01-15T03:00:00Z", "granularity": 3600,
        "timezone": "Asia/Kolkata", "call_metrics": count_only()}),
    )
    .await;
    assert_eq!(
        timestamps(&res),
        [
            "2025-01-15T05:00:00+05:30",
            "2025-01-15T06:00:00+05:30",
            "2025-01-15T07:00:00+05:30",
            "2025-01-15T08:00:00+05:30"
        ]
    );
    assert_eq!(counts(&res), [1, 1, 0, 0]);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn lord_howes_half_hour_dst_end_makes_a_ninety_minute_bucket(pool: PgPool) {
    let app = TestApp::new(pool).await;
    ingest(
        &app,
        vec![
            call("a", "2025-04-05T14:10:00Z", Some(1), json!({})), // 01:10 +11:00
            call("b", "2025-04-05T15:10:00Z", Some(1), json!({})), // 01:40 +10:30, still the 01:00 label
            call("c", "2025-04-05T15:40:00Z", Some(1), json!({})), // 02:10 +10:30
        ],
    )
    .await;
    let res = stats(
        &app,
        json!({"start": "2025-04-05T14:00:00Z", "end": "2025-04-05T17:00:00Z", "granularity": 3600,
        "timezone": "Australia/Lord_Howe", "call_metrics": count_only()}),
    )
    .await;
    assert_eq!(
        timestamps(&res),
        ["2025-04-06T01:00:00+11:00", "2025-04-06T02:00:00+10:30", "2025-04-06T03:00:00+10:30"]
    );
    assert_eq!(counts(&res), [2, 1, 0]);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn utc_buckets_equal_plain_epoch_flooring(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let start = 1_736_938_803i64; // 2025-01-15T11:00:03Z
    let g = 7;
    let offsets = [0i64, 3, 4, 6, 7, 13, 20, 55, 69];
    let at = |s: i64| chrono::DateTime::from_timestamp(s, 0).unwrap().to_rfc3339();
    ingest(&app, offsets.iter().map(|o| call(&format!("c{o}"), &at(start + o), Some(1), json!({}))).collect()).await;
    let res =
        stats(&app, json!({"start": at(start), "end": at(start + 70), "granularity": g, "call_metrics": count_only()}))
            .await;
    let first = start.div_euclid(g) * g;
    let expected_stamps: Vec<String> = (0..)
        .map(|k| first + k * g)
        .take_while(|b| *b < start + 70)
        .map(|b| chrono::DateTime::from_timestamp(b, 0).unwrap().format("%Y-%m-%dT%H:%M:%S+00:00").to_string())
        .collect();
    assert_eq!(timestamps(&res), expected_stamps);
    let mut expected_counts = vec![0i64; expected_stamps.len()];
    for o in offsets {
        expected_counts[((start + o).div_euclid(g) * g - first) as usize / g as usize] += 1;
    }
    assert_eq!(counts(&res), expected_counts);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_window_without_calls_has_zero_filled_buckets_in_the_documented_shape(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let res = stats(&app, json!({"start": "2025-01-15T11:00:00Z", "end": "2025-01-15T11:05:00Z", "granularity": 300,
        "call_metrics": [{"metric": "latency_ms", "aggregations": ["sum", "avg", "min", "max", "count"], "percentiles": [50]},
                         {"metric": "error_count", "aggregations": ["count_true"]}],
        "usage_metrics": [{"metric": "total_tokens"}]})).await;
    let bucket = serde_json::to_string(&res["call_buckets"][0]).unwrap();
    assert_eq!(
        bucket,
        r#"{"timestamp":"2025-01-15T11:00:00+00:00","sum_latency_ms":0,"avg_latency_ms":0.0,"min_latency_ms":null,"max_latency_ms":null,"count_latency_ms":0,"p50_latency_ms":null,"count_true_error_count":0,"count":0}"#
    );
    assert_eq!(res["usage_buckets"], json!([]));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn start_equal_to_end_is_an_empty_window(pool: PgPool) {
    let app = TestApp::new(pool).await;
    ingest(
        &app,
        vec![call("a", "2025-01-15T11:00:00Z", Some(5), json!({"summary": {"usage": {"m": {"input_tokens": 1}}}}))],
    )
    .await;
    let res = stats(
        &app,
        json!({"start": "2025-01-15T11:00:00Z", "end": "2025-01-15T11:00:00Z",
        "call_metrics": count_only(), "usage_metrics": [{"metric": "input_tokens"}]}),
    )
    .await;
    assert_eq!(
        res,
        json!({"start": "2025-01-15T11:00:00Z", "end": "2025-01-15T11:00:00Z", "granularity": 300, "timezone": "UTC",
        "call_buckets": [], "usage_buckets": []})
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn granularity_is_raised_to_keep_at_most_ten_thousand_buckets(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let res = stats(&app, json!({"start": "2025-01-01T00:00:00Z", "end": "2025-02-01T00:00:00Z", "granularity": 60, "call_metrics": count_only()})).await;
    assert_eq!(res["granularity"], 268);
    // Buckets of 268 s from floor(start / 268) · 268 up to the end, 31 days later.
    let (start, end) = (1_735_689_600i64, 1_738_368_000i64);
    let expected = (end - 1).div_euclid(268) - start.div_euclid(268) + 1;
    assert_eq!(expected, 9995);
    assert_eq!(res["call_buckets"].as_array().unwrap().len() as i64, expected);
    let auto = stats(&app, json!({"start": "2025-01-01T00:00:00Z", "end": "2025-01-01T06:00:00Z"})).await;
    assert_eq!(auto["granularity"], 3600);
    assert_eq!((auto["call_buckets"].clone(), auto["usage_buckets"].clone()), (json!([]), json!([])));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn every_aggregation_and_a_fractional_percentile_are_exact(pool: PgPool) {
    let app = TestApp::new(pool).await;
    ingest(
        &app,
        vec![
            call("a", "2025-01-15T11:00:00Z", Some(100), json!({})),
            call("b", "2025-01-15T11:01:00Z", Some(150), json!({"exception": "boom"})),
            call("c", "2025-01-15T11:02:00Z", Some(200), json!({})),
            call("running", "2025-01-15T11:03:00Z", None, json!({})),
        ],
    )
    .await;
    let res = stats(&app, json!({"start": "2025-01-15T11:00:00Z", "end": "2025-01-15T11:05:00Z",
        "call_metrics": [
            {"metric": "latency_ms", "aggregations": ["sum", "avg", "min", "max", "count", "count_true", "count_false"], "percentiles": [50, 95, 99.9]},
            {"metric": "call_count", "aggregations": ["sum", "min", "max"]},
            {"metric": "error_count", "aggregations": ["sum", "avg", "count", "count_true", "count_false"]},
        ]})).await;
    assert_eq!(serde_json::to_string(&res["call_buckets"]).unwrap(), serde_json::to_string(&json!([{
        "timestamp": "2025-01-15T11:00:00+00:00",
        "sum_latency_ms": 450.0, "avg_latency_ms": 150.0, "min_latency_ms": 100.0, "max_latency_ms": 200.0,
        "count_latency_ms": 3, "count_true_latency_ms": 0, "count_false_latency_ms": 0,
        "p50_latency_ms": 150.0, "p95_latency_ms": 195.0, "p99.9_latency_ms": 199.9,
        "sum_call_count": 4, "min_call_count": 1, "max_call_count": 1,
        "sum_error_count": 1, "avg_error_count": 0.25, "count_error_count": 4, "count_true_error_count": 1, "count_false_error_count": 3,
        "count": 4,
    }])).unwrap());
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn deleted_calls_are_not_counted(pool: PgPool) {
    let app = TestApp::new(pool).await;
    ingest(
        &app,
        vec![
            call("a", "2025-01-15T11:00:00Z", Some(1), json!({})),
            call("b", "2025-01-15T11:00:01Z", Some(1), json!({})),
        ],
    )
    .await;
    app.ok("/calls/delete", json!({"project_id": PROJECT, "call_ids": ["b"]})).await;
    let res = stats(
        &app,
        json!({"start": "2025-01-15T11:00:00Z", "end": "2025-01-15T11:05:00Z", "call_metrics": count_only()}),
    )
    .await;
    assert_eq!(counts(&res), [1]);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn boundaries_belong_to_the_later_bucket_end_is_excluded_and_start_is_exact_to_the_microsecond(pool: PgPool) {
    let app = TestApp::new(pool).await;
    ingest(
        &app,
        vec![
            call("before", "2025-01-15T11:00:00.000000Z", Some(1), json!({})),
            call("at-start", "2025-01-15T11:00:00.000001Z", Some(1), json!({})),
            call("boundary", "2025-01-15T11:05:00Z", Some(1), json!({})),
            call("at-end", "2025-01-15T11:10:00Z", Some(1), json!({})),
        ],
    )
    .await;
    let res = stats(&app, json!({"start": "2025-01-15T11:00:00.000001Z", "end": "2025-01-15T11:10:00Z", "granularity": 300, "call_metrics": count_only()})).await;
    assert_eq!(res["start"], "2025-01-15T11:00:00.000001Z");
    assert_eq!(timestamps(&res), ["2025-01-15T11:00:00+00:00", "2025-01-15T11:05:00+00:00"]);
    assert_eq!(counts(&res), [1, 1]);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn request_offsets_are_converted_to_utc(pool: PgPool) {
    let app = TestApp::new(pool).await;
    ingest(&app, vec![call("a", "2025-01-15T11:00:00Z", Some(1), json!({}))]).await;
    let res = stats(
        &app,
        json!({"start": "2025-01-15T16:30:00+05:30", "end": "2025-01-15T17:30:00+05:30", "call_metrics": count_only()}),
    )
    .await;
    assert_eq!(
        (res["start"].clone(), res["end"].clone()),
        (json!("2025-01-15T11:00:00Z"), json!("2025-01-15T12:00:00Z"))
    );
    assert_eq!(counts(&res).iter().sum::<i64>(), 1);
    assert_eq!(counts(&res)[0], 1);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn usage_buckets_hold_every_model_in_every_bucket_ordered_by_bucket_then_model_bytes(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let usage = |u: Value| json!({"summary": {"usage": u}});
    ingest(
        &app,
        vec![
            call(
                "a",
                "2025-01-15T11:00:00Z",
                Some(1),
                usage(json!({
            "gpt-4o": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            "Zeta": {"input_tokens": 3, "output_tokens": 1, "cache_read_input_tokens": 2}})),
            ),
            call(
                "b",
                "2025-01-15T11:01:00Z",
                Some(1),
                usage(json!({"gpt-4o": {"prompt_tokens": 20, "completion_tokens": 1}})),
            ),
            call("c", "2025-01-15T11:00:30Z", None, json!({})),
        ],
    )
    .await;
    let res = stats(
        &app,
        json!({"start": "2025-01-15T11:00:00Z", "end": "2025-01-15T11:10:00Z", "granularity": 300,
        "usage_metrics": [{"metric": "input_tokens", "aggregations": ["sum", "avg", "max"]}, {"metric": "total_tokens", "percentiles": [50]}, // aggregations omitted: sum
                          {"metric": "cache_read_input_tokens"}, {"metric": "output_tokens", "aggregations": ["min"]},
                          {"metric": "cache_creation_input_tokens", "aggregations": ["count_false"]}]}),
    )
    .await;
    assert_eq!(res["call_buckets"], json!([]));
    assert_eq!(serde_json::to_string(&res["usage_buckets"]).unwrap(), serde_json::to_string(&json!([
        {"timestamp": "2025-01-15T11:00:00+00:00", "model": "Zeta", "sum_input_tokens": 3, "avg_input_tokens": 3.0, "max_input_tokens": 3,
         "sum_total_tokens": 4, "p50_total_tokens": 4.0, "sum_cache_read_input_tokens": 2, "min_output_tokens": 1, "count_false_cache_creation_input_tokens": 1, "count": 1},
        {"timestamp": "2025-01-15T11:00:00+00:00", "model": "gpt-4o", "sum_input_tokens": 30, "avg_input_tokens": 15.0, "max_input_tokens": 20,
         "sum_total_tokens": 36, "p50_total_tokens": 18.0, "sum_cache_read_input_tokens": 0, "min_output_tokens": 1, "count_false_cache_creation_input_tokens": 2, "count": 2},
        {"timestamp": "2025-01-15T11:05:00+00:00", "model": "Zeta", "sum_input_tokens": 0, "avg_input_tokens": 0.0, "max_input_tokens": null,
         "sum_total_tokens": 0, "p50_total_tokens": null, "sum_cache_read_input_tokens": 0, "min_output_tokens": null, "count_false_cache_creation_input_tokens": 0, "count": 0},
        {"timestamp": "2025-01-15T11:05:00+00:00", "model": "gpt-4o", "sum_input_tokens": 0, "avg_input_tokens": 0.0, "max_input_tokens": null,
         "sum_total_tokens": 0, "p50_total_tokens": null, "sum_cache_read_input_tokens": 0, "min_output_tokens": null, "count_false_cache_creation_input_tokens": 0, "count": 0},
    ])).unwrap());
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn every_filter_field_narrows_the_counted_calls(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let at = "2025-01-15T11:00:00Z";
    let op = |n: &str| format!("weave:///acme/app/op/{n}:v1");
    ingest(
        &app,
        vec![
            (
                start(
                    "root",
                    at,
                    json!({"op_name": op("root"), "thread_id": "th", "turn_id": "tu", "wb_run_id": "acme/app/r",
            "inputs": {"a": "weave:///acme/app/object/in:1"}}),
                ),
                Some(end(
                    "root",
                    at,
                    json!({"output": ["weave:///acme/app/object/out:1"],
            "summary": {"usage": {"m": {"input_tokens": 5}}}}),
                )),
            ),
            (
                start("kid", at, json!({"parent_id": "root", "op_name": op("kid")})),
                Some(end("kid", at, json!({"summary": {"usage": {"m": {"input_tokens": 7}}}}))),
            ),
            (start("solo", at, json!({"trace_id": "t2", "op_name": op("solo")})), None),
        ],
    )
    .await;
    let cases = [
        (json!({"op_names": ["weave:///acme/app/op/kid:*"]}), 1, 7),
        (json!({"input_refs": ["weave:///acme/app/object/in:1"]}), 1, 5),
        (json!({"output_refs": ["weave:///acme/app/object/out:*"]}), 1, 5),
        (json!({"parent_ids": ["root"]}), 1, 7),
        (json!({"trace_ids": ["t1"]}), 2, 12),
        (json!({"call_ids": ["solo", "kid"]}), 2, 7),
        (json!({"thread_ids": ["th"]}), 1, 5),
        (json!({"turn_ids": ["tu"]}), 1, 5),
        (json!({"wb_user_ids": ["alice"]}), 3, 12),
        (json!({"wb_run_ids": ["r"]}), 1, 5),
        (json!({"trace_roots_only": true}), 2, 5),
    ];
    for (filter, calls, tokens) in cases {
        let res = stats(
            &app,
            json!({"start": "2025-01-15T11:00:00Z", "end": "2025-01-15T11:05:00Z", "filter": filter,
            "call_metrics": count_only(), "usage_metrics": [{"metric": "input_tokens"}]}),
        )
        .await;
        assert_eq!(counts(&res), [calls], "{filter}");
        assert_eq!(res["usage_buckets"][0]["sum_input_tokens"], tokens, "{filter}");
    }
}

async fn rejected(app: &TestApp, body: Value) -> Value {
    let mut body = body;
    merge(&mut body, json!({"project_id": PROJECT}));
    let reply = app.post("/calls/stats", body).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    reply.body["detail"].clone()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn invalid_stats_requests_are_422_with_their_location(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let window = |extra: Value| {
        let mut body = json!({"start": "2025-01-15T11:00:00Z", "end": "2025-01-15T12:00:00Z"});
        merge(&mut body, extra);
        body
    };
    let d = rejected(&app, json!({"start": "2025-01-15T11:00:00Z", "end": "2025-01-15T10:00:00Z"})).await;
    assert_eq!((d[0]["loc"].clone(), d[0]["type"].clone()), (json!(["body"]), json!("value_error")));
    assert!(d[0]["msg"].as_str().unwrap().contains("CallStatsReq end must be after start"));
    let d = rejected(&app, json!({"start": "2025-01-01T00:00:00Z", "end": "2025-02-01T00:00:01Z"})).await;
    assert!(d[0]["msg"].as_str().unwrap().contains("CallStatsReq date range cannot exceed 31 days"));
    let d = rejected(&app, window(json!({"granularity": 0}))).await;
    assert_eq!(d[0]["loc"], json!(["body", "granularity"]));
    let d = rejected(&app, window(json!({"timezone": "Mars/Olympus"}))).await;
    assert_eq!(d[0]["loc"], json!(["body", "timezone"]));
    let d =
        rejected(&app, window(json!({"call_metrics": [{"metric": "latency_ms", "percentiles": [50, 100.5]}]}))).await;
    assert_eq!(d[0]["loc"], json!(["body", "call_metrics", 0, "percentiles", 1]));
    let d = rejected(&app, window(json!({"call_metrics": [{"metric": "latency_ms", "percentiles": [-1]}]}))).await;
    assert_eq!(d[0]["loc"], json!(["body", "call_metrics", 0, "percentiles", 0]));
    let d = rejected(&app, window(json!({"call_metrics": [{"metric": "call_count"}, {"metric": "call_count"}]}))).await;
    assert_eq!(d[0]["loc"], json!(["body", "call_metrics", 1, "metric"]));
    let d = rejected(
        &app,
        window(json!({"usage_metrics": [{"metric": "input_tokens", "aggregations": ["sum", "avg", "sum"]}]})),
    )
    .await;
    assert_eq!(d[0]["loc"], json!(["body", "usage_metrics", 0, "aggregations", 2]));
    let d =
        rejected(&app, window(json!({"call_metrics": [{"metric": "latency_ms", "percentiles": [50, 50.0]}]}))).await;
    assert_eq!(d[0]["loc"], json!(["body", "call_metrics", 0, "percentiles", 1]));
    let d = rejected(&app, window(json!({"call_metrics": [{"metric": "tokens"}]}))).await;
    assert_eq!(
        (d[0]["loc"].clone(), d[0]["type"].clone()),
        (json!(["body", "call_metrics", 0, "metric"]), json!("literal_error"))
    );
    let d =
        rejected(&app, window(json!({"call_metrics": [{"metric": "latency_ms", "aggregations": ["median"]}]}))).await;
    assert_eq!(d[0]["type"], "literal_error");
    let d =
        rejected(&app, window(json!({"usage_metrics": [{"metric": "total_cost"}, {"metric": "total_cost"}]}))).await;
    assert_eq!(d[0]["loc"], json!(["body", "usage_metrics", 1, "metric"]));
    // Several problems are reported together.
    let d = rejected(&app, window(json!({"granularity": 0, "timezone": "Nowhere"}))).await;
    assert_eq!(d.as_array().unwrap().len(), 2);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn stats_need_access_to_the_project(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let reply = app.post("/calls/stats", json!({"project_id": "other/app", "start": "2025-01-15T11:00:00Z"})).await;
    assert_eq!(reply.status, 403);
}
