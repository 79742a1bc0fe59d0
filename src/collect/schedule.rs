//! The scheduler (watched keywords → jobs, once per period of their cadence) and the collector
//! status that `GET /v1/collector/status` answers and the Prometheus gauges show.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use kwi_store::{SCHEDULER_LEASE, Source, Store, StoreError};
use serde::Serialize;
use tokio::sync::watch;

/// Requests per UTC day each source's credential may make (what quota left is counted against).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyLimits {
    /// Per source; a source missing here has no known limit.
    pub per_day: Vec<(Source, i64)>,
}

impl Default for DailyLimits {
    /// The marketplaces' published defaults (Etsy 10,000, eBay Browse 5,000) and our own SP-API
    /// cap (100,000: searchCatalogItems has no daily quota).
    fn default() -> Self {
        Self {
            per_day: vec![
                (Source::Etsy, super::etsy::DEFAULT_PER_DAY),
                (Source::Ebay, super::ebay::DEFAULT_PER_DAY),
                (Source::Amazon, super::amazon::DEFAULT_PER_DAY),
            ],
        }
    }
}

impl DailyLimits {
    fn of(&self, source: Source) -> Option<i64> {
        self.per_day
            .iter()
            .find(|(s, _)| *s == source)
            .map(|(_, n)| *n)
    }
}

/// One source's collection at a glance.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SourceReport {
    /// The source.
    pub source: Source,
    /// Jobs waiting (due or not).
    pub queued: i64,
    /// Jobs leased by a worker now.
    pub running: i64,
    /// Jobs done.
    pub done: i64,
    /// Jobs in the dead letters.
    pub dead: i64,
    /// When a job last finished.
    pub last_success: Option<chrono::DateTime<Utc>>,
    /// The latest failure recorded on a job.
    pub last_error: Option<String>,
    /// Requests made today (UTC), every worker and credential.
    pub requests_today: i64,
    /// Requests a credential may make per UTC day (`null`: no known limit).
    pub daily_limit: Option<i64>,
    /// What is left of it today.
    pub quota_left: Option<i64>,
}

/// Reads the queue and today's budgets, and sets the gauges `kwi_collect_queue_depth{source}`
/// (queued + running) and `kwi_collect_quota_left{source}`.
pub async fn report(
    store: &dyn Store,
    limits: &DailyLimits,
) -> Result<Vec<SourceReport>, StoreError> {
    let today = Utc::now().date_naive();
    let status = store.queue_status(today).await?;
    Ok(status
        .into_iter()
        .map(|(source, s)| {
            let daily_limit = limits.of(source);
            let quota_left = daily_limit.map(|l| (l - s.requests_today).max(0));
            metrics::gauge!("kwi_collect_queue_depth", "source" => source.as_str())
                .set((s.queued + s.running) as f64);
            if let Some(q) = quota_left {
                metrics::gauge!("kwi_collect_quota_left", "source" => source.as_str())
                    .set(q as f64);
            }
            SourceReport {
                source,
                queued: s.queued,
                running: s.running,
                done: s.done,
                dead: s.dead,
                last_success: s.last_success,
                last_error: s.last_error,
                requests_today: s.requests_today,
                daily_limit,
                quota_left,
            }
        })
        .collect())
}

/// Queues the due collections of watched keywords every `every` (at once on start, which is how
/// a scheduler that was down catches up), and refreshes the gauges, until `stop` turns true.
/// Any number of schedulers may run: only the one holding the store's
/// [`kwi_store::SCHEDULER_LEASE`] (three periods long, renewed each period, given up on stop)
/// queues, and a period's job is queued once anyway (its key is unique).
pub async fn run_scheduler(
    store: Arc<dyn Store>,
    limits: DailyLimits,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let holder = kwi_store::instance_id();
    let ttl =
        chrono::Duration::from_std(every.saturating_mul(3)).unwrap_or(chrono::Duration::hours(1));
    loop {
        let now = Utc::now();
        // One scheduler across instances: the one holding the lease queues the watched keywords.
        match store.lead(SCHEDULER_LEASE, holder, now, now + ttl).await {
            Ok(true) => match store.schedule_watches(now.date_naive(), now).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(queued = n, "scheduler: watched keywords queued"),
                Err(e) => tracing::warn!(error = %e, "scheduler: cannot queue watched keywords"),
            },
            Ok(false) => tracing::debug!("scheduler: another instance holds the scheduler's lease"),
            Err(e) => tracing::warn!(error = %e, "scheduler: cannot read its lease"),
        }
        if let Err(e) = report(store.as_ref(), &limits).await {
            tracing::warn!(error = %e, "scheduler: cannot read the queue");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            changed = stop.changed() => if changed.is_err() { break },
        }
        if *stop.borrow() {
            break;
        }
    }
    if let Err(e) = store.release(SCHEDULER_LEASE, holder).await {
        tracing::warn!(error = %e, "scheduler: cannot give its lease up");
    }
}
