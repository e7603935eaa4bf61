//! The state every handler shares: the database pools, the runtime settings, and the gate
//! that admits heavy requests.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: sqlx::PgPool,
    /// A pool of its own for `/health`, so a busy main pool does not fail the health check.
    pub health_db: sqlx::PgPool,
    pub settings: Settings,
    pub heavy: Arc<HeavyGate>,
    /// Admits write transactions (`Limits::write_transactions`).
    pub writes: Arc<Semaphore>,
    /// The default prices, read once (`store::prices::Defaults`).
    pub default_prices: Arc<crate::store::prices::Defaults>,
}

impl AppState {
    pub fn new(db: sqlx::PgPool, settings: Settings) -> Self {
        crate::telemetry::metrics_handle();
        let heavy = Arc::new(HeavyGate::new(settings.limits.heavy_requests, settings.limits.heavy_requests_per_key));
        let writes = match settings.limits.write_transactions {
            0 => Semaphore::MAX_PERMITS,
            n => n,
        };
        let writes = Arc::new(Semaphore::new(writes));
        Self { health_db: db.clone(), db, settings, heavy, writes, default_prices: Arc::default() }
    }

    /// Answer `/health` from `pool` (one reserved connection is enough).
    pub fn with_health_pool(mut self, pool: sqlx::PgPool) -> Self {
        self.health_db = pool;
        self
    }
}

/// Runtime settings the routes need (a subset of the serve configuration).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Longest `/calls/stats` window.
    pub max_stats_range: chrono::Duration,
    /// Origins allowed by CORS (none by default).
    pub cors_origins: Vec<String>,
    /// Time after which a request is answered 503.
    pub request_timeout: Duration,
    /// The server's public URL (GraphQL `serverInfo.frontendHost`; the dashboard's links).
    pub public_url: String,
    /// Serve `GET /metrics` on the API's port (off when metrics have a listener of their own).
    pub public_metrics: bool,
    pub limits: Limits,
}

/// Limits on what one request may cost.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Most values one `/calls/stats` answer may hold.
    pub stats_max_values: usize,
    /// Most percentiles one stats metric may ask for.
    pub stats_max_percentiles: usize,
    /// Heavy requests served at once.
    pub heavy_requests: usize,
    /// Heavy requests one key may have running at once.
    pub heavy_requests_per_key: usize,
    /// Call writes run at once (0: no limit). Past a few per core, more writers only share the
    /// CPU more thinly, and slow every read with them.
    pub write_transactions: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            stats_max_values: 2_000_000,
            stats_max_percentiles: 20,
            heavy_requests: 8,
            heavy_requests_per_key: 4,
            write_transactions: Self::write_transactions_per_cores(),
        }
    }
}

impl Limits {
    /// The default write limit: 4 per CPU core the process may use (measured on 2 cores: 64
    /// clients writing into the present hour, stats p50 55 ms at 8 against 1 s unlimited, and
    /// as many calls written).
    pub fn write_transactions_per_cores() -> usize {
        4 * std::thread::available_parallelism().map_or(1, usize::from)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            body_limit: 32 * 1024 * 1024,
            max_stats_range: chrono::Duration::days(31),
            cors_origins: Vec::new(),
            request_timeout: Duration::from_secs(60),
            public_url: "http://127.0.0.1:6345".into(),
            public_metrics: true,
            limits: Limits::default(),
        }
    }
}

/// Admits heavy requests (stats, usage, stream queries): at most so many at once, and at most
/// so many per key, so one tenant cannot take every database connection from the others.
#[derive(Debug)]
pub struct HeavyGate {
    slots: Arc<Semaphore>,
    /// Each key's own share, made on its first heavy request (keys are few: they are verified
    /// API keys, not client-chosen strings).
    per_key: Mutex<HashMap<String, Arc<Semaphore>>>,
    per_key_limit: usize,
}

/// How long a heavy request may wait for its key's share and a server slot before it is
/// turned away.
const HEAVY_WAIT: Duration = Duration::from_secs(2);

/// A heavy request's place (its key's share and a server slot); both free when it is dropped.
#[derive(Debug)]
pub struct HeavyPermit {
    _key: OwnedSemaphorePermit,
    _slot: OwnedSemaphorePermit,
}

/// Why a heavy request was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// This key has its share running (and it did not free in time).
    Key,
    /// The server has every slot running.
    Server,
}

impl From<Busy> for crate::error::ApiError {
    fn from(busy: Busy) -> Self {
        Self::Busy(match busy {
            Busy::Key => "This key has too many heavy requests running; retry when one finishes".into(),
            Busy::Server => "The server is busy with heavy requests; retry shortly".into(),
        })
    }
}

impl HeavyGate {
    pub fn new(slots: usize, per_key_limit: usize) -> Self {
        Self { slots: Arc::new(Semaphore::new(slots)), per_key: Mutex::default(), per_key_limit }
    }

    /// A place for a heavy request of `key`: first a share of the key's own limit, then a
    /// server slot, waiting at most `HEAVY_WAIT` in all. A key waiting for its share holds no
    /// server slot, so one busy tenant queues behind itself, not in front of the others.
    pub async fn enter(self: &Arc<Self>, key: &str) -> Result<HeavyPermit, Busy> {
        let share = {
            let mut per_key = self.per_key.lock().unwrap_or_else(|e| e.into_inner());
            per_key.entry(key.to_string()).or_insert_with(|| Arc::new(Semaphore::new(self.per_key_limit))).clone()
        };
        let deadline = tokio::time::Instant::now() + HEAVY_WAIT;
        let key_permit = tokio::time::timeout_at(deadline, share.acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or(Busy::Key)?;
        let slot = tokio::time::timeout_at(deadline, self.slots.clone().acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or(Busy::Server)?;
        Ok(HeavyPermit { _key: key_permit, _slot: slot })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_gets_its_share_and_the_server_its_slots() {
        let gate = Arc::new(HeavyGate::new(3, 2));
        tokio::time::pause();
        let a1 = gate.enter("a").await.unwrap();
        let a2 = gate.enter("a").await.unwrap();
        assert_eq!(gate.enter("a").await.unwrap_err(), Busy::Key, "the key's share is taken");
        let b1 = gate.enter("b").await.unwrap();
        assert_eq!(gate.enter("b").await.unwrap_err(), Busy::Server, "every slot is taken");
        drop(a1);
        assert!(gate.enter("b").await.is_ok(), "a freed slot is taken");
        // A request of a key at its share waits for it, and gets in when one finishes.
        let waiting = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.enter("a").await.map(|_| ()) })
        };
        tokio::task::yield_now().await;
        drop(a2);
        drop(b1);
        assert_eq!(waiting.await.unwrap(), Ok(()));
    }
}
