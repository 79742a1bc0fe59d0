//! Prediction cache: Redis when configured, an in-process cache otherwise.
//!
//! With Redis, a bounded in-process **near cache** sits in front of it: a key found there costs no
//! Redis round trip; a key found in Redis is copied there (writes go to Redis only, so what the
//! near cache holds is what was asked for at least twice). This is
//! safe because a cache key names everything its value depends on (model version, the keyword's
//! data version, horizon, levels: see `serving::cache_key`), so an entry never goes stale: new data
//! or a new model means new keys, and every instance holding a key holds the same bytes. Redis stays
//! the cache shared by every instance and across restarts.
//!
//! Sizes are in bytes (key + value + a fixed overhead per entry), so entries of long horizons and
//! many levels cannot blow the memory bound.
//!
//! A cache failure never fails a request: `get` degrades to a miss and `set` to a no-op, and the
//! failure is counted so `/readyz` can report it. Redis reconnects by itself (connection manager);
//! `/metrics` has `kwi_cache_redis_up` (0 from the first failed operation until the next one that
//! succeeds) and `kwi_cache_redis_errors_total`, and the log says once when Redis stops answering
//! and once when it answers again (not once per failed request).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::Serialize;

/// How long a cached entry lives.
pub const DEFAULT_TTL: Duration = Duration::from_secs(6 * 3600);

/// How long start-up waits for Redis before falling back to the in-process cache.
pub const REDIS_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Per-operation Redis deadline: a slow Redis turns into a miss, not a slow request.
pub const REDIS_OP_TIMEOUT: Duration = Duration::from_millis(250);

/// Which cache is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheKind {
    /// Redis server.
    Redis,
    /// moka, inside this process.
    InProcess,
}

/// Default size of the in-process cache (the whole cache without Redis, the near cache with it).
pub const DEFAULT_LOCAL_BYTES: u64 = 256 << 20;

/// Bytes counted per entry on top of its key and value (moka's bookkeeping, the `Arc`).
const ENTRY_OVERHEAD: usize = 96;

/// The hasher of the in-process maps on the request path: foldhash, seeded per process (std's
/// SipHash cost ~5 % of the uncached forecast path's CPU).
pub type FastHash = foldhash::quality::RandomState;

/// In-process byte-bounded map with TTL.
type Local = moka::sync::Cache<String, Bytes, FastHash>;

fn local(max_bytes: u64, ttl: Duration) -> Local {
    moka::sync::Cache::builder()
        .max_capacity(max_bytes)
        .weigher(|k: &String, v: &Bytes| {
            u32::try_from(k.len() + v.len() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
        })
        .time_to_live(ttl)
        .build_with_hasher(FastHash::default())
}

/// Byte-value cache with TTL.
#[derive(Clone)]
pub struct Cache {
    /// Redis, when configured.
    redis: Option<ConnectionManager>,
    /// The whole cache without Redis; the near cache in front of it with it (`None`: turned off).
    local: Option<Local>,
    ttl: Duration,
    health: Arc<RedisHealth>,
}

/// Whether Redis answered its last operation, and how many failed since start.
struct RedisHealth {
    errors: AtomicU64,
    down: AtomicBool,
    /// Set off by each failure: while down, operations skip Redis for [`REDIS_RETRY_AFTER`].
    retry: crate::backoff::Backoff,
}

impl Default for RedisHealth {
    fn default() -> Self {
        Self {
            errors: AtomicU64::default(),
            down: AtomicBool::default(),
            retry: crate::backoff::Backoff::new(REDIS_RETRY_AFTER),
        }
    }
}

/// While Redis is down, operations skip it (a miss, a write not made) and one may try it again
/// after this long. Without it every request would wait out the operation timeouts (a lookup and a
/// write: over a second) while the connection manager reconnects, and the batcher's queue behind
/// them would grow past clients' patience.
pub const REDIS_RETRY_AFTER: Duration = Duration::from_millis(250);

impl Cache {
    /// An in-process cache of at most `max_bytes` (keys and values counted).
    pub fn in_process(max_bytes: u64, ttl: Duration) -> Self {
        Self {
            redis: None,
            local: Some(local(max_bytes, ttl)),
            ttl,
            health: Arc::default(),
        }
    }

    /// Connects to Redis within [`REDIS_CONNECT_TIMEOUT`], with a near cache of `near_bytes` in
    /// front of it (0: none, every lookup asks Redis).
    pub async fn redis(url: &str, ttl: Duration, near_bytes: u64) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("bad Redis URL `{url}`: {e}"))?;
        let manager = tokio::time::timeout(REDIS_CONNECT_TIMEOUT, client.get_connection_manager())
            .await
            .map_err(|_| format!("Redis at {url} did not answer within {REDIS_CONNECT_TIMEOUT:?}"))?
            .map_err(|e| format!("Redis at {url}: {e}"))?;
        metrics::gauge!("kwi_cache_redis_up").set(1.0);
        Ok(Self {
            redis: Some(manager),
            local: (near_bytes > 0).then(|| local(near_bytes, ttl)),
            ttl,
            health: Arc::default(),
        })
    }

    /// The Redis connection, when this cache has one (the rate limiter shares it).
    pub fn redis_connection(&self) -> Option<ConnectionManager> {
        self.redis.clone()
    }

    /// Which kind this is.
    pub fn kind(&self) -> CacheKind {
        match self.redis {
            Some(_) => CacheKind::Redis,
            None => CacheKind::InProcess,
        }
    }

    /// The in-process part for `/readyz`: its bound, what it holds now, and whether it is the near
    /// cache in front of Redis.
    pub fn local_status(&self) -> serde_json::Value {
        let (max_bytes, entries, bytes) = self.local.as_ref().map_or((0, 0, 0), |l| {
            l.run_pending_tasks();
            let max = l.policy().max_capacity().unwrap_or(0);
            (max, l.entry_count(), l.weighted_size())
        });
        serde_json::json!({
            "role": match (&self.redis, &self.local) {
                (None, _) => "cache",
                (Some(_), Some(_)) => "near cache in front of Redis",
                (Some(_), None) => "off",
            },
            "max_bytes": max_bytes,
            "bytes": bytes,
            "entries": entries,
        })
    }

    /// Copies a value read back from Redis into the near cache (when there is one).
    fn admit(&self, key: &str, value: &Bytes) {
        if let Some(l) = &self.local {
            l.insert(key.to_string(), value.clone());
        }
    }

    /// Cache operations that failed since start (Redis down or slow).
    pub fn error_count(&self) -> u64 {
        self.health.errors.load(Ordering::Relaxed)
    }

    /// Redis, unless it is down and not due to be tried again ([`REDIS_RETRY_AFTER`]).
    fn redis_now(&self) -> Option<&ConnectionManager> {
        let m = self.redis.as_ref()?;
        if self.health.down.load(Ordering::Relaxed) && self.health.retry.skipping() {
            return None;
        }
        Some(m)
    }

    fn failed(&self, op: &str, err: impl std::fmt::Display) {
        self.health.retry.trip();
        self.health.errors.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("kwi_cache_redis_errors_total").increment(1);
        if self.health.down.swap(true, Ordering::Relaxed) {
            tracing::debug!(op, error = %err, "cache operation failed");
        } else {
            metrics::gauge!("kwi_cache_redis_up").set(0.0);
            tracing::warn!(
                op,
                error = %err,
                "Redis stopped answering; serving without the shared cache (misses) until it answers again"
            );
        }
    }

    /// Called when Redis answered: the first answer after a failure says so once.
    fn answered(&self) {
        if self.health.down.load(Ordering::Relaxed)
            && self.health.down.swap(false, Ordering::Relaxed)
        {
            metrics::gauge!("kwi_cache_redis_up").set(1.0);
            tracing::info!(
                errors = self.error_count(),
                "Redis answers again; the shared cache is back"
            );
        }
    }

    /// Looks a key up; any failure is a miss.
    pub async fn get(&self, key: &str) -> Option<Bytes> {
        if let Some(v) = self.get_near(key) {
            return Some(v);
        }
        match self.redis_now() {
            None => None,
            Some(m) => {
                let mut m = m.clone();
                match tokio::time::timeout(REDIS_OP_TIMEOUT, m.get::<_, Option<Vec<u8>>>(key)).await
                {
                    Ok(Ok(v)) => {
                        self.answered();
                        let v = v.map(Bytes::from);
                        if let Some(v) = &v {
                            self.admit(key, v);
                        }
                        v
                    }
                    Ok(Err(e)) => {
                        self.failed("get", e);
                        None
                    }
                    Err(_) => {
                        self.failed("get", "timeout");
                        None
                    }
                }
            }
        }
    }

    /// Looks a key up in the in-process part only (the whole cache without Redis, the near cache
    /// with it): no I/O. A miss here may still be in Redis ([`Self::fill_from_redis`] asks it).
    /// With Redis, a hit is also counted in `kwi_cache_near_hits_total`.
    pub fn get_near(&self, key: &str) -> Option<Bytes> {
        let v = self.local.as_ref().and_then(|l| l.get(key));
        if v.is_some() && self.redis.is_some() {
            metrics::counter!("kwi_cache_near_hits_total").increment(1);
        }
        v
    }

    /// Whether writes go to the in-process part: without Redis it is the cache; with Redis the near
    /// cache admits a value when it is read back from Redis (a forecast asked for twice), not when
    /// it is written, so one-off forecasts (a batch export, a sweep of horizons) never push the hot
    /// ones out, and computing a forecast costs no near-cache insert.
    fn local_on_write(&self) -> Option<&Local> {
        self.local.as_ref().filter(|_| self.redis.is_none())
    }

    /// Stores a value with the cache's TTL; failures are logged and counted, never returned.
    pub async fn set(&self, key: &str, value: Bytes) {
        if let Some(l) = self.local_on_write() {
            l.insert(key.to_string(), value.clone());
        }
        match self.redis_now() {
            None => {}
            Some(m) => {
                let mut m = m.clone();
                let secs = self.ttl.as_secs().max(1);
                match tokio::time::timeout(
                    REDIS_OP_TIMEOUT,
                    m.set_ex::<_, _, ()>(key, &*value, secs),
                )
                .await
                {
                    Ok(Ok(())) => self.answered(),
                    Ok(Err(e)) => self.failed("set", e),
                    Err(_) => self.failed("set", "timeout"),
                }
            }
        }
    }

    /// Looks many keys up: the in-process part first, then one Redis `MGET` for the rest
    /// ([`Self::fill_from_redis`]).
    pub async fn get_many<K: AsRef<str>>(&self, keys: &[K]) -> Vec<Option<Bytes>> {
        let mut out: Vec<Option<Bytes>> = keys.iter().map(|k| self.get_near(k.as_ref())).collect();
        self.fill_from_redis(keys, &mut out).await;
        out
    }

    /// Looks the keys `out` holds no value for up in Redis with one `MGET` and copies what it
    /// finds into the near cache; without Redis it does nothing, and a Redis failure leaves them
    /// misses.
    pub async fn fill_from_redis<K: AsRef<str>>(&self, keys: &[K], out: &mut [Option<Bytes>]) {
        let Some(m) = self.redis_now() else {
            return;
        };
        let wanted: Vec<usize> = (0..keys.len()).filter(|&i| out[i].is_none()).collect();
        if wanted.is_empty() {
            return;
        }
        let ask: Vec<&str> = wanted.iter().map(|&i| keys[i].as_ref()).collect();
        let mut m = m.clone();
        match tokio::time::timeout(
            REDIS_OP_TIMEOUT,
            redis::cmd("MGET")
                .arg(&ask)
                .query_async::<Vec<Option<Vec<u8>>>>(&mut m),
        )
        .await
        {
            Ok(Ok(v)) if v.len() == ask.len() => {
                self.answered();
                for (&i, b) in wanted.iter().zip(v) {
                    if let Some(b) = b.map(Bytes::from) {
                        self.admit(keys[i].as_ref(), &b);
                        out[i] = Some(b);
                    }
                }
            }
            Ok(Ok(v)) => self.failed("mget", format!("{} values for {} keys", v.len(), ask.len())),
            Ok(Err(e)) => self.failed("mget", e),
            Err(_) => self.failed("mget", "timeout"),
        }
    }

    /// Stores many values in one round trip (a Redis pipeline of `SET EX`); failures are logged
    /// and counted, never returned.
    pub async fn set_many(&self, entries: &[(String, Bytes)]) {
        if entries.is_empty() {
            return;
        }
        if let Some(l) = self.local_on_write() {
            for (k, v) in entries {
                l.insert(k.clone(), v.clone());
            }
        }
        match self.redis_now() {
            None => {}
            Some(m) => {
                let mut m = m.clone();
                let secs = self.ttl.as_secs().max(1);
                let mut pipe = redis::pipe();
                for (k, v) in entries {
                    pipe.set_ex(k, v.as_ref(), secs).ignore();
                }
                match tokio::time::timeout(REDIS_OP_TIMEOUT * 4, pipe.query_async::<()>(&mut m))
                    .await
                {
                    Ok(Ok(())) => self.answered(),
                    Ok(Err(e)) => self.failed("set_many", e),
                    Err(_) => self.failed("set_many", "timeout"),
                }
            }
        }
    }

    /// Checks the cache answers (always true in-process).
    pub async fn ping(&self) -> Result<(), String> {
        match &self.redis {
            None => Ok(()),
            Some(m) => {
                let mut m = m.clone();
                match tokio::time::timeout(
                    REDIS_OP_TIMEOUT,
                    redis::cmd("PING").query_async::<String>(&mut m),
                )
                .await
                {
                    Ok(Ok(_)) => {
                        self.answered();
                        Ok(())
                    }
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("timeout".into()),
                }
            }
        }
    }
}
