//! Logs and metrics. Logs: `tracing` with an env filter (`RUST_LOG`), text or JSON lines on
//! stderr. Metrics: the `metrics` facade with a Prometheus recorder installed once per process,
//! rendered by `GET /metrics`.
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line.
    Json,
}

pub fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

const REQUEST_DURATION: &str = "weave_http_request_duration_seconds";

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 13] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The process's Prometheus recorder, installed on first use (a second server in the same
/// process, as in tests, shares it).
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.into()), &BUCKETS)
            .expect("the bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics will be empty");
        }
        describe();
        handle
    })
}

fn describe() {
    metrics::describe_counter!("weave_http_requests_total", "HTTP requests answered, by method, route and status.");
    metrics::describe_histogram!(REQUEST_DURATION, "Time to answer (to the response head), by route.");
    metrics::describe_counter!("weave_calls_ingested_total", "Calls whose start or end an acknowledged write stored.");
    metrics::describe_gauge!("weave_db_pool_connections", "Database connections by state.");
    metrics::describe_gauge!("weave_db_pool_max_connections", "The pool's limit.");
}

/// Count one answered request. `route` is a matched template (never the raw path) and the
/// method is one of a fixed set, so clients cannot mint label values.
pub fn observe_request(method: &http::Method, route: &str, status: u16, elapsed: Duration) {
    let method: &'static str = match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    };
    let route = route.to_string();
    metrics::counter!("weave_http_requests_total", "method" => method, "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!(REQUEST_DURATION, "route" => route).record(elapsed.as_secs_f64());
}

/// Calls whose start or end (or both) an acknowledged write stored.
pub fn calls_ingested(calls: usize) {
    metrics::counter!("weave_calls_ingested_total").increment(calls as u64);
}

/// The database pool as the metrics show it.
#[derive(Debug, Clone, Copy)]
pub struct PoolGauges {
    pub open: u32,
    pub idle: usize,
    pub max: u32,
}

/// The Prometheus text exposition of every metric, with the pool's gauges as of now.
pub fn render_metrics(pool: PoolGauges) -> String {
    let in_use = (pool.open as usize).saturating_sub(pool.idle);
    metrics::gauge!("weave_db_pool_connections", "state" => "in_use").set(in_use as f64);
    metrics::gauge!("weave_db_pool_connections", "state" => "idle").set(pool.idle as f64);
    metrics::gauge!("weave_db_pool_max_connections").set(f64::from(pool.max));
    let handle = metrics_handle();
    handle.run_upkeep();
    handle.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_render_as_counters_and_cumulative_histograms_with_fixed_method_labels() {
        metrics_handle();
        let post = http::Method::POST;
        observe_request(&post, "/unit-test/route", 200, Duration::from_millis(3));
        observe_request(&post, "/unit-test/route", 200, Duration::from_millis(30));
        observe_request(&post, "/unit-test/route", 422, Duration::from_secs(20));
        let odd = http::Method::from_bytes(b"FROBNICATE").unwrap();
        observe_request(&odd, "/unit-test/route", 405, Duration::from_millis(1));
        let text = render_metrics(PoolGauges { open: 4, idle: 1, max: 10 });
        let line = |prefix: &str| text.lines().find(|l| l.starts_with(prefix)).map(str::to_string);
        let requests = "weave_http_requests_total{method=\"POST\",route=\"/unit-test/route\"";
        assert_eq!(line(&format!("{requests},status=\"200\"}}")).unwrap().rsplit(' ').next(), Some("2"));
        assert_eq!(line(&format!("{requests},status=\"422\"}}")).unwrap().rsplit(' ').next(), Some("1"));
        assert!(line("weave_http_requests_total{method=\"other\",route=\"/unit-test/route\"").is_some());
        assert!(!text.contains("FROBNICATE"));
        let bucket = |le: &str| {
            line(&format!("{REQUEST_DURATION}_bucket{{route=\"/unit-test/route\",le=\"{le}\"}}"))
                .and_then(|l| l.rsplit(' ').next().map(str::to_string))
        };
        assert_eq!(bucket("0.0025").as_deref(), Some("1")); // the FROBNICATE request took 1 ms
        assert_eq!(bucket("0.005").as_deref(), Some("2"));
        assert_eq!(bucket("+Inf").as_deref(), Some("4"));
        assert!(text.contains("weave_db_pool_connections{state=\"in_use\"} 3"));
    }
}
