//! Prediction cache: Redis when configured, an in-process cache otherwise.
//!
//! A cache failure never fails a request: `get` degrades to a miss and `set` to a no-op, and the
//! failure is counted so `/readyz` can report it. Redis reconnects by itself (connection manager).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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

#[derive(Clone)]
enum Inner {
    Redis(ConnectionManager),
    Local(moka::future::Cache<String, Arc<[u8]>>),
}

/// Byte-value cache with TTL.
#[derive(Clone)]
pub struct Cache {
    inner: Inner,
    ttl: Duration,
    errors: Arc<AtomicU64>,
}

impl Cache {
    /// An in-process cache holding at most `capacity` entries.
    pub fn in_process(capacity: u64, ttl: Duration) -> Self {
        Self {
            inner: Inner::Local(
                moka::future::Cache::builder()
                    .max_capacity(capacity)
                    .time_to_live(ttl)
                    .build(),
            ),
            ttl,
            errors: Arc::default(),
        }
    }

    /// Connects to Redis within [`REDIS_CONNECT_TIMEOUT`].
    pub async fn redis(url: &str, ttl: Duration) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("bad Redis URL `{url}`: {e}"))?;
        let manager = tokio::time::timeout(REDIS_CONNECT_TIMEOUT, client.get_connection_manager())
            .await
            .map_err(|_| format!("Redis at {url} did not answer within {REDIS_CONNECT_TIMEOUT:?}"))?
            .map_err(|e| format!("Redis at {url}: {e}"))?;
        Ok(Self {
            inner: Inner::Redis(manager),
            ttl,
            errors: Arc::default(),
        })
    }

    /// Which kind this is.
    pub fn kind(&self) -> CacheKind {
        match self.inner {
            Inner::Redis(_) => CacheKind::Redis,
            Inner::Local(_) => CacheKind::InProcess,
        }
    }

    /// Cache operations that failed since start (Redis down or slow).
    pub fn error_count(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    fn failed(&self, op: &str, err: impl std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(op, error = %err, "cache operation failed; continuing without cache");
    }

    /// Looks a key up; any failure is a miss.
    pub async fn get(&self, key: &str) -> Option<Arc<[u8]>> {
        match &self.inner {
            Inner::Local(c) => c.get(key).await,
            Inner::Redis(m) => {
                let mut m = m.clone();
                match tokio::time::timeout(REDIS_OP_TIMEOUT, m.get::<_, Option<Vec<u8>>>(key)).await
                {
                    Ok(Ok(v)) => v.map(Arc::from),
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

    /// Stores a value with the cache's TTL; failures are logged and counted, never returned.
    pub async fn set(&self, key: &str, value: Arc<[u8]>) {
        match &self.inner {
            Inner::Local(c) => c.insert(key.to_string(), value).await,
            Inner::Redis(m) => {
                let mut m = m.clone();
                let secs = self.ttl.as_secs().max(1);
                match tokio::time::timeout(
                    REDIS_OP_TIMEOUT,
                    m.set_ex::<_, _, ()>(key, &*value, secs),
                )
                .await
                {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => self.failed("set", e),
                    Err(_) => self.failed("set", "timeout"),
                }
            }
        }
    }

    /// Looks many keys up in one round trip (Redis `MGET`); any failure is all misses.
    pub async fn get_many(&self, keys: &[String]) -> Vec<Option<Arc<[u8]>>> {
        if keys.is_empty() {
            return Vec::new();
        }
        match &self.inner {
            Inner::Local(c) => {
                let mut out = Vec::with_capacity(keys.len());
                for k in keys {
                    out.push(c.get(k).await);
                }
                out
            }
            Inner::Redis(m) => {
                let mut m = m.clone();
                match tokio::time::timeout(
                    REDIS_OP_TIMEOUT,
                    redis::cmd("MGET")
                        .arg(keys)
                        .query_async::<Vec<Option<Vec<u8>>>>(&mut m),
                )
                .await
                {
                    Ok(Ok(v)) if v.len() == keys.len() => {
                        v.into_iter().map(|b| b.map(Arc::from)).collect()
                    }
                    Ok(Ok(v)) => {
                        self.failed(
                            "mget",
                            format!("{} values for {} keys", v.len(), keys.len()),
                        );
                        vec![None; keys.len()]
                    }
                    Ok(Err(e)) => {
                        self.failed("mget", e);
                        vec![None; keys.len()]
                    }
                    Err(_) => {
                        self.failed("mget", "timeout");
                        vec![None; keys.len()]
                    }
                }
            }
        }
    }

    /// Stores many values in one round trip (a Redis pipeline of `SET EX`); failures are logged
    /// and counted, never returned.
    pub async fn set_many(&self, entries: &[(String, Arc<[u8]>)]) {
        if entries.is_empty() {
            return;
        }
        match &self.inner {
            Inner::Local(c) => {
                for (k, v) in entries {
                    c.insert(k.clone(), v.clone()).await;
                }
            }
            Inner::Redis(m) => {
                let mut m = m.clone();
                let secs = self.ttl.as_secs().max(1);
                let mut pipe = redis::pipe();
                for (k, v) in entries {
                    pipe.set_ex(k, v.as_ref(), secs).ignore();
                }
                match tokio::time::timeout(REDIS_OP_TIMEOUT * 4, pipe.query_async::<()>(&mut m))
                    .await
                {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => self.failed("set_many", e),
                    Err(_) => self.failed("set_many", "timeout"),
                }
            }
        }
    }

    /// Checks the cache answers (always true in-process).
    pub async fn ping(&self) -> Result<(), String> {
        match &self.inner {
            Inner::Local(_) => Ok(()),
            Inner::Redis(m) => {
                let mut m = m.clone();
                match tokio::time::timeout(
                    REDIS_OP_TIMEOUT,
                    redis::cmd("PING").query_async::<String>(&mut m),
                )
                .await
                {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("timeout".into()),
                }
            }
        }
    }
}
