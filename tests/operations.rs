//! The server binary as an operator runs it: start-up errors in one clear line, the settings
//! of its database connections, connection limits against slow and idle clients, and bounded
//! memory under large requests.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::PgPool;
use weave_trace_server::store::MIGRATOR;

const BIN: &str = env!("CARGO_BIN_EXE_weave-trace-server");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The database URL of `pool` (a test database).
async fn url_of(pool: &PgPool) -> String {
    let name: String = sqlx::query_scalar("select current_database()").fetch_one(pool).await.unwrap();
    let base = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    format!("{}/{name}", base.rsplit_once('/').unwrap().0)
}

/// Run the binary to completion with `env`; its exit code and stderr.
fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let output = Command::new(BIN)
        .args(args)
        .env_remove("DATABASE_URL")
        .env("DB_ACQUIRE_TIMEOUT_SECS", "2")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stderr).to_string())
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn every_start_up_failure_is_one_line_naming_the_cause_and_the_fix(pool: PgPool) {
    let url = url_of(&pool).await;
    let closed = format!("postgres://postgres@127.0.0.1:{}/postgres", free_port());
    let (code, err) = run(&["serve"], &[("DATABASE_URL", &closed)]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot connect to the database at 127.0.0.1:")
            && err.contains("connection refused")
            && err.contains("DATABASE_URL"),
        "{err}"
    );

    let (code, err) = run(&["serve"], &[("DATABASE_URL", "127.0.0.1:5432/postgres")]);
    assert_eq!(code, 1);
    assert!(err.contains("DATABASE_URL must be a postgres:// URL"), "{err}");

    let missing = format!("{}/wts_no_such_database", url.rsplit_once('/').unwrap().0);
    let (code, err) = run(&["migrate"], &[("DATABASE_URL", &missing)]);
    assert_eq!(code, 1);
    assert!(
        err.contains("wts_no_such_database") && err.contains("does not exist") && err.contains("createdb"),
        "{err}"
    );

    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = busy.local_addr().unwrap().to_string();
    let (code, err) = run(&["serve"], &[("DATABASE_URL", &url), ("BIND", &address)]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("cannot listen on {address}")) && err.contains("in use") && err.contains("set BIND"),
        "{err}"
    );

    let (code, err) = run(&["serve"], &[("DATABASE_URL", &url), ("CORS_ORIGINS", "*")]);
    assert_eq!(code, 1);
    assert!(err.contains("CORS_ORIGINS=* is not allowed"), "{err}");
    let (code, err) = run(&["serve"], &[("DATABASE_URL", &url), ("CORS_ORIGINS", "example.com")]);
    assert_eq!(code, 1);
    assert!(err.contains("not an origin"), "{err}");

    let (code, err) = run(&["serve"], &[("DATABASE_URL", &url), ("LOG_FORMAT", "jsno")]);
    assert_eq!(code, 2, "clap refuses it");
    assert!(
        err.contains("invalid value 'jsno'") && err.contains("LOG_FORMAT") || err.contains("possible values"),
        "{err}"
    );

    let secret_url = "postgres://postgres:hunter2@127.0.0.1:1/postgres";
    let help = Command::new(BIN).arg("--help").env("DATABASE_URL", secret_url).output().unwrap();
    assert!(!String::from_utf8_lossy(&help.stdout).contains("hunter2"), "--help shows no secret");
    let keys_help =
        String::from_utf8_lossy(&Command::new(BIN).args(["keys", "--help"]).output().unwrap().stdout).to_string();
    assert!(
        keys_help.contains("--database-url")
            && !keys_help.contains("--bind")
            && !keys_help.contains("--bootstrap-api-key"),
        "{keys_help}"
    );
}

/// A server process on a free port of `pool`'s database.
struct Server {
    child: Child,
    port: u16,
    key: String,
}

impl Server {
    async fn start(pool: &PgPool, env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let key = format!("wts_{}", "k".repeat(48));
        let child = Command::new(BIN)
            .arg("serve")
            .env("DATABASE_URL", url_of(pool).await)
            .env("BIND", format!("127.0.0.1:{port}"))
            .env("BOOTSTRAP_API_KEY", &key)
            .env("ROLLUP_REFRESH_SECS", "0")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Server { child, port, key };
        for _ in 0..200 {
            if server.get("/health").map(|(status, _)| status == 200).unwrap_or(false) {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the server did not start");
    }

    fn request(&self, method: &str, path: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        let auth = base64_basic(&self.key);
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )?;
        stream.write_all(body)?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        let text = String::from_utf8_lossy(&response);
        let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body_at = response.windows(4).position(|w| w == b"\r\n\r\n").map_or(response.len(), |i| i + 4);
        Ok((status, response[body_at..].to_vec()))
    }

    fn get(&self, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
        self.request("GET", path, b"")
    }

    /// Peak resident memory of the server process so far, in MB.
    fn peak_rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: f64 = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        kb / 1024.0
    }

    /// Open file descriptors of the server process.
    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).map(|d| d.count()).unwrap_or(0)
    }

    fn health_within(&self, limit: Duration) {
        let started = Instant::now();
        assert_eq!(self.get("/health").unwrap().0, 200);
        assert!(started.elapsed() < limit, "/health took {:?}", started.elapsed());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn base64_basic(key: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("api:{key}")))
}

/// Whether the server closed `stream` (a read sees end of file or a reset).
fn closed(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = [0u8; 1024];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => true, // an answer (408) also ends it
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn slow_and_idle_clients_are_cut_after_the_header_timeout_and_held_to_the_connection_cap(pool: PgPool) {
    let server = Server::start(&pool, &[("HEADER_TIMEOUT_SECS", "1"), ("MAX_CLIENT_CONNECTIONS", "64")]).await;
    let baseline = server.open_fds();
    // 200 slowloris clients: a request line and half the headers, then nothing.
    let mut slow: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
            s.write_all(b"POST /calls/stats HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    assert!(server.open_fds() <= baseline + 64 + 2, "{} descriptors open: the cap holds", server.open_fds());
    // Each is cut a second after it was accepted; 200 through 64 places take about 4 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    while slow.iter_mut().any(|s| !closed(s)) {
        assert!(Instant::now() < deadline, "slow clients still open after 10 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    server.health_within(Duration::from_millis(100));
    // Idle connections (connected, nothing sent), and a keep-alive one left idle after a request.
    let mut idle: Vec<TcpStream> = (0..50).map(|_| TcpStream::connect(("127.0.0.1", server.port)).unwrap()).collect();
    let mut kept = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert!(idle.iter_mut().all(closed), "idle connections are closed");
    assert!(closed(&mut kept), "an idle keep-alive connection is closed");
    server.health_within(Duration::from_millis(100));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_server_pool_sets_its_statement_timeout_and_compiles_no_query_with_jit(pool: PgPool) {
    use weave_trace_server::store::{connect, PoolConfig};
    let config = PoolConfig {
        url: url_of(&pool).await,
        max_connections: 1,
        acquire_timeout: Duration::from_secs(5),
        statement_timeout: Duration::from_secs(7),
    };
    let server_pool = connect(&config).await.unwrap();
    let (timeout, jit): (String, String) =
        sqlx::query_as("select current_setting('statement_timeout'), current_setting('jit')")
            .fetch_one(&server_pool)
            .await
            .unwrap();
    assert_eq!((timeout.as_str(), jit.as_str()), ("7s", "off"));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn memory_stays_bounded_for_a_32_mb_body_and_the_largest_stats_answers(pool: PgPool) {
    let server = Server::start(&pool, &[]).await;
    let idle = server.peak_rss_mb();
    // A valid 32 MB batch: 11,000 calls with 2 KB of small input values each.
    let inputs: serde_json::Map<String, Value> =
        (0..100).map(|i| (format!("k{i}"), json!(format!("value-{i:012}")))).collect();
    let batch: Vec<Value> = (0..11_000)
        .map(|i| {
            json!({"mode": "start", "req": {"start": {"project_id": "acme/app", "id": format!("c{i}"), "trace_id": "t",
                "op_name": "op", "started_at": "2025-01-15T11:00:00Z", "attributes": {}, "inputs": inputs}}})
        })
        .collect();
    let body = serde_json::to_vec(&json!({"batch": batch})).unwrap();
    let mb = body.len() as f64 / 1e6;
    assert!(mb > 25.0 && mb < 33.5, "{mb} MB");
    let (status, answer) = server.request("POST", "/call/upsert_batch", &body).unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer[..200.min(answer.len())]));
    let after_body = server.peak_rss_mb();
    println!(
        "32 MB body: peak RSS {idle:.0} MB idle -> {after_body:.0} MB ({:.1}x the body)",
        (after_body - idle) / mb
    );
    assert!(after_body - idle < 12.0 * mb, "peak {after_body:.0} MB for a {mb:.0} MB body");

    // The heaviest stats request the limits allow, twice at once: the answer is capped.
    let percentiles: Vec<f64> = (1..=20).map(f64::from).collect();
    let models: serde_json::Map<String, Value> =
        (0..30).map(|m| (format!("model-{m}"), json!({"input_tokens": m, "output_tokens": 1}))).collect();
    let ends: Vec<Value> = (0..3000)
        .map(|i| {
            json!({"mode": "end", "req": {"end": {"project_id": "acme/app", "id": format!("c{i}"),
            "ended_at": "2025-01-15T11:00:01Z", "summary": {"usage": models}}}})
        })
        .collect();
    assert_eq!(
        server.request("POST", "/call/upsert_batch", &serde_json::to_vec(&json!({"batch": ends})).unwrap()).unwrap().0,
        200
    );
    let usage_metrics: Vec<Value> = [
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "input_cost",
        "output_cost",
        "total_cost",
    ]
    .iter()
    .map(|m| json!({"metric": m, "aggregations": ["sum", "avg", "min", "max", "count"], "percentiles": percentiles}))
    .collect();
    let stats = json!({"project_id": "acme/app", "start": "2025-01-01T00:00:00Z", "end": "2025-02-01T00:00:00Z", "granularity": 60,
        "call_metrics": [{"metric": "latency_ms", "percentiles": percentiles}], "usage_metrics": usage_metrics});
    let body = serde_json::to_vec(&stats).unwrap();
    let answers: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> =
            (0..2).map(|_| scope.spawn(|| server.request("POST", "/calls/stats", &body).unwrap().0)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(answers, [413, 413], "over the values budget");
    server.health_within(Duration::from_millis(100));
    let peak = server.peak_rss_mb();
    println!("stats at the bucket cap: peak RSS {peak:.0} MB");
    assert!(peak < 1024.0, "peak RSS {peak:.0} MB");
}
