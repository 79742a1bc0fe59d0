//! Rate limiting: GCRA (the generic cell rate algorithm, a leaky bucket kept as one timestamp per
//! caller, the "theoretical arrival time"). With Redis, the state lives there and one Lua script
//! (one round trip, Redis `TIME` as the only clock) checks and updates it, so every instance
//! shares one limit per caller; without Redis, or while it is down, the same arithmetic runs in
//! process (each decision taken so because Redis failed counts in `kwi_rate_limit_fallbacks_total`).
//!
//! Why not `governor`: it keeps state in process only (no shared limit across instances), and the
//! in-process fallback must compute exactly what the script computes, so the headers a client sees
//! do not change meaning when Redis goes away. The formula is [`gcra`], eight lines, tested here and
//! against Redis in `tests/api`.
//!
//! Fast callers (the `internal` plan, the load benchmark) would pay a Redis round trip per request
//! for a limit they never reach; so a caller whose plan allows more than 100 requests a second takes
//! a lease of 10 ms worth of requests (at most [`MAX_LEASE`]) per script call and spends it locally
//! for up to a second. A slow plan takes a lease of one: exact.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::aio::ConnectionManager;

/// Most requests one lease holds.
pub const MAX_LEASE: i64 = 10_000;
/// How long a lease may be spent locally.
const LEASE_LIFE: Duration = Duration::from_secs(1);
/// How long a Redis call may take before the in-process limiter answers instead.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

/// A limit: `per_minute` sustained, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Name shown in the `RateLimit-Policy` header and in 429 bodies (the plan's name).
    pub name: &'static str,
    /// Sustained requests per minute.
    pub per_minute: i64,
    /// Requests allowed at once.
    pub burst: i64,
}

impl Policy {
    /// Microseconds between two requests at the sustained rate.
    fn interval_us(self) -> f64 {
        60_000_000.0 / self.per_minute.max(1) as f64
    }

    /// The bucket's depth in microseconds.
    fn tolerance_us(self) -> f64 {
        self.interval_us() * self.burst.max(1) as f64
    }

    /// Requests one script call reserves: 10 ms worth, 1 for slow plans.
    fn lease(self) -> i64 {
        (self.per_minute / 6_000).clamp(1, MAX_LEASE)
    }
}

/// What the limiter decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// Whether the request may go on.
    pub allowed: bool,
    /// Requests that could still be made at once after this one.
    pub remaining: i64,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
    /// Seconds until a request would be allowed (0 when allowed).
    pub retry_after_secs: u64,
    /// The caller's credential was revoked on another instance (Redis marker).
    pub revoked: bool,
}

/// One GCRA step: the caller's `tat` (µs; 0 for a new caller) at `now` (µs), asking for `cost`
/// requests. Returns (requests granted (0 = refused), new tat, remaining, µs until a request is
/// allowed, µs until the bucket is full). The Lua script below is this function, line for line.
pub fn gcra(tat: f64, now: f64, policy: Policy, cost: i64) -> (i64, f64, i64, f64, f64) {
    let t = policy.interval_us();
    let tau = policy.tolerance_us();
    let tat = tat.max(now);
    let available = ((now + tau - tat) / t).floor() as i64;
    if available < 1 {
        return (0, tat, 0, tat + t - tau - now, tat - now);
    }
    let granted = cost.min(available);
    let new_tat = tat + granted as f64 * t;
    (granted, new_tat, available - granted, 0.0, new_tat - now)
}

/// [`gcra`] in Redis: KEYS[1] the caller's tat, KEYS[2] its revocation marker; ARGV interval µs,
/// tolerance µs, cost. Returns {granted, remaining, retry µs, reset µs} or {-1, 0, 0, 0} when the
/// marker exists. Both keys share one hash tag, so the script is valid on Redis Cluster.
const SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then return {-1, 0, 0, 0} end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local t = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local available = math.floor((now + tau - tat) / t)
if available < 1 then return {0, 0, math.ceil(tat + t - tau - now), math.ceil(tat - now)} end
local granted = math.min(cost, available)
local new_tat = tat + granted * t
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.max(1, math.ceil((new_tat - now) / 1000)))
return {granted, available - granted, 0, math.ceil(new_tat - now)}
";

/// Per-caller state kept in process.
#[derive(Debug, Default)]
struct Slot {
    /// The in-process tat (µs), used without Redis.
    tat: f64,
    /// Requests left of the current Redis lease, and until when it may be spent.
    lease: i64,
    lease_until: Option<Instant>,
    /// What Redis last said remained and how long until full (for the headers while leasing).
    remaining: i64,
    reset_secs: u64,
}

/// The rate limiter.
#[derive(Clone)]
pub struct Limiter {
    redis: Option<ConnectionManager>,
    script: Arc<redis::Script>,
    slots: moka::sync::Cache<String, Arc<Mutex<Slot>>>,
    /// Last time a Redis failure was logged (one warning a minute at most).
    warned: Arc<Mutex<Option<Instant>>>,
    /// Tripped by a Redis failure: decisions are then taken in process for the cache's
    /// [`crate::cache::REDIS_RETRY_AFTER`], so a request does not wait out the Redis timeout.
    redis_backoff: Arc<crate::backoff::Backoff>,
}

fn now_us() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as f64)
        .unwrap_or(0.0)
}

fn secs(us: f64) -> u64 {
    (us.max(0.0) / 1_000_000.0).ceil() as u64
}

/// Redis keys of a caller: its state and its revocation marker (one hash tag).
fn keys(subject: &str) -> (String, String) {
    (
        format!("kwi:{{rl:{subject}}}"),
        format!("kwi:{{rl:{subject}}}:revoked"),
    )
}

impl Limiter {
    /// A limiter on Redis when given, else in process.
    pub fn new(redis: Option<ConnectionManager>) -> Self {
        Self {
            redis,
            script: Arc::new(redis::Script::new(SCRIPT)),
            slots: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_idle(Duration::from_secs(600))
                .build(),
            warned: Arc::default(),
            redis_backoff: Arc::new(crate::backoff::Backoff::new(
                crate::cache::REDIS_RETRY_AFTER,
            )),
        }
    }

    /// Whether the limits are shared through Redis.
    pub fn shared(&self) -> bool {
        self.redis.is_some()
    }

    fn slot(&self, subject: &str) -> Arc<Mutex<Slot>> {
        self.slots.get_with_by_ref(subject, Arc::default)
    }

    /// One request by `subject` (an API key id, a user id, `login:<email>`) under `policy`.
    pub async fn check(&self, subject: &str, policy: Policy) -> Decision {
        let slot = self.slot(subject);
        let redis = self
            .redis
            .as_ref()
            .filter(|_| !self.redis_backoff.skipping());
        if redis.is_none() && self.redis.is_some() {
            metrics::counter!("kwi_rate_limit_fallbacks_total").increment(1);
        }
        if let Some(redis) = redis {
            {
                let mut s = slot.lock().expect("limiter slot");
                if s.lease > 0 && s.lease_until.is_some_and(|u| Instant::now() < u) {
                    s.lease -= 1;
                    return Decision {
                        allowed: true,
                        remaining: s.remaining,
                        reset_secs: s.reset_secs,
                        retry_after_secs: 0,
                        revoked: false,
                    };
                }
            }
            match self.remote(redis.clone(), subject, policy).await {
                Ok(d) => {
                    let mut s = slot.lock().expect("limiter slot");
                    if d.decision.allowed {
                        s.lease = d.granted - 1;
                        s.lease_until = Some(Instant::now() + LEASE_LIFE);
                    } else {
                        s.lease = 0;
                    }
                    s.remaining = d.decision.remaining;
                    s.reset_secs = d.decision.reset_secs;
                    return d.decision;
                }
                Err(e) => {
                    self.redis_backoff.trip();
                    metrics::counter!("kwi_rate_limit_fallbacks_total").increment(1);
                    self.warn(&e);
                }
            }
        }
        let mut s = slot.lock().expect("limiter slot");
        let (granted, tat, remaining, retry, reset) = gcra(s.tat, now_us(), policy, 1);
        s.tat = tat;
        Decision {
            allowed: granted > 0,
            remaining,
            reset_secs: secs(reset),
            retry_after_secs: if granted > 0 { 0 } else { secs(retry).max(1) },
            revoked: false,
        }
    }

    async fn remote(
        &self,
        mut conn: ConnectionManager,
        subject: &str,
        policy: Policy,
    ) -> Result<Remote, String> {
        let (state, marker) = keys(subject);
        let lease = policy.lease();
        let mut call = self.script.key(state);
        call.key(marker)
            .arg(policy.interval_us())
            .arg(policy.tolerance_us())
            .arg(lease);
        let reply: Vec<i64> = tokio::time::timeout(REDIS_TIMEOUT, call.invoke_async(&mut conn))
            .await
            .map_err(|_| format!("Redis did not answer within {REDIS_TIMEOUT:?}"))?
            .map_err(|e| e.to_string())?;
        let [granted, remaining, retry, reset] = reply[..] else {
            return Err(format!("unexpected limiter reply {reply:?}"));
        };
        Ok(Remote {
            granted,
            decision: Decision {
                allowed: granted > 0,
                remaining: remaining + (granted - 1).max(0),
                reset_secs: secs(reset as f64),
                retry_after_secs: if granted > 0 {
                    0
                } else {
                    secs(retry as f64).max(1)
                },
                revoked: granted < 0,
            },
        })
    }

    /// Marks `subject` revoked for every instance (Redis only): its next script call answers
    /// "revoked" for the next `for_secs`; this instance's own caches are cleared by the caller.
    pub async fn mark_revoked(&self, subject: &str, for_secs: u64) {
        self.slots.invalidate(subject);
        if let Some(redis) = &self.redis {
            let (_, marker) = keys(subject);
            let mut conn = redis.clone();
            let r: Result<(), _> = redis::cmd("SET")
                .arg(&marker)
                .arg(1)
                .arg("EX")
                .arg(for_secs)
                .query_async(&mut conn)
                .await;
            if let Err(e) = r {
                self.warn(&e.to_string());
            }
        }
    }

    fn warn(&self, error: &str) {
        let mut last = self.warned.lock().expect("limiter warn");
        if last.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
            *last = Some(Instant::now());
            tracing::warn!(
                error,
                "rate limiter: Redis unavailable; limiting in process"
            );
        }
    }
}

struct Remote {
    granted: i64,
    decision: Decision,
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEN: Policy = Policy {
        name: "free",
        per_minute: 10,
        burst: 10,
    };

    #[test]
    fn gcra_allows_the_burst_then_one_per_interval() {
        let mut tat = 0.0;
        let now = 1e15;
        for i in 0..10 {
            let (g, t, remaining, _, _) = gcra(tat, now, TEN, 1);
            assert_eq!((g, remaining), (1, 9 - i), "request {i}");
            tat = t;
        }
        let (g, _, remaining, retry, _) = gcra(tat, now, TEN, 1);
        assert_eq!((g, remaining), (0, 0));
        // One request every 6 s at 10 a minute.
        assert!((retry - 6e6).abs() < 1.0, "{retry}");
        let (g, ..) = gcra(tat, now + 6e6, TEN, 1);
        assert_eq!(g, 1);
    }

    #[test]
    fn leases_grant_what_is_available() {
        let fast = Policy {
            name: "internal",
            per_minute: 100_000_000,
            burst: 100_000_000,
        };
        assert_eq!(fast.lease(), MAX_LEASE);
        assert_eq!(TEN.lease(), 1);
        let (g, _, remaining, ..) = gcra(0.0, 1e15, TEN, 25);
        assert_eq!((g, remaining), (10, 0));
    }

    #[tokio::test]
    async fn in_process_limiter_refuses_after_the_burst() {
        let l = Limiter::new(None);
        for _ in 0..10 {
            assert!(l.check("k", TEN).await.allowed);
        }
        let d = l.check("k", TEN).await;
        assert!(!d.allowed);
        assert!((5..=6).contains(&d.retry_after_secs), "{d:?}");
        assert!(l.check("other", TEN).await.allowed);
    }
}
