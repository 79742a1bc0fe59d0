//! Sharded re-forecasting: `kwi-train reforecast` splits every stored keyword into chunks on the
//! collectors' queue ([`kwi_store::Jobs::enqueue_reforecast`]); every worker ([`Reforecaster`],
//! started by `kwi worker` and `kwi serve --worker`) claims chunks, forecasts each chunk's keywords
//! with the active model in one call, the same code the server answers with
//! ([`crate::serving::forecast_many`]), and writes the predictions in the transaction that finishes
//! the chunk. A worker killed mid-chunk wrote nothing; its lease runs out and another worker does the
//! chunk, so each keyword's prediction of a run is written once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use kwi_features::Horizon;
use kwi_features::params::DEFAULT_LEVELS;
use kwi_predict::Predictor;
use kwi_predict::registry;
use kwi_store::{PredictionRecord, ReforecastChunk, Store};
use serde::Serialize;
use tokio::sync::{Mutex, watch};

use super::worker::{Settled, WorkerOptions, hold_lease, poll_until_stopped};
use crate::serving::{forecast_many, prediction_record, series_from_volumes};

/// Claims of one chunk before it goes to the dead letters (a chunk fails only when the store or
/// the model does: retrying more would not help).
pub const CHUNK_ATTEMPTS: i32 = 3;

/// Counters of one re-forecasting worker.
#[derive(Debug, Default)]
struct Counters {
    chunks_done: AtomicU64,
    chunks_failed: AtomicU64,
    predictions: AtomicU64,
    without_volume: AtomicU64,
}

/// A snapshot of a re-forecasting worker's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReforecastSnapshot {
    /// Chunks forecast and written.
    pub chunks_done: u64,
    /// Chunks that failed (put back in the queue or dead).
    pub chunks_failed: u64,
    /// Predictions written.
    pub predictions: u64,
    /// Keywords of the chunks done that have no search volume (listing data only): no prediction.
    pub without_volume: u64,
}

/// Works the queue's re-forecast chunks.
pub struct Reforecaster {
    store: Arc<dyn Store>,
    options: WorkerOptions,
    /// The model in hand and the registry's active version it was loaded for (`None`: no model
    /// was active, the built-in baseline).
    model: Mutex<Option<(Option<String>, Arc<Predictor>)>>,
    counters: Counters,
}

impl Reforecaster {
    /// A re-forecasting worker named and leased as `options` say.
    pub fn new(store: Arc<dyn Store>, options: WorkerOptions) -> Self {
        Self {
            store,
            options,
            model: Mutex::new(None),
            counters: Counters::default(),
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> ReforecastSnapshot {
        let c = &self.counters;
        let get = |x: &AtomicU64| x.load(Ordering::Relaxed);
        ReforecastSnapshot {
            chunks_done: get(&c.chunks_done),
            chunks_failed: get(&c.chunks_failed),
            predictions: get(&c.predictions),
            without_volume: get(&c.without_volume),
        }
    }

    /// The registry's active model, loaded again only when the active version changed.
    async fn model(&self) -> anyhow::Result<Arc<Predictor>> {
        let active = registry::active_forecaster(self.store.as_ref())
            .await?
            .map(|m| m.version);
        let mut held = self.model.lock().await;
        if let Some((version, model)) = held.as_ref()
            && *version == active
        {
            return Ok(model.clone());
        }
        let model = Arc::new(registry::load_active_model(self.store.as_ref()).await?);
        tracing::info!(version = %model.manifest.version, "re-forecasting with this model");
        *held = Some((active, model.clone()));
        Ok(model)
    }

    /// Claims and works one ready chunk; `None` when none is ready.
    pub async fn run_one(&self) -> anyhow::Result<Option<(ReforecastChunk, Settled)>> {
        let now = Utc::now();
        let lease = chrono::Duration::from_std(self.options.lease)?;
        let Some(chunk) = self
            .store
            .claim_reforecast(&self.options.name, now, now + lease)
            .await?
        else {
            return Ok(None);
        };
        let label = format!("{} chunk {}/{}", chunk.run, chunk.index + 1, chunk.of);
        let started = std::time::Instant::now();
        let result = hold_lease(
            self.store.as_ref(),
            chunk.id,
            &label,
            &self.options.name,
            self.options.lease,
            self.forecast(&chunk),
        )
        .await?;
        let me = self.options.name.as_str();
        let settled = match result {
            Ok(rows) => {
                if self
                    .store
                    .finish_reforecast(chunk.id, me, &rows, Utc::now())
                    .await?
                {
                    let c = &self.counters;
                    c.chunks_done.fetch_add(1, Ordering::Relaxed);
                    c.predictions
                        .fetch_add(rows.len() as u64, Ordering::Relaxed);
                    c.without_volume
                        .fetch_add((chunk.keys.len() - rows.len()) as u64, Ordering::Relaxed);
                    Settled::Done
                } else {
                    Settled::LeaseLost
                }
            }
            Err(e) => {
                self.counters.chunks_failed.fetch_add(1, Ordering::Relaxed);
                let why = format!("{label}: {e:#}");
                let now = Utc::now();
                let kept = if chunk.attempts < CHUNK_ATTEMPTS {
                    tracing::warn!(attempts = chunk.attempts, "{why}; retrying");
                    let wait = chrono::Duration::seconds(1 << chunk.attempts.clamp(0, 10));
                    self.store
                        .retry_job(chunk.id, me, now + wait, &why, now)
                        .await?
                        .then_some(Settled::Rescheduled)
                } else {
                    tracing::error!("dead letter: {why}");
                    let why = format!("{why}; {} attempts used", chunk.attempts);
                    self.store
                        .bury_job(chunk.id, me, &why, None, &[], now)
                        .await?
                        .then_some(Settled::Dead)
                };
                kept.unwrap_or(Settled::LeaseLost)
            }
        };
        metrics::histogram!("kwi_reforecast_chunk_seconds").record(started.elapsed().as_secs_f64());
        metrics::counter!("kwi_reforecast_chunks_total", "outcome" => settled.as_str())
            .increment(1);
        Ok(Some((chunk, settled)))
    }

    /// The predictions of a chunk's keywords that have search volume, at the default horizon and
    /// levels the API serves.
    async fn forecast(&self, chunk: &ReforecastChunk) -> anyhow::Result<Vec<PredictionRecord>> {
        let model = self.model().await?;
        let volumes = self.store.volumes_many(&chunk.keys).await?;
        let (keys, series): (Vec<_>, Vec<_>) = chunk
            .keys
            .iter()
            .zip(&volumes)
            .filter_map(|((platform, keyword), v)| {
                series_from_volumes(*platform, keyword, v).map(|s| (keyword.clone(), s))
            })
            .unzip();
        let bodies = tokio::task::spawn_blocking(move || {
            forecast_many(&model, &series, Horizon::default(), &DEFAULT_LEVELS)
        })
        .await??;
        Ok(bodies
            .iter()
            .zip(&keys)
            .filter_map(|(b, k)| prediction_record(b, k))
            .collect())
    }

    /// Works until `stop` turns true: claims the next ready chunk, or sleeps `idle_poll` when none
    /// is. A chunk in hand is finished before stopping. One chunk at a time: the model call
    /// already uses the cores it is given.
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let idle = self.options.idle_poll;
        poll_until_stopped(
            "re-forecast worker",
            idle,
            idle.max(Duration::from_secs(1)),
            stop,
            || async { Ok(self.run_one().await?.is_some()) },
        )
        .await;
    }
}
