//! Usage counting and monthly quotas, off the request path: each request adds to counters in
//! memory; a task adds them to `usage_counters` every second (and at shutdown) and reads back the
//! month's total, which is what the quota is checked against (this instance's unflushed usage on
//! top). Several instances share the total through the database; between two flushes each may
//! admit up to a second of its own traffic past a quota.
//! API keys' `last_used_at` is recorded the same way (at most once a minute per key).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Datelike, Utc};
use kwi_store::{Store, UsageDelta};
use tokio::sync::mpsc;
use uuid::Uuid;

/// How often counters are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// `YYYY-MM` of `t` (UTC).
pub fn period_of(t: DateTime<Utc>) -> String {
    format!("{:04}-{:02}", t.year(), t.month())
}

/// The first instant of the month after the one holding `t` (when quotas renew).
pub fn next_period_start(t: DateTime<Utc>) -> DateTime<Utc> {
    kwi_store::month_bounds(t).1
}

#[derive(Debug, Default, Clone)]
struct Counter {
    /// The month's lookups in the store at the last flush (`None`: not read yet).
    stored: Option<i64>,
    /// Not yet written.
    lookups: i64,
    requests: i64,
}

#[derive(Default)]
struct State {
    counters: HashMap<(Uuid, String), Counter>,
    touched: HashMap<Uuid, DateTime<Utc>>,
    /// When each key's use was last queued for writing.
    queued: HashMap<Uuid, DateTime<Utc>>,
    /// Counts taken out of `counters` and not yet known to be stored (a flush is writing them).
    flushing: bool,
    /// Bumped each time a flush ends, written or not.
    flushes: u64,
}

/// Refused: the month's lookups would pass the plan's quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverQuota {
    /// Lookups used this month.
    pub used: i64,
    /// The plan's monthly lookups.
    pub limit: i64,
}

/// The usage meter.
#[derive(Clone)]
pub struct Meter {
    store: Arc<dyn Store>,
    state: Arc<Mutex<State>>,
    /// Dropped with the last meter clone: the flusher then writes what is left and stops.
    _alive: mpsc::Sender<()>,
}

impl Meter {
    /// The meter and its flusher (await the handle after every clone is dropped: the last counts
    /// are written).
    pub fn start(store: Arc<dyn Store>) -> (Self, tokio::task::JoinHandle<()>) {
        let (alive, mut closed) = mpsc::channel::<()>(1);
        let state: Arc<Mutex<State>> = Arc::default();
        let meter = Self {
            store: store.clone(),
            state: state.clone(),
            _alive: alive,
        };
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => flush(store.as_ref(), &state).await,
                    None = closed.recv() => {
                        flush(store.as_ref(), &state).await;
                        break;
                    }
                }
            }
        });
        (meter, task)
    }

    /// Counts one request of `user`.
    pub fn request(&self, user: Uuid) {
        let period = period_of(Utc::now());
        let mut s = self.state.lock().expect("meter");
        s.counters.entry((user, period)).or_default().requests += 1;
    }

    /// Records that key `key` was used now (written at most once a minute).
    pub fn touch_key(&self, key: Uuid) {
        let now = Utc::now();
        let mut s = self.state.lock().expect("meter");
        if s.queued
            .get(&key)
            .is_some_and(|t| now - *t < chrono::Duration::seconds(60))
        {
            return;
        }
        s.queued.insert(key, now);
        s.touched.insert(key, now);
    }

    /// Charges `n` lookups to `user`, refusing when that passes `limit` (`None`: unlimited).
    pub async fn charge(&self, user: Uuid, n: i64, limit: Option<i64>) -> Result<(), OverQuota> {
        let period = period_of(Utc::now());
        let key = (user, period);
        let known = {
            let s = self.state.lock().expect("meter");
            s.counters.get(&key).and_then(|c| c.stored)
        };
        if known.is_none() && limit.is_some() {
            // First lookup this month on this instance: read the stored total once.
            let stored = match self.store.usage(user, &key.1).await {
                Ok((lookups, _)) => lookups,
                Err(e) => {
                    tracing::warn!(error = %e, "usage: cannot read the month's total; counting from 0");
                    0
                }
            };
            let mut s = self.state.lock().expect("meter");
            s.counters
                .entry(key.clone())
                .or_default()
                .stored
                .get_or_insert(stored);
        }
        let mut s = self.state.lock().expect("meter");
        let c = s.counters.entry(key).or_default();
        if let Some(limit) = limit {
            let used = c.stored.unwrap_or(0) + c.lookups;
            if used + n > limit {
                return Err(OverQuota { used, limit });
            }
        }
        c.lookups += n;
        Ok(())
    }

    /// The month's lookups of `user` as this instance sees them (stored + unflushed).
    ///
    /// The stored total and the unflushed counts are only added when no flush moved counts from
    /// one to the other in between (a flush takes them out of memory before its write commits):
    /// otherwise the read is retried, so a count is never missed or counted twice.
    pub async fn used(&self, user: Uuid) -> kwi_store::Result<(i64, i64)> {
        let period = period_of(Utc::now());
        loop {
            let before = {
                let s = self.state.lock().expect("meter");
                (!s.flushing).then_some(s.flushes)
            };
            let Some(before) = before else {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                continue;
            };
            let (lookups, requests) = self.store.usage(user, &period).await?;
            let s = self.state.lock().expect("meter");
            if s.flushing || s.flushes != before {
                continue;
            }
            let pending = s.counters.get(&(user, period)).cloned().unwrap_or_default();
            return Ok((lookups + pending.lookups, requests + pending.requests));
        }
    }

    /// Writes the counters now (tests; the flusher does it every [`FLUSH_EVERY`]).
    pub async fn flush(&self) {
        flush(self.store.as_ref(), &self.state).await;
    }
}

/// Writes pending counts and key touches; on failure they are kept for the next flush.
async fn flush(store: &dyn Store, state: &Mutex<State>) {
    write_counts(store, state).await;
    let mut s = state.lock().expect("meter");
    s.flushing = false;
    s.flushes += 1;
}

async fn write_counts(store: &dyn Store, state: &Mutex<State>) {
    let (deltas, touched) = {
        let mut s = state.lock().expect("meter");
        s.flushing = true;
        let deltas: Vec<UsageDelta> = s
            .counters
            .iter_mut()
            .filter(|(_, c)| c.lookups > 0 || c.requests > 0)
            .map(|((user, period), c)| {
                let d = UsageDelta {
                    user_id: *user,
                    period: period.clone(),
                    lookups: c.lookups,
                    requests: c.requests,
                };
                c.lookups = 0;
                c.requests = 0;
                d
            })
            .collect();
        let touched: Vec<(Uuid, DateTime<Utc>)> = s.touched.drain().collect();
        // Months that are over and fully written are forgotten.
        let current = period_of(Utc::now());
        s.counters
            .retain(|(_, p), c| *p == current || c.lookups > 0 || c.requests > 0);
        (deltas, touched)
    };
    if !touched.is_empty()
        && let Err(e) = store.touch_api_keys(&touched).await
    {
        tracing::warn!(error = %e, "cannot record API keys' last use");
    }
    if deltas.is_empty() {
        return;
    }
    if let Err(e) = store.add_usage(&deltas).await {
        tracing::warn!(error = %e, rows = deltas.len(), "cannot write usage counters; retrying");
        let mut s = state.lock().expect("meter");
        for d in deltas {
            let c = s.counters.entry((d.user_id, d.period)).or_default();
            c.lookups += d.lookups;
            c.requests += d.requests;
        }
        return;
    }
    {
        let mut s = state.lock().expect("meter");
        for d in &deltas {
            if let Some(c) = s.counters.get_mut(&(d.user_id, d.period.clone())) {
                c.stored = c.stored.map(|v| v + d.lookups);
            }
        }
    }
    // Read back the totals the quota is checked against (other instances' usage included).
    for d in &deltas {
        if let Ok((lookups, _)) = store.usage(d.user_id, &d.period).await {
            let mut s = state.lock().expect("meter");
            if let Some(c) = s.counters.get_mut(&(d.user_id, d.period.clone())) {
                c.stored = Some(lookups);
            }
        }
    }
}
