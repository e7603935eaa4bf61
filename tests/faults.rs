//! Faults, against a private Postgres this test starts itself (`initdb` into a temporary
//! folder, its own port) and the real server binary:
//! - Postgres stopped mid-load: requests answer 503 in bounded time, `/health` says so, and
//!   the server recovers by itself when Postgres is back, with every acknowledged write present;
//! - the server SIGKILLed mid-batch: each batch is wholly present or wholly absent;
//! - SIGTERM: in-flight requests finish, then the server exits;
//! - and the `Authorization` header never reaches the logs, even at trace level.
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

const KEY: &str = "wts_fault_test_key_0123456789abcdef";
const PROJECT: &str = "faults/app";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Run a Postgres server binary as the `postgres` user when we are root (Postgres refuses root).
fn pg_command(bin: &Path, name: &str) -> Command {
    let program = bin.join(name);
    let is_root = Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false);
    if is_root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// The folder of the Postgres server binaries: `pg_config --bindir`, else Debian's newest
/// `/usr/lib/postgresql/<version>/bin`.
fn server_binaries() -> PathBuf {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|dir| dir.join("initdb").exists());
    from_pg_config.unwrap_or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .expect("Postgres server binaries are installed")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|dir| dir.join("initdb").exists())
            .collect();
        versions.sort();
        versions.pop().expect("an initdb under /usr/lib/postgresql")
    })
}

/// A throwaway Postgres cluster on its own port.
struct PrivatePostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl PrivatePostgres {
    fn start() -> Self {
        let bin = server_binaries();
        let dir = std::env::temp_dir().join(format!("wts-faults-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = Command::new("chown").args(["postgres:", dir.to_str().unwrap()]).status();
        let data = dir.join("data");
        let status = pg_command(&bin, "initdb")
            .args(["-D", data.to_str().unwrap(), "-A", "trust", "-U", "postgres", "--no-sync"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "initdb failed");
        let pg = Self { bin, dir, port: free_port() };
        pg.resume();
        pg
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn resume(&self) {
        let options = format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on", self.port, self.dir.display());
        let status = pg_command(&self.bin, "pg_ctl")
            .args(["-D", self.dir.join("data").to_str().unwrap(), "-l", self.dir.join("log").to_str().unwrap()])
            .args(["-o", &options, "-w", "start"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "pg_ctl start failed");
    }

    /// Stop the way a crash or a failover does: immediately, connections cut.
    fn crash(&self) {
        let status = pg_command(&self.bin, "pg_ctl")
            .args(["-D", self.dir.join("data").to_str().unwrap(), "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "pg_ctl stop failed");
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = pg_command(&self.bin, "pg_ctl")
            .args(["-D", self.dir.join("data").to_str().unwrap(), "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The real server binary, logging at trace level into a file.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    fn start(database_url: &str, log: PathBuf) -> Self {
        let port = free_port();
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_weave-trace-server"))
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("BIND", format!("127.0.0.1:{port}"))
            .env("BOOTSTRAP_API_KEY", KEY)
            .env("DB_ACQUIRE_TIMEOUT_SECS", "2")
            .env("DB_STATEMENT_TIMEOUT_SECS", "5")
            .env("REQUEST_TIMEOUT_SECS", "10")
            .env("ROLLUP_REFRESH_SECS", "1")
            .env("RUST_LOG", "trace,hyper=info,h2=info")
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Self { child, port, log }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone)]
struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Http {
    fn new(port: u16) -> Self {
        Self { client: Client::builder(TokioExecutor::new()).build_http(), base: format!("http://127.0.0.1:{port}") }
    }

    /// (status, body) or None when no answer came within `limit` (or the connection failed).
    async fn request(&self, method: &str, path: &str, body: Option<&Value>, limit: Duration) -> Option<(u16, Value)> {
        let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("api:{KEY}")));
        let request = axum::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", auth)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.map(|b| b.to_string()).unwrap_or_default())))
            .unwrap();
        let answer = tokio::time::timeout(limit, async {
            let response = self.client.request(request).await.ok()?;
            let status = response.status().as_u16();
            let bytes = response.into_body().collect().await.ok()?.to_bytes();
            Some((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
        })
        .await;
        answer.ok().flatten()
    }

    async fn wait_healthy(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some((200, _)) = self.request("GET", "/health", None, Duration::from_secs(2)).await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
}

/// A batch of `calls` finished calls with ids `<prefix>-<i>`.
fn batch(prefix: &str, calls: usize) -> Value {
    let mut items = Vec::with_capacity(2 * calls);
    for i in 0..calls {
        let id = format!("{prefix}-{i}");
        items.push(json!({"mode": "start", "req": {"start": {"project_id": PROJECT, "id": id, "trace_id": prefix,
            "op_name": "weave:///faults/app/op/f:v1", "started_at": "2025-01-15T10:00:00Z", "attributes": {}, "inputs": {"i": i}}}}));
        items.push(json!({"mode": "end", "req": {"end": {"project_id": PROJECT, "id": id,
            "ended_at": "2025-01-15T10:00:01Z", "summary": {}, "output": {"i": i}}}}));
    }
    json!({ "batch": items })
}

/// Calls stored per batch prefix (trace id), straight from the database.
async fn stored_per_batch(database_url: &str) -> std::collections::HashMap<String, i64> {
    let db = sqlx::PgPool::connect(database_url).await.unwrap();
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "select trace_id, count(*) from calls where project_id = $1 and ended_at is not null group by trace_id",
    )
    .bind(PROJECT)
    .fetch_all(&db)
    .await
    .unwrap();
    db.close().await;
    rows.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_going_away_gives_bounded_503s_and_the_server_recovers_with_every_acknowledged_write() {
    let pg = PrivatePostgres::start();
    let server = Server::start(&pg.url(), pg.dir.join("server.log"));
    let http = Http::new(server.port);
    assert!(http.wait_healthy(Duration::from_secs(30)).await, "server up: {}", server.logs());

    // Writers: small batches, each with a unique prefix; remember which were acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let counter = Arc::new(AtomicUsize::new(0));
    let slowest = Arc::new(Mutex::new(Duration::ZERO));
    let unexpected = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut writers = Vec::new();
    for _ in 0..4 {
        let (http, stop, acknowledged, counter, slowest, unexpected) =
            (http.clone(), stop.clone(), acknowledged.clone(), counter.clone(), slowest.clone(), unexpected.clone());
        writers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let prefix = format!("b{}", counter.fetch_add(1, Ordering::Relaxed));
                let started = Instant::now();
                let answer = http
                    .request("POST", "/call/upsert_batch", Some(&batch(&prefix, 20)), Duration::from_secs(20))
                    .await;
                let took = started.elapsed();
                {
                    let mut s = slowest.lock().unwrap();
                    *s = (*s).max(took);
                }
                match answer {
                    Some((200, _)) => acknowledged.lock().unwrap().push(prefix),
                    Some((503, body)) if body["reason"].is_string() => {
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                    other => {
                        unexpected.lock().unwrap().push(format!("{prefix}: {other:?} after {took:?}"));
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before_crash = acknowledged.lock().unwrap().len();
    assert!(before_crash > 0, "writes went through before the crash");

    pg.crash();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // While it is down: /health and reads answer 503 quickly (acquire timeout 2 s).
    for _ in 0..3 {
        let started = Instant::now();
        let health = http.request("GET", "/health", None, Duration::from_secs(15)).await;
        assert_eq!(health.as_ref().map(|h| h.0), Some(503), "{health:?}");
        assert_eq!(health.unwrap().1["status"], "unavailable");
        let read = http
            .request("POST", "/call/read", Some(&json!({"project_id": PROJECT, "id": "b0-0"})), Duration::from_secs(15))
            .await;
        assert_eq!(read.as_ref().map(|r| r.0), Some(503), "{read:?}");
        assert!(started.elapsed() < Duration::from_secs(8), "answers are bounded: {:?}", started.elapsed());
    }

    pg.resume();
    assert!(http.wait_healthy(Duration::from_secs(30)).await, "recovered by itself: {}", server.logs());
    let after_recovery = acknowledged.lock().unwrap().len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() > after_recovery, "writes go through again after recovery");
    assert!(unexpected.lock().unwrap().is_empty(), "only 200 or 503: {:?}", unexpected.lock().unwrap());
    assert!(*slowest.lock().unwrap() < Duration::from_secs(15), "no request hung: {:?}", slowest.lock().unwrap());

    let stored = stored_per_batch(&pg.url()).await;
    let lost: Vec<&String> = acknowledged.iter().filter(|p| stored.get(*p).copied() != Some(20)).collect();
    assert!(lost.is_empty(), "acknowledged batches lost or partial: {lost:?}");
    println!(
        "faults: {} batches acknowledged ({} before the crash), 0 lost; slowest answer {:?}",
        acknowledged.len(),
        before_crash,
        slowest.lock().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_server_leaves_each_batch_whole_or_absent_and_sigterm_finishes_in_flight_requests() {
    let pg = PrivatePostgres::start();
    let server = Server::start(&pg.url(), pg.dir.join("server.log"));
    let http = Http::new(server.port);
    assert!(http.wait_healthy(Duration::from_secs(30)).await, "server up: {}", server.logs());

    // SIGKILL while large batches are in flight.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut senders = Vec::new();
    for i in 0..6 {
        let (http, acknowledged) = (http.clone(), acknowledged.clone());
        senders.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(250 * i)).await;
            let prefix = format!("k{i}");
            if let Some((200, _)) =
                http.request("POST", "/call/upsert_batch", Some(&batch(&prefix, 1500)), Duration::from_secs(30)).await
            {
                acknowledged.lock().unwrap().push(prefix);
            }
        }));
    }
    // Kill as soon as the first batch is acknowledged, with the later ones still in flight.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "a batch was acknowledged");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.signal("-KILL");
    for sender in senders {
        sender.await.unwrap();
    }
    let stored = stored_per_batch(&pg.url()).await;
    for i in 0..6 {
        let prefix = format!("k{i}");
        let n = stored.get(&prefix).copied().unwrap_or(0);
        assert!(n == 0 || n == 1500, "batch {prefix} is partial: {n} of 1500 calls");
    }
    for prefix in acknowledged.lock().unwrap().iter() {
        assert_eq!(stored.get(prefix).copied(), Some(1500), "acknowledged batch {prefix} is missing");
    }
    let whole = (0..6).filter(|i| stored.contains_key(&format!("k{i}"))).count();
    println!(
        "sigkill: {whole} of 6 batches whole, {} absent, none partial; {} acknowledged",
        6 - whole,
        acknowledged.lock().unwrap().len()
    );
    drop(server);

    // SIGTERM during a large batch: it is answered 200, stored, and then the process exits 0.
    let mut server = Server::start(&pg.url(), pg.dir.join("server2.log"));
    let http = Http::new(server.port);
    assert!(http.wait_healthy(Duration::from_secs(30)).await);
    let body = batch("term", 3000);
    let in_flight = {
        let http = http.clone();
        tokio::spawn(
            async move { http.request("POST", "/call/upsert_batch", Some(&body), Duration::from_secs(60)).await },
        )
    };
    // Signal once the server has started on the request (its trace log says so).
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server.logs().lines().any(|l| l.contains("path=/call/upsert_batch") && l.contains("started processing")) {
        assert!(Instant::now() < deadline, "the batch reached the server");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.signal("-TERM");
    let answer = in_flight.await.unwrap();
    assert_eq!(answer.map(|a| a.0), Some(200), "the in-flight request finished: {}", server.logs());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the server exited after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "clean exit: {status:?}");
    assert_eq!(stored_per_batch(&pg.url()).await.get("term").copied(), Some(3000));

    // Nothing the servers logged, at trace level, holds the key or its Basic encoding.
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("api:{KEY}"));
    for log in ["server.log", "server2.log"] {
        let text = std::fs::read_to_string(pg.dir.join(log)).unwrap();
        assert!(!text.is_empty());
        assert!(!text.contains(KEY) && !text.contains(&encoded), "{log} leaks the credentials");
    }
}
