//! Collectors: marketplace API clients behind one request path (pacing, daily budgets, retries,
//! raw responses kept) and the worker that runs the durable queue ([`kwi_store::Jobs`]).
//!
//! A source ([`SourceClient`]) only builds its requests and parses its bodies; [`Fetcher`] does
//! everything between: it takes one request from the day's budget (counted in the store, shared
//! by every worker), waits for the pacer, sends, keeps the response, and retries transient
//! failures with exponential backoff and jitter (honouring `Retry-After`, capped). A daily-quota
//! answer is never retried: the job goes back to the queue until the quota resets.

pub mod amazon;
pub mod ebay;
pub mod etsy;
mod fetch;
pub mod observe;
mod reforecast;
mod schedule;
pub mod search_terms;
mod token;
mod worker;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use kwi_features::ingest::Observation;
use kwi_store::{Job, RawResponse, Source, StoreError};
use serde::Serialize;

pub use fetch::{Fetched, Fetcher, Pacer, RetryPolicy};
pub use reforecast::{CHUNK_ATTEMPTS, ReforecastSnapshot, Reforecaster};
pub use schedule::{DailyLimits, SourceReport, report, run_scheduler};
pub use worker::{Settled, Worker, WorkerOptions};

/// Why a job did not finish.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Transient failures outlasted the retries (5xx, timeouts, resets, per-second 429).
    #[error("{0}")]
    Transient(String),
    /// The source's daily quota is spent (by our budget or by its answer): retry after `until`.
    #[error("daily quota of {api} spent; next attempt at {until}")]
    DailyQuota {
        /// The source.
        api: Source,
        /// When the quota resets.
        until: DateTime<Utc>,
    },
    /// A body that is not what the source documents (malformed, truncated, HTML, wrong types):
    /// nothing is written, the job goes to the dead letters with a sample of the body.
    #[error("{message}")]
    Invalid {
        /// What was wrong, and where in the body.
        message: String,
        /// The first bytes of the body.
        sample: String,
        /// The responses of the job so far, the bad one included.
        raw: Vec<RawResponse>,
    },
    /// The source refused the request for good (bad credentials, a bad request): dead letter.
    #[error("{0}")]
    Refused(String),
    /// The store failed; the job is left to its lease.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a collection produced: the observations to write and the responses to keep.
#[derive(Debug, Default)]
pub struct Collected {
    /// Observations, validated.
    pub rows: Vec<Observation>,
    /// Every response used, compressed.
    pub raw: Vec<RawResponse>,
}

/// One marketplace API.
#[async_trait]
pub trait SourceClient: Send + Sync {
    /// Which source.
    fn source(&self) -> Source;
    /// The fetcher its requests go through.
    fn fetcher(&self) -> &Fetcher;
    /// Collects one keyword for one period.
    async fn collect(&self, job: &Job) -> Result<Collected, JobError>;
    /// Parses kept 200 responses of one job again (`kwi collect replay`).
    fn reparse(&self, job: &Job, bodies: &[Vec<u8>]) -> Result<Vec<Observation>, String>;
}

/// Counters of one worker (or one `kwi collect` run).
#[derive(Debug, Default)]
pub struct Stats {
    requests: AtomicU64,
    retries: AtomicU64,
    rate_limited: AtomicU64,
    jobs_done: AtomicU64,
    jobs_rescheduled: AtomicU64,
    jobs_dead: AtomicU64,
    observations_written: AtomicU64,
}

/// A snapshot of [`Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// HTTP requests sent.
    pub requests: u64,
    /// Requests sent again after a transient failure.
    pub retries: u64,
    /// 429 answers received.
    pub rate_limited: u64,
    /// Jobs finished and written.
    pub jobs_done: u64,
    /// Jobs put back in the queue (transient failure, daily quota).
    pub jobs_rescheduled: u64,
    /// Jobs sent to the dead letters.
    pub jobs_dead: u64,
    /// Observations inserted or changed.
    pub observations_written: u64,
}

impl Stats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            requests: get(&self.requests),
            retries: get(&self.retries),
            rate_limited: get(&self.rate_limited),
            jobs_done: get(&self.jobs_done),
            jobs_rescheduled: get(&self.jobs_rescheduled),
            jobs_dead: get(&self.jobs_dead),
            observations_written: get(&self.observations_written),
        }
    }
}

/// The period a collection made on `day` is for: the Monday of its ISO week (weekly cadence).
pub fn weekly_period(day: NaiveDate) -> NaiveDate {
    use chrono::Datelike;
    day - chrono::Days::new(u64::from(day.weekday().num_days_from_monday()))
}

/// The next UTC midnight after `now` (when a per-day budget counted by UTC day resets).
pub fn next_utc_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    (now.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
}

/// The first `n` bytes of a body as text (lossy), for dead letters and error messages.
pub fn body_sample(body: &[u8], n: usize) -> String {
    let cut = &body[..body.len().min(n)];
    String::from_utf8_lossy(cut).into_owned()
}

/// A short, stable, non-secret name of a credential: the hex SHA-256 prefix (12 characters).
pub fn credential_id(secret: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(secret.as_bytes());
    d.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// The default lease of a claimed job.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(300);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekly_period_is_the_monday() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(weekly_period(d("2026-12-02")), d("2026-11-30"));
        assert_eq!(weekly_period(d("2026-11-30")), d("2026-11-30"));
        assert_eq!(weekly_period(d("2026-12-06")), d("2026-11-30"));
    }

    #[test]
    fn credential_ids_hide_the_secret() {
        let id = credential_id("keystring:shared_secret");
        assert_eq!(id.len(), 12);
        assert!(!id.contains("keystring"));
        assert_ne!(id, credential_id("keystring:other"));
    }
}
