//! The benchmark of issue 6: generate a realistic project, ingest it through the HTTP API, then
//! time the dashboard questions against this server and against straightforward SQL on a plain
//! schema (one `calls` table with a JSONB `summary`), on the same Postgres and the same data.
//!
//! It makes its own database (`wts_bench_<unix time>`, dropped afterwards unless `--keep`),
//! serves the app in-process on 127.0.0.1 (or runs `--server-bin` as a child process), and drives
//! it over real HTTP with several clients.
//! Output: a table on stdout and the same figures as JSON under `bench/results/`.
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{header, Method, Request, StatusCode};
use base64::Engine;
use chrono::{DateTime, TimeDelta, Utc};
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgPool};
use weave_trace_server::{app, keys, store, AppState, Settings};

/// Benchmark weave-trace-server against plain SQL.
#[derive(Debug, Parser)]
struct Args {
    /// Calls to generate and ingest.
    #[arg(long, default_value_t = 100_000)]
    calls: usize,
    /// Smoke mode: 10,000 calls, 5 runs per question (for CI).
    #[arg(long)]
    smoke: bool,
    /// Concurrent ingestion clients.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Timed runs per question against this server (p50 and p95 are over these).
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Timed runs per question of the plain-SQL baseline (slow at 1M calls: ~20 s a run).
    #[arg(long, default_value_t = 5)]
    baseline_runs: usize,
    /// Also time the dashboard request when the project reaches these sizes (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "100000,300000")]
    checkpoints: Vec<usize>,
    /// A Postgres database the benchmark may create databases from.
    #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    database_url: String,
    /// Where the JSON results go.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
    /// Load mode: drive `--load-clients` clients mixing ingestion, stats and reads for this
    /// many seconds, then read every acknowledged call back (instead of the benchmark).
    #[arg(long, default_value_t = 0)]
    load_secs: u64,
    /// Concurrent clients in load mode.
    #[arg(long, default_value_t = 64)]
    load_clients: usize,
    /// Stop after ingesting (measure ingestion alone).
    #[arg(long)]
    ingest_only: bool,
    /// Ingest in this many passes over the window, each in time order (pass k sends every
    /// `passes`-th trace from the k-th), so that every checkpoint finds the whole window filled,
    /// at a lower density: the growth then measures more calls per quarter hour, not more
    /// quarter hours. 1 sends everything in time order, as a live app does.
    #[arg(long, default_value_t = 1)]
    passes: usize,
    /// Load mode writes calls across the whole 30-day window instead of into its last hour.
    #[arg(long)]
    load_spread: bool,
    /// Load mode sends each batch's starts, then (its next write) their ends, as the weave SDK
    /// does, instead of whole calls.
    #[arg(long)]
    load_split_ends: bool,
    /// Keep the benchmark database afterwards.
    #[arg(long)]
    keep: bool,
    /// Run the server from this binary (`serve`) in a child process instead of in-process, so
    /// the peak RSS reported is the server's own (its kernel high-water mark).
    #[arg(long)]
    server_bin: Option<PathBuf>,
}

const PROJECT: &str = "bench/dashboard";
const WINDOW_DAYS: i64 = 30;
const CALLS_PER_BATCH: usize = 500;
const MODELS: [&str; 5] = [
    "gpt-4o",
    "claude-3-5-sonnet-20241022",
    "gemini-2.5-pro",
    "mistral-large",
    "meta-llama/Llama-3.3-70B-Instruct-Turbo",
];

fn window_start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-01-02T00:00:00Z").unwrap().to_utc()
}

fn window_end() -> DateTime<Utc> {
    window_start() + TimeDelta::days(WINDOW_DAYS)
}

/// A small deterministic hash (SplitMix64), so every call is a pure function of its position.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn draw(trace: u64, call: u64, salt: u64) -> u64 {
    mix(mix(trace.wrapping_mul(1_000_003) ^ call).wrapping_add(salt))
}

/// Trace sizes: mostly 1–50 calls, plus a few of 10,000 (fewer and smaller in small runs).
fn trace_sizes(calls: usize) -> Vec<usize> {
    let big = if calls >= 100_000 { 3 } else { 1 };
    let big_size = (calls / 10).min(10_000);
    let mut sizes = vec![big_size; big];
    let mut total = big * big_size;
    let mut t = 0u64;
    while total < calls {
        let size = (1 + draw(t, 0, 7) % 50) as usize;
        let size = size.min(calls - total);
        sizes.push(size);
        total += size;
        t += 1;
    }
    sizes
}

/// Trace `t`'s id. Ids sort in time order, as the weave SDK's do (UUIDv7: a millisecond
/// timestamp first), so index inserts land where a live app's do: at the end of each btree.
fn trace_id(t: usize) -> String {
    format!("t{t:08}")
}

/// The id of call `i` of trace `t`.
fn call_id(t: usize, i: usize) -> String {
    format!("t{t:08}-c{i:05}")
}

/// The start and end items of call `i` of trace `t` (of `size` calls, one of `traces`),
/// appended to `out` as JSON, each followed by a comma. Traces start in order through the
/// window, as an application reports them. Written as text (every string here is plain
/// ASCII), not built as JSON values: the generator shares the machine with the server it
/// measures, and building values cost it about as much CPU as the server's parsing.
fn call_items(t: usize, i: usize, size: usize, traces: usize, out: &mut String) {
    use std::fmt::Write;
    let (tu, iu) = (t as u64, i as u64);
    let spacing = (WINDOW_DAYS * 86_400 * 1_000_000) as u64 / traces.max(1) as u64;
    let offset = tu * spacing + draw(tu, 0, 1) % spacing.max(1);
    let root_start = window_start() + TimeDelta::microseconds(offset as i64);
    let started = root_start + TimeDelta::milliseconds((iu * 40) as i64 + (draw(tu, iu, 2) % 30) as i64);
    let parent = match i {
        0 => "null".to_string(),
        _ => format!("\"{}\"", call_id(t, (i - 1) / 4)),
    };
    let (op, version) = (draw(tu, iu, 3) % 20, 1 + draw(tu, iu, 4) % 3);
    let (id, trace) = (call_id(t, i), trace_id(t));
    let _ = write!(
        out,
        r#"{{"mode":"start","req":{{"start":{{"project_id":"{PROJECT}","id":"{id}","trace_id":"{trace}","parent_id":{parent},"op_name":"weave:///bench/dashboard/op/op{op}:v{version}","started_at":"{}","attributes":{{"env":"bench"}},"inputs":{{"i":{i},"size":{size}}}}}}}}},"#,
        started.to_rfc3339()
    );
    if draw(tu, iu, 5) % 100 == 0 {
        return; // ~1% still running
    }
    // Latency: mostly 50 ms – 2 s, with a long tail to 30 s.
    let r = draw(tu, iu, 6) % 1000;
    let latency_ms = if r < 950 { 50 + r * 2 } else { 2_000 + (r - 950) * 560 };
    let ended = started + TimeDelta::microseconds((latency_ms * 1000 + draw(tu, iu, 8) % 1000) as i64);
    let summary = if i > 0 || size == 1 {
        let model = MODELS[(draw(tu, iu, 9) % 5) as usize];
        let (input, output) = (100 + draw(tu, iu, 10) % 4000, 10 + draw(tu, iu, 11) % 800);
        let usage = match model {
            "gpt-4o" | "mistral-large" => format!(
                r#"{{"prompt_tokens":{input},"completion_tokens":{output},"total_tokens":{},"requests":1}}"#,
                input + output
            ),
            "claude-3-5-sonnet-20241022" => format!(
                r#"{{"input_tokens":{input},"output_tokens":{output},"cache_read_input_tokens":{},"requests":1}}"#,
                input / 4
            ),
            _ => format!(r#"{{"prompt_tokens":{input},"completion_tokens":{output},"requests":1}}"#),
        };
        format!(r#"{{"usage":{{"{model}":{usage}}}}}"#)
    } else {
        "{}".to_string()
    };
    let exception = if draw(tu, iu, 12) % 50 == 0 { r#""RuntimeError: bench""# } else { "null" };
    let _ = write!(
        out,
        r#"{{"mode":"end","req":{{"end":{{"project_id":"{PROJECT}","id":"{id}","ended_at":"{}","exception":{exception},"output":{{"ok":true}},"summary":{summary}}}}}}},"#,
        ended.to_rfc3339()
    );
}

/// Batches of at most `CALLS_PER_BATCH` calls: (trace, first call, last call exclusive) runs.
fn batches(sizes: &[usize], passes: usize) -> Vec<Vec<(usize, usize, usize)>> {
    let mut batches = Vec::new();
    let mut current = Vec::new();
    let mut room = CALLS_PER_BATCH;
    // Pass k sends every `passes`-th trace from the k-th, in time order.
    let passes = passes.max(1);
    let order = (0..passes).flat_map(|pass| (pass..sizes.len()).step_by(passes));
    for t in order {
        let size = sizes[t];
        let mut first = 0;
        while first < size {
            let take = room.min(size - first);
            current.push((t, first, first + take));
            first += take;
            room -= take;
            if room == 0 {
                batches.push(std::mem::take(&mut current));
                room = CALLS_PER_BATCH;
            }
        }
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

struct Server {
    client: HttpClient,
    base: String,
    auth: String,
}

impl Server {
    /// POST, panicking when the server cannot be reached (the benchmark needs every answer).
    async fn post(&self, path: &str, body: Bytes) -> (StatusCode, Bytes) {
        self.try_post(path, body).await.unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// POST; a failed connection is an error, not a panic (load mode counts them).
    async fn try_post(&self, path: &str, body: Bytes) -> Result<(StatusCode, Bytes), String> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("{}{path}", self.base))
            .header(header::AUTHORIZATION, &self.auth)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let response = self.client.request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        Ok((status, response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes()))
    }

    /// POST as a client that honours 503: come back after the server's Retry-After (1 s), up
    /// to five tries in all. The last reply, and how many 503s were retried.
    async fn post_retrying_busy(&self, path: &str, body: Bytes) -> (Result<(StatusCode, Bytes), String>, usize) {
        let mut reply = self.try_post(path, body.clone()).await;
        let mut retried = 0;
        while retried < 4 && matches!(&reply, Ok((StatusCode::SERVICE_UNAVAILABLE, _))) {
            retried += 1;
            tokio::time::sleep(Duration::from_secs(1)).await;
            reply = self.try_post(path, body.clone()).await;
        }
        (reply, retried)
    }

    async fn post_json(&self, path: &str, body: &Value) -> Value {
        let (status, bytes) = self.post(path, Bytes::from(body.to_string())).await;
        assert_eq!(status, StatusCode::OK, "{path}: {}", String::from_utf8_lossy(&bytes));
        if path == "/calls/stream_query" {
            return Value::Null;
        }
        serde_json::from_slice(&bytes).expect("json")
    }
}

/// p50 and p95 of durations, in milliseconds.
fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |p: f64| {
        let i = ((samples.len() - 1) as f64 * p).round() as usize;
        samples[i].as_secs_f64() * 1000.0
    };
    (at(0.5), at(0.95))
}

/// How long the background refresher took to catch up after a write.
struct Settled {
    /// Seconds until no slot was dirty; `None` if some still were at the deadline.
    current_s: Option<f64>,
    /// Seconds until nothing was left to vacuum or analyze either.
    maintained_s: Option<f64>,
}

/// Wait until the background refresher has rebuilt every dirty slot and left nothing to
/// vacuum or analyze, for at most `SETTLE_MAX`. A refresher still behind then is reported and
/// the run goes on (its stats requests read the stale slots raw): a 10M run is not thrown away.
async fn settle(db: &PgPool) -> Result<Settled, Box<dyn std::error::Error>> {
    const SETTLE_MAX: Duration = Duration::from_secs(600);
    let started = Instant::now();
    let mut current_s = None;
    let mut dirty: i64 = 0;
    while started.elapsed() < SETTLE_MAX {
        if current_s.is_none() {
            dirty = sqlx::query_scalar("select count(*) from rollup_dirty").fetch_one(db).await?;
            current_s = (dirty == 0).then(|| started.elapsed().as_secs_f64());
        }
        if current_s.is_some() && !store::slots::needs_maintenance(db).await? {
            return Ok(Settled { current_s, maintained_s: Some(started.elapsed().as_secs_f64()) });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "warning: after {} s the refresher had not caught up ({dirty} dirty slots left, or tables to maintain); timing anyway",
        SETTLE_MAX.as_secs()
    );
    Ok(Settled { current_s, maintained_s: None })
}

/// A `/proc/<pid>/status` field in MB: `VmRSS` (now) or `VmHWM` (the peak); this process's
/// when `pid` is None.
fn status_mb(pid: Option<u32>, field: &str) -> f64 {
    let path = pid.map_or("/proc/self/status".to_string(), |pid| format!("/proc/{pid}/status"));
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(field)).map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Whose memory the benchmark reports: the server child's alone, or the whole bench process's.
struct Memory {
    server: Option<std::process::Child>,
    sampled_peak: Arc<AtomicUsize>,
}

impl Memory {
    fn pid(&self) -> Option<u32> {
        self.server.as_ref().map(std::process::Child::id)
    }

    fn whose(&self) -> &'static str {
        match self.server {
            Some(_) => "the server process (kernel high-water mark)",
            None => "the bench process (server, clients and generator together)",
        }
    }

    /// In-process, sample this process's RSS every 200 ms into `sampled_peak` (its own VmHWM
    /// would also count the baseline's result sets); a child needs no samples (see `peak_mb`).
    fn sample(&self) -> Option<tokio::task::JoinHandle<()>> {
        let peak = self.sampled_peak.clone();
        self.server.is_none().then(|| {
            tokio::spawn(async move {
                loop {
                    peak.fetch_max(status_mb(None, "VmRSS:") as usize, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
        })
    }

    /// The peak so far: the child's kernel high-water mark (exact, between samples too), or
    /// this process's sampled peak.
    fn peak_mb(&self) -> usize {
        match self.server {
            Some(_) => status_mb(self.pid(), "VmHWM:") as usize,
            None => self.sampled_peak.load(Ordering::Relaxed).max(status_mb(None, "VmRSS:") as usize),
        }
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        if let Some(child) = &mut self.server {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Start `bin serve` on a free local port against `url` and wait until it accepts connections
/// (it listens once its migrations have run); the child and its address.
async fn spawn_server(
    bin: &std::path::Path,
    url: &str,
) -> Result<(std::process::Child, String), Box<dyn std::error::Error>> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr = format!("127.0.0.1:{port}");
    let child = std::process::Command::new(bin)
        .args(["serve", "--bind", &addr])
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn,sqlx::query=error")
        .stdout(std::process::Stdio::null())
        .spawn()?;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(&addr).await.is_ok() {
            return Ok((child, addr));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("{} did not start listening on {addr}", bin.display()).into())
}

/// A dashboard question: its short name (growth) and full name (the results table), zone, op
/// filter, days and granularity (None: the automatic one, days for 30 days).
type DashboardQuestion = (&'static str, &'static str, &'static str, Option<&'static str>, i64, Option<i64>);

/// The dashboard questions, timed at every checkpoint and against plain SQL at the end.
const DASHBOARD_QUESTIONS: [DashboardQuestion; 4] = [
    ("(a) UTC", "(a) dashboard, 30 d, UTC", "UTC", None, WINDOW_DAYS, None),
    ("(a) New York", "(a) dashboard, 30 d, New York", "America/New_York", None, WINDOW_DAYS, None),
    ("(b) one op", "(b) dashboard, one op", "UTC", Some("weave:///bench/dashboard/op/op3:v1"), WINDOW_DAYS, None),
    ("(c) 7 d hourly", "(c) 7 d hourly", "UTC", None, 7, Some(3600)),
];

/// The `/calls/stats` request of a dashboard question.
fn dashboard_question_request(&(_, _, zone, op, days, granularity): &DashboardQuestion) -> Value {
    dashboard_request(zone, op.map(|op| json!({"op_names": [op]})), days, granularity)
}

/// Time the dashboard questions at the project's current size.
async fn growth_point(server: &Arc<Server>, calls: usize, runs: usize) -> Value {
    let mut questions = serde_json::Map::new();
    for question in &DASHBOARD_QUESTIONS {
        let name = question.0;
        let (p50, p95) = time_ours(server, "/calls/stats", &dashboard_question_request(question), runs).await;
        eprintln!("{name} at {calls} calls: p50 {p50:.1} ms, p95 {p95:.1} ms");
        questions.insert(name.to_string(), json!({"p50_ms": p50, "p95_ms": p95}));
    }
    let utc = questions["(a) UTC"].clone();
    json!({"calls": calls, "p50_ms": utc["p50_ms"], "p95_ms": utc["p95_ms"], "questions": questions})
}

/// Bytes on disk of the server's tables (with their indexes and TOAST), largest first.
async fn disk_bytes(db: &PgPool) -> Result<std::collections::BTreeMap<String, i64>, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "select relname::text, pg_total_relation_size(relid) from pg_stat_user_tables
         where relname not like 'baseline%' and pg_total_relation_size(relid) > 0",
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().collect())
}

fn dashboard_request(timezone: &str, filter: Option<Value>, days: i64, granularity: Option<i64>) -> Value {
    json!({
        "project_id": PROJECT, "start": (window_end() - TimeDelta::days(days)).to_rfc3339(), "end": window_end().to_rfc3339(),
        "timezone": timezone, "granularity": granularity, "filter": filter,
        "call_metrics": [
            {"metric": "latency_ms", "aggregations": ["sum", "avg"], "percentiles": [50, 95, 99]},
            {"metric": "call_count"}, {"metric": "error_count"},
        ],
        "usage_metrics": [{"metric": "input_tokens"}, {"metric": "output_tokens"}, {"metric": "total_tokens"}, {"metric": "total_cost"}],
    })
}

/// The same question in plain SQL over `baseline_calls`: calls bucketed with date_trunc in the
/// zone, `percentile_cont`, and usage read with `jsonb_each` at query time.
fn baseline_dashboard(timezone: &str, op: Option<&str>, days: i64, unit: &str) -> Vec<String> {
    let start = (window_end() - TimeDelta::days(days)).to_rfc3339();
    let end = window_end().to_rfc3339();
    let op = op.map_or(String::new(), |op| format!(" and op_name = '{op}'"));
    let bucket = format!("date_trunc('{unit}', started_at at time zone '{timezone}')");
    vec![
        format!(
            "select {bucket} as b, count(*), sum(extract(epoch from ended_at - started_at) * 1000),
                    avg(extract(epoch from ended_at - started_at) * 1000),
                    percentile_cont(array[0.5, 0.95, 0.99]) within group (order by extract(epoch from ended_at - started_at) * 1000),
                    count(*) filter (where exception is not null)
             from baseline_calls where project_id = '{PROJECT}' and deleted_at is null
               and started_at >= '{start}' and started_at < '{end}'{op}
             group by b order by b"
        ),
        format!(
            "select {bucket} as b, u.key as model, count(*),
                    sum(coalesce((u.value->>'prompt_tokens')::bigint, 0) + coalesce((u.value->>'input_tokens')::bigint, 0)),
                    sum(coalesce((u.value->>'completion_tokens')::bigint, 0) + coalesce((u.value->>'output_tokens')::bigint, 0)),
                    sum(coalesce((u.value->>'total_tokens')::bigint, 0)),
                    sum((coalesce((u.value->>'prompt_tokens')::bigint, 0) + coalesce((u.value->>'input_tokens')::bigint, 0)) * coalesce(p.prompt_token_cost, 0)
                        + (coalesce((u.value->>'completion_tokens')::bigint, 0) + coalesce((u.value->>'output_tokens')::bigint, 0)) * coalesce(p.completion_token_cost, 0))
             from baseline_calls c cross join lateral jsonb_each(c.summary->'usage') u
             left join baseline_prices p on p.llm_id = u.key
             where c.project_id = '{PROJECT}' and c.deleted_at is null
               and c.started_at >= '{start}' and c.started_at < '{end}'{op}
             group by b, model order by b, model"
        ),
    ]
}

/// LangSmith's run statistics over the 30 days, per op name (`/api/v1/runs/stats` with every
/// statistic and `group_by` name).
fn run_stats_request() -> Value {
    json!({
        "session": [PROJECT], "start_time": (window_end() - TimeDelta::days(WINDOW_DAYS)).to_rfc3339(),
        "end_time": window_end().to_rfc3339(), "group_by": {"attribute": "name", "max_groups": 20},
    })
}

/// The same in plain SQL: per-run tokens and cost by `jsonb_each` over the summary, then
/// `percentile_cont` / `percentile_disc` per op name.
fn baseline_run_stats() -> Vec<String> {
    let start = (window_end() - TimeDelta::days(WINDOW_DAYS)).to_rfc3339();
    let end = window_end().to_rfc3339();
    let input = "coalesce((u.value->>'prompt_tokens')::bigint, 0) + coalesce((u.value->>'input_tokens')::bigint, 0)";
    let output =
        "coalesce((u.value->>'completion_tokens')::bigint, 0) + coalesce((u.value->>'output_tokens')::bigint, 0)";
    vec![format!(
        "with runs as (
             select substring(c.op_name from '/op/([^:]*)') as name, c.started_at, c.exception is not null as err,
                    extract(epoch from c.ended_at - c.started_at) as latency, t.prompt, t.completion, t.total, t.cost
             from baseline_calls c left join lateral (
                 select sum({input}) as prompt, sum({output}) as completion, sum({input} + {output}) as total,
                        sum(({input}) * coalesce(p.prompt_token_cost, 0) + ({output}) * coalesce(p.completion_token_cost, 0)) as cost
                 from jsonb_each(c.summary->'usage') u left join baseline_prices p on p.llm_id = u.key) t on true
             where c.project_id = '{PROJECT}' and c.deleted_at is null and c.started_at >= '{start}' and c.started_at < '{end}')
         select name, count(*), percentile_cont(array[0.5, 0.99]) within group (order by latency), avg(latency),
                avg(err::int), sum(total), sum(prompt), sum(completion),
                percentile_disc(array[0.5, 0.99]) within group (order by total),
                percentile_disc(array[0.5, 0.99]) within group (order by prompt),
                percentile_disc(array[0.5, 0.99]) within group (order by completion),
                max(started_at), sum(cost), percentile_cont(array[0.5, 0.99]) within group (order by cost)
         from runs group by name order by count(*) desc limit 20"
    )]
}

/// Descendant rollup in plain SQL: every (call, ancestor) pair by recursive CTE, usage by
/// `jsonb_each`, summed per ancestor and model.
fn baseline_rollup(trace_condition: &str) -> Vec<String> {
    vec![format!(
        "with recursive t as (select id, parent_id, summary from baseline_calls
                              where project_id = '{PROJECT}' and deleted_at is null and {trace_condition}),
              anc(id, ancestor) as (select id, id from t
                                    union all select a.id, c.parent_id from anc a join t c on c.id = a.ancestor
                                    where c.parent_id is not null and c.parent_id in (select id from t))
         select a.ancestor, u.key, sum(coalesce((u.value->>'prompt_tokens')::bigint, 0) + coalesce((u.value->>'input_tokens')::bigint, 0)),
                sum(coalesce((u.value->>'completion_tokens')::bigint, 0) + coalesce((u.value->>'output_tokens')::bigint, 0))
         from anc a join t on t.id = a.id cross join lateral jsonb_each(t.summary->'usage') u
         group by a.ancestor, u.key"
    )]
}

/// Warm up, then time `runs` requests.
async fn time_ours(server: &Server, path: &str, body: &Value, runs: usize) -> (f64, f64) {
    server.post_json(path, body).await;
    time_warm(server, path, Bytes::from(body.to_string()), runs).await
}

/// Time `runs` requests of an already warmed-up question until the whole answer has arrived
/// (answers are parsed only at the warm-up: parsing a 5 MB answer in the benchmark's own
/// process would time the client, not the server).
async fn time_warm(server: &Server, path: &str, bytes: Bytes, runs: usize) -> (f64, f64) {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let (status, _) = server.post(path, bytes.clone()).await;
        samples.push(started.elapsed());
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    percentiles(samples)
}

async fn time_baseline(db: &PgPool, statements: &[String], runs: usize) -> (f64, f64) {
    let run = || async {
        for statement in statements {
            sqlx::query(statement).fetch_all(db).await.expect("baseline query");
        }
    };
    run().await;
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        run().await;
        samples.push(started.elapsed());
    }
    percentiles(samples)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = Args::parse();
    if args.smoke {
        args.calls = 10_000;
        args.runs = 5;
        args.baseline_runs = 3;
        args.checkpoints.clear();
    }
    let db_name = format!("wts_bench_{}", Utc::now().timestamp());
    let mut admin = sqlx::PgConnection::connect(&args.database_url).await?;
    sqlx::query(&format!("create database {db_name}")).execute(&mut admin).await?;
    let (server_url, _) = args.database_url.rsplit_once('/').ok_or("DATABASE_URL has no database name")?;
    let bench_url = format!("{server_url}/{db_name}");
    let result = run(&args, &bench_url).await;
    if !args.keep {
        sqlx::query(&format!("drop database if exists {db_name} with (force)")).execute(&mut admin).await?;
    } else {
        eprintln!("kept database {db_name}");
    }
    result
}

async fn run(args: &Args, url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let db = PgPoolOptions::new().max_connections(16).connect(url).await?;
    store::MIGRATOR.run(&db).await?;
    let secret = keys::create(&db, "bench", &["bench".to_string()], false).await?.secret;
    let (memory, addr) = match &args.server_bin {
        Some(bin) => {
            let (child, addr) = spawn_server(bin, url).await?;
            (Memory { server: Some(child), sampled_peak: Arc::default() }, addr)
        }
        None => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?.to_string();
            let app_db = db.clone();
            tokio::spawn(store::slots::refresh_forever(db.clone(), Duration::from_secs(5)));
            tokio::spawn(async move { axum::serve(listener, app(AppState::new(app_db, Settings::default()))).await });
            (Memory { server: None, sampled_peak: Arc::default() }, addr)
        }
    };
    let server = Arc::new(Server {
        client: Client::builder(TokioExecutor::new()).build_http(),
        base: format!("http://{addr}"),
        auth: format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("api:{secret}"))),
    });
    if args.load_secs > 0 {
        return load(args, &server).await;
    }
    let settings: Vec<(String, String)> =
        sqlx::query_as("select name, setting from pg_settings where name in ('fsync', 'shared_buffers', 'work_mem', 'synchronous_commit', 'server_version')")
            .fetch_all(&db)
            .await?;
    eprintln!("postgres settings: {settings:?}");

    // Ingest, pausing at each checkpoint to time the dashboard request at that size.
    let sizes = Arc::new(trace_sizes(args.calls));
    let batches = Arc::new(batches(&sizes, args.passes));
    let mut growth = Vec::new();
    // Peak RSS: sampled throughout in-process, the child's high-water mark otherwise.
    let sampler = memory.sample();
    let mut ingested_batches = 0usize;
    let mut ingest_time = Duration::ZERO;
    let mut targets: Vec<usize> = args.checkpoints.iter().copied().filter(|c| *c < args.calls).collect();
    targets.push(args.calls);
    let calls_before =
        |n_batches: usize| -> usize { batches[..n_batches].iter().flatten().map(|(_, a, b)| b - a).sum() };
    for target in targets {
        let mut until = ingested_batches;
        while until < batches.len() && calls_before(until) < target {
            until += 1;
        }
        let next = Arc::new(AtomicUsize::new(ingested_batches));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..args.clients {
            let (server, batches, next, sizes) = (server.clone(), batches.clone(), next.clone(), sizes.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= until {
                        return;
                    }
                    let mut body = String::with_capacity(800 * CALLS_PER_BATCH);
                    body.push_str(r#"{"batch":["#);
                    for &(t, first, last) in &batches[index] {
                        for i in first..last {
                            call_items(t, i, sizes[t], sizes.len(), &mut body);
                        }
                    }
                    body.pop(); // the last item's comma
                    body.push_str("]}");
                    let body = Bytes::from(body);
                    let (status, bytes) = server.post("/call/upsert_batch", body).await;
                    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&bytes));
                }
            }));
        }
        for task in tasks {
            task.await?;
        }
        let elapsed = started.elapsed();
        ingest_time += elapsed;
        let calls_now = calls_before(until);
        let segment = calls_now - calls_before(ingested_batches);
        eprintln!("  up to {calls_now} calls: {:.0} calls/s", segment as f64 / elapsed.as_secs_f64());
        ingested_batches = until;
        if calls_now < args.calls {
            settle(&db).await?;
            growth.push(growth_point(&server, calls_now, args.runs.min(10)).await);
        }
    }
    let ingest_rate = args.calls as f64 / ingest_time.as_secs_f64();
    eprintln!("ingested {} calls in {:.1} s: {ingest_rate:.0} calls/s", args.calls, ingest_time.as_secs_f64());
    // Nobody vacuums or analyzes for the server: it must keep its rollups current and its
    // tables fit for the planner by itself (the state a user gets right after ingesting).
    let Settled { current_s, maintained_s } = settle(&db).await?;
    let seconds = |s: Option<f64>| s.map_or("not within the wait".to_string(), |s| format!("{s:.1} s"));
    eprintln!(
        "rollups current {} after the last write; tables maintained after {}",
        seconds(current_s),
        seconds(maintained_s)
    );
    if args.ingest_only {
        if let Some(sampler) = &sampler {
            sampler.abort();
        }
        println!("peak RSS of {}: {} MB", memory.whose(), memory.peak_mb());
        return Ok(());
    }

    // The last growth point, timed before the baseline's copy of the data is written (so it
    // does not share the disk with that write).
    growth.push(growth_point(&server, args.calls, args.runs.min(10)).await);

    // The baseline: the same data in a plain schema.
    sqlx::query(
        "create table baseline_calls as
         select project_id, id, trace_id, parent_id, op_name, started_at, ended_at, exception, summary, deleted_at
         from calls where started_at is not null",
    )
    .execute(&db)
    .await?;
    sqlx::query("create index on baseline_calls (project_id, started_at)").execute(&db).await?;
    sqlx::query("create index on baseline_calls (project_id, trace_id)").execute(&db).await?;
    sqlx::query(
        "create table baseline_prices as select distinct on (llm_id) llm_id, prompt_token_cost, completion_token_cost
         from llm_token_prices where pricing_level = 'default' order by llm_id, effective_date desc",
    )
    .execute(&db)
    .await?;
    sqlx::query("analyze baseline_calls, baseline_prices").execute(&db).await?;
    let disk = disk_bytes(&db).await?;

    // The questions.
    let big_trace = trace_id(0);
    let roots: Vec<String> = (sizes.len().saturating_sub(100)..sizes.len()).map(|t| call_id(t, 0)).collect();
    let root_traces: Vec<String> =
        (sizes.len().saturating_sub(100)..sizes.len()).map(|t| format!("'{}'", trace_id(t))).collect();
    let mut questions: Vec<(&str, &str, Value, Vec<String>)> = DASHBOARD_QUESTIONS
        .iter()
        .map(|question @ &(_, name, zone, op, days, granularity)| {
            let unit = if granularity == Some(3600) { "hour" } else { "day" };
            (name, "/calls/stats", dashboard_question_request(question), baseline_dashboard(zone, op, days, unit))
        })
        .collect();
    questions.extend([
        (
            "(d) /trace/usage, big trace",
            "/trace/usage",
            json!({"project_id": PROJECT, "filter": {"trace_ids": [big_trace]}}),
            baseline_rollup(&format!("trace_id = '{big_trace}'")),
        ),
        (
            "(e) /calls/usage, 100 roots",
            "/calls/usage",
            json!({"project_id": PROJECT, "call_ids": roots}),
            baseline_rollup(&format!("trace_id in ({})", root_traces.join(","))),
        ),
        ("(f) runs/stats, 30 d, by name", "/api/v1/runs/stats", run_stats_request(), baseline_run_stats()),
    ]);
    let mut rows = Vec::new();
    println!(
        "weave-trace-server benchmark: {} calls ({} traces), {} runs per question, {} cores",
        args.calls,
        sizes.len(),
        args.runs,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("ingestion: {ingest_rate:.0} calls/s ({} clients, {CALLS_PER_BATCH} calls per batch)", args.clients);
    println!(
        "{:<32} {:>10} {:>10} {:>12} {:>12} {:>8}",
        "question", "ours p50", "ours p95", "plain p50", "plain p95", "ratio"
    );
    for (name, path, body, baseline) in questions {
        // The warm-up. A limit may refuse a question at this size (run statistics past
        // STATS_MAX_VALUES runs): report it rather than stop.
        let request = Bytes::from(body.to_string());
        let (status, answer) = server.post(path, request.clone()).await;
        if status != StatusCode::OK {
            let reason = String::from_utf8_lossy(&answer).to_string();
            println!("{name:<32} refused: {} {reason}", status.as_u16());
            rows.push(json!({"question": name, "refused": status.as_u16(), "reason": reason}));
            continue;
        }
        serde_json::from_slice::<Value>(&answer).unwrap_or_else(|e| panic!("{path}: not JSON: {e}"));
        let (p50, p95) = time_warm(&server, path, request, args.runs).await;
        let (b50, b95) = time_baseline(&db, &baseline, args.baseline_runs).await;
        let ratio = b50 / p50;
        println!("{name:<32} {p50:>8.1}ms {p95:>8.1}ms {b50:>10.1}ms {b95:>10.1}ms {ratio:>7.1}x");
        rows.push(json!({"question": name, "ours_p50_ms": p50, "ours_p95_ms": p95, "plain_p50_ms": b50, "plain_p95_ms": b95, "ratio_p50": ratio}));
    }
    println!("dashboard questions as the project grew (p50 ms):");
    for point in &growth {
        let times: Vec<String> = DASHBOARD_QUESTIONS
            .iter()
            .map(|(name, ..)| format!("{name} {:.1}", point["questions"][name]["p50_ms"].as_f64().unwrap_or_default()))
            .collect();
        println!("  {:>9} calls: {}", point["calls"], times.join(", "));
    }
    let total: i64 = disk.values().sum();
    println!(
        "disk: {:.0} MB in all, {:.0} MB per million calls: {disk:?}",
        total as f64 / 1e6,
        total as f64 / args.calls as f64
    );
    if let Some(sampler) = &sampler {
        sampler.abort();
    }
    let peak_rss = memory.peak_mb();
    println!("peak RSS of {}: {peak_rss} MB", memory.whose());

    std::fs::create_dir_all(&args.out)?;
    let path = args.out.join(format!("{}-{}calls.json", Utc::now().format("%Y%m%dT%H%M%S"), args.calls));
    let report = json!({
        "calls": args.calls, "traces": sizes.len(), "passes": args.passes, "runs": args.runs, "baseline_runs": args.baseline_runs, "clients": args.clients,
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "postgres": settings.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        "ingest_calls_per_s": ingest_rate, "rollups_current_s": current_s, "maintained_s": maintained_s, "questions": rows, "growth": growth, "peak_rss_mb": peak_rss, "peak_rss_of": memory.whose(),
        "disk_bytes": disk,
    });
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    println!("wrote {}", path.display());
    Ok(())
}

/// What load mode sends for call `i` of client `c`'s batch `b`: deterministic, so it can be
/// checked when read back.
fn load_call(c: usize, b: usize, i: usize, spread: bool) -> (String, Value, Value) {
    let id = format!("load-{c}-{b}-{i}");
    // Into the last hour of the window (the present, which every stats request of the load
    // asks about), as a live app writes; or across the whole window.
    let span = if spread { WINDOW_DAYS as usize * 86_400 } else { 3_600 };
    let started = window_end() - TimeDelta::seconds(1 + ((c * 7919 + b * 104_729 + i * 31) % span) as i64);
    let start = json!({"mode": "start", "req": {"start": {
        "project_id": PROJECT, "id": id, "trace_id": format!("load-{c}-{b}"), "op_name": format!("weave:///bench/dashboard/op/load{}:v1", i % 5),
        "started_at": started.to_rfc3339(), "attributes": {}, "inputs": {"client": c, "batch": b, "i": i},
    }}});
    let end = json!({"mode": "end", "req": {"end": {
        "project_id": PROJECT, "id": id, "ended_at": (started + TimeDelta::milliseconds((i * 37 % 5000) as i64)).to_rfc3339(),
        "output": {"echo": id}, "summary": {"usage": {"gpt-4o": {"prompt_tokens": i, "completion_tokens": 1}}},
    }}});
    (id, start, end)
}

/// Load mode (issue 7): clients mixing `/call/upsert_batch` (60%), `/calls/stats` (20%) and
/// `/call/read` (20%) for a while; then every acknowledged call is read back and compared.
async fn load(args: &Args, server: &Arc<Server>) -> Result<(), Box<dyn std::error::Error>> {
    const CALLS: usize = 20;
    let deadline = Instant::now() + Duration::from_secs(args.load_secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..args.load_clients {
        let (server, spread, split) = (server.clone(), args.load_spread, args.load_split_ends);
        tasks.push(tokio::spawn(async move {
            // (operation, latency, ok) per request; acknowledged batches.
            let mut samples: Vec<(&'static str, Duration, bool)> = Vec::new();
            let mut acknowledged: Vec<usize> = Vec::new();
            // A batch whose starts are written and whose ends are not yet (split mode).
            let mut started_only: Option<usize> = None;
            let mut b = 0;
            let mut step = c;
            let (mut turned_away, mut refused) = (0usize, 0usize);
            while Instant::now() < deadline {
                step += 1;
                // The batch this step writes, and whether its calls are then whole.
                let mut written: Option<(usize, bool)> = None;
                let (op, path, body) = match step % 5 {
                    0 if !acknowledged.is_empty() => {
                        let batch = acknowledged[step % acknowledged.len()];
                        (
                            "read",
                            "/call/read",
                            json!({"project_id": PROJECT, "id": format!("load-{c}-{batch}-{}", step % CALLS)}),
                        )
                    }
                    1 => ("stats", "/calls/stats", dashboard_request("UTC", None, 1, Some(3600))),
                    _ => {
                        let halves = |batch: usize, starts: bool, ends: bool| -> Vec<Value> {
                            (0..CALLS)
                                .flat_map(|i| {
                                    let (_, s, e) = load_call(c, batch, i, spread);
                                    [starts.then_some(s), ends.then_some(e)].into_iter().flatten()
                                })
                                .collect()
                        };
                        let items = match (split, started_only.take()) {
                            (true, Some(batch)) => {
                                written = Some((batch, true));
                                halves(batch, false, true)
                            }
                            (true, None) => {
                                written = Some((b, false));
                                b += 1;
                                halves(b - 1, true, false)
                            }
                            (false, _) => {
                                written = Some((b, true));
                                b += 1;
                                halves(b - 1, true, true)
                            }
                        };
                        ("upsert_batch", "/call/upsert_batch", json!({ "batch": items }))
                    }
                };
                let sent = Instant::now();
                // The wait for a busy server counts in the latency; only a request still
                // refused after five tries is an error.
                let (reply, retried) = server.post_retrying_busy(path, Bytes::from(body.to_string())).await;
                turned_away += retried;
                let ok = matches!(&reply, Ok((StatusCode::OK, _)));
                refused += usize::from(matches!(&reply, Ok((StatusCode::SERVICE_UNAVAILABLE, _))));
                if let (false, Ok((status, bytes))) = (ok, &reply) {
                    eprintln!("{path}: {status} {}", String::from_utf8_lossy(bytes));
                }
                samples.push((op, sent.elapsed(), ok));
                match written {
                    // A batch counts once its calls are whole (split mode: once its ends are in).
                    Some((batch, true)) if ok => acknowledged.push(batch),
                    Some((batch, false)) if ok => started_only = Some(batch),
                    _ => {}
                }
            }
            (samples, acknowledged, turned_away, refused)
        }));
    }
    let mut samples = Vec::new();
    let mut acknowledged = Vec::new();
    let (mut turned_away, mut refused) = (0, 0);
    for (c, task) in tasks.into_iter().enumerate() {
        let (s, a, t, r) = task.await?;
        samples.extend(s);
        acknowledged.extend(a.into_iter().map(|b| (c, b)));
        turned_away += t;
        refused += r;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let errors = samples.iter().filter(|s| !s.2).count();
    println!(
        "load: {} clients for {:.0} s, {} requests ({:.0}/s), {errors} errors ({refused} of them 503 five times), \
         {turned_away} 503s retried",
        args.load_clients,
        elapsed,
        samples.len(),
        samples.len() as f64 / elapsed
    );
    let mut report = Vec::new();
    for op in ["upsert_batch", "stats", "read"] {
        let mut latencies: Vec<Duration> = samples.iter().filter(|s| s.0 == op).map(|s| s.1).collect();
        if latencies.is_empty() {
            continue;
        }
        latencies.sort();
        let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1000.0;
        println!("  {op:<13} {:>7} requests  p50 {:>7.1} ms  p99 {:>7.1} ms", latencies.len(), at(0.5), at(0.99));
        report.push(json!({"operation": op, "requests": latencies.len(), "p50_ms": at(0.5), "p99_ms": at(0.99)}));
    }

    // Read everything back through the API and compare with what was sent.
    let (status, bytes) =
        server.post("/calls/stream_query", Bytes::from(json!({"project_id": PROJECT}).to_string())).await;
    if status != StatusCode::OK {
        return Err(format!("stream_query: {status}").into());
    }
    let mut stored: std::collections::HashMap<String, Value> = std::collections::HashMap::new();
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let call: Value = serde_json::from_slice(line)?;
        stored.insert(call["id"].as_str().unwrap_or_default().to_string(), call);
    }
    let mut lost = 0usize;
    let mut wrong = 0usize;
    for &(c, b) in &acknowledged {
        for i in 0..CALLS {
            let (id, start, end) = load_call(c, b, i, args.load_spread);
            match stored.get(&id) {
                None => lost += 1,
                Some(call) => {
                    let same = call["inputs"] == start["req"]["start"]["inputs"]
                        && call["output"] == end["req"]["end"]["output"]
                        && call["ended_at"].is_string();
                    wrong += usize::from(!same);
                }
            }
        }
    }
    let calls = acknowledged.len() * CALLS;
    println!("read back: {calls} acknowledged calls, {lost} lost, {wrong} differing");
    std::fs::create_dir_all(&args.out)?;
    let path = args.out.join(format!("{}-load-{}clients.json", Utc::now().format("%Y%m%dT%H%M%S"), args.load_clients));
    let report = json!({"clients": args.load_clients, "spread": args.load_spread, "split_ends": args.load_split_ends, "seconds": elapsed, "requests": samples.len(), "errors": errors, "refused_503": refused, "retried_503": turned_away,
        "operations": report, "acknowledged_calls": calls, "lost": lost, "differing": wrong,
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get())});
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    println!("wrote {}", path.display());
    // Overload may be refused (503, every write whole or absent); anything else is a failure.
    if errors > refused || lost > 0 || wrong > 0 {
        return Err("load: failed requests, lost or differing calls".into());
    }
    Ok(())
}
