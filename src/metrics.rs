//! Prometheus metrics for `GET /metrics`: requests by route and status, latency histograms by
//! route, calls ingested and the database pool, in the text exposition format.
//!
//! Hand-written: a few counters behind a mutex need no metrics framework, and routes are the
//! matched templates (`/call/read`), so label sets stay few.
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 13] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Debug, Default)]
pub struct Metrics {
    /// (method, route, status) → requests answered.
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// route → latency histogram.
    latency: Mutex<BTreeMap<String, Histogram>>,
    calls_ingested: AtomicU64,
}

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Observations at most each bound (not cumulative here; summed when rendered).
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The database pool as the metrics show it.
#[derive(Debug, Clone, Copy)]
pub struct PoolGauges {
    pub open: u32,
    pub idle: usize,
    pub max: u32,
}

impl Metrics {
    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *requests.entry((method.to_string(), route.to_string(), status)).or_default() += 1;
        drop(requests);
        let seconds = elapsed.as_secs_f64();
        let mut latency = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let histogram = latency.entry(route.to_string()).or_default();
        if let Some(i) = BUCKETS.iter().position(|&bound| seconds <= bound) {
            histogram.buckets[i] += 1;
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    /// Calls whose start or end (or both) an acknowledged write stored.
    pub fn add_calls_ingested(&self, calls: usize) {
        self.calls_ingested.fetch_add(calls as u64, Ordering::Relaxed);
    }

    pub fn render(&self, pool: PoolGauges) -> String {
        let mut out = String::new();
        out.push_str("# HELP weave_http_requests_total HTTP requests answered, by method, route and status.\n");
        out.push_str("# TYPE weave_http_requests_total counter\n");
        for ((method, route, status), n) in self.requests.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                out,
                "weave_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
        out.push_str("# HELP weave_http_request_duration_seconds Time to answer (to the response head), by route.\n");
        out.push_str("# TYPE weave_http_request_duration_seconds histogram\n");
        for (route, h) in self.latency.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let route = escape(route);
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(h.buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "weave_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "weave_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(out, "weave_http_request_duration_seconds_sum{{route=\"{route}\"}} {}", h.sum);
            let _ = writeln!(out, "weave_http_request_duration_seconds_count{{route=\"{route}\"}} {}", h.count);
        }
        out.push_str("# HELP weave_calls_ingested_total Calls whose start or end an acknowledged write stored.\n");
        out.push_str("# TYPE weave_calls_ingested_total counter\n");
        let _ = writeln!(out, "weave_calls_ingested_total {}", self.calls_ingested.load(Ordering::Relaxed));
        out.push_str("# HELP weave_db_pool_connections Database connections by state.\n");
        out.push_str("# TYPE weave_db_pool_connections gauge\n");
        let in_use = (pool.open as usize).saturating_sub(pool.idle);
        let _ = writeln!(out, "weave_db_pool_connections{{state=\"in_use\"}} {in_use}");
        let _ = writeln!(out, "weave_db_pool_connections{{state=\"idle\"}} {}", pool.idle);
        out.push_str("# HELP weave_db_pool_max_connections The pool's limit.\n");
        out.push_str("# TYPE weave_db_pool_max_connections gauge\n");
        let _ = writeln!(out, "weave_db_pool_max_connections {}", pool.max);
        out
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_counters_add_up() {
        let metrics = Metrics::default();
        metrics.observe_request("POST", "/calls/stats", 200, Duration::from_millis(3));
        metrics.observe_request("POST", "/calls/stats", 200, Duration::from_millis(30));
        metrics.observe_request("POST", "/calls/stats", 422, Duration::from_secs(20));
        metrics.add_calls_ingested(5);
        let text = metrics.render(PoolGauges { open: 4, idle: 1, max: 10 });
        assert!(text.contains("weave_http_requests_total{method=\"POST\",route=\"/calls/stats\",status=\"200\"} 2\n"));
        assert!(text.contains("weave_http_requests_total{method=\"POST\",route=\"/calls/stats\",status=\"422\"} 1\n"));
        assert!(text.contains("weave_http_request_duration_seconds_bucket{route=\"/calls/stats\",le=\"0.0025\"} 0\n"));
        assert!(text.contains("weave_http_request_duration_seconds_bucket{route=\"/calls/stats\",le=\"0.005\"} 1\n"));
        assert!(text.contains("weave_http_request_duration_seconds_bucket{route=\"/calls/stats\",le=\"10\"} 2\n"));
        assert!(text.contains("weave_http_request_duration_seconds_bucket{route=\"/calls/stats\",le=\"+Inf\"} 3\n"));
        assert!(text.contains("weave_calls_ingested_total 5\n"));
        assert!(text.contains("weave_db_pool_connections{state=\"in_use\"} 3\n"));
    }
}
