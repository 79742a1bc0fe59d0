//! "Skip it for a moment": after a dependency failed, callers go without it until a short time
//! has passed, then the next caller tries it again, so requests do not each wait out its timeout
//! while it is down. One gate each for the cache's and the rate limiter's Redis and for the
//! accounts' store lookups.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// A gate tripped by a failure; see the module docs.
#[derive(Debug, Default)]
pub struct Backoff {
    /// Until when (ms since the Unix epoch) callers skip the dependency; 0: never tripped.
    until_ms: AtomicI64,
    /// How long a failure makes them skip it.
    for_ms: i64,
}

impl Backoff {
    /// A gate that skips the dependency for `pause` after each failure.
    pub fn new(pause: Duration) -> Self {
        Self {
            until_ms: AtomicI64::new(0),
            for_ms: i64::try_from(pause.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// Whether callers should go without the dependency now.
    pub fn skipping(&self) -> bool {
        let until = self.until_ms.load(Ordering::Relaxed);
        until != 0 && now_ms() < until
    }

    /// The dependency just failed.
    pub fn trip(&self) {
        self.until_ms
            .store(now_ms().saturating_add(self.for_ms), Ordering::Relaxed);
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
