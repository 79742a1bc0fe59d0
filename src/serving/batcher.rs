//! The batcher and the compute path both forecast endpoints share.
//!
//! Single-keyword requests the in-process cache could not answer queue in the batcher and are
//! answered in batches: one cache lookup for all of them (one Redis `MGET`), then, for the keys not
//! found, [`Pipeline::compute_many`]: one volume query, one model call and one pipelined cache
//! write. Nothing waits to fill a batch: a batch is whatever queued while the previous ones ran (at
//! most [`COALESCE_LANES`] at once), so an idle server answers a lone request at once and a loaded
//! one amortises the round trips.

use std::sync::Arc;

use bytes::Bytes;
use kwi_features::{Horizon, Keyword, Platform};
use kwi_predict::Predictor;
use kwi_store::{PredictionRecord, Store};
use tokio::sync::{mpsc, oneshot};

use super::ServeError;
use super::body::{encode, forecast_many, prediction_record, series_from_volumes};
use super::persist::PERSIST_QUEUE;
use crate::cache::Cache;

/// Most values (summed series lengths) a light model ([`Predictor::is_light`]) forecasts on the
/// async worker itself: tens of microseconds of work, less than handing it to the blocking pool and
/// back (two thread switches). Anything heavier runs on the blocking pool.
pub const INLINE_VALUES: usize = 10_000;
/// Most single-keyword misses answered by one coalesced batch.
pub const COALESCE_MAX: usize = 64;
/// Coalesced batches computed at once (a new batch forms while these run).
pub const COALESCE_LANES: usize = 2;

/// What the batcher found for one single-keyword request.
#[derive(Debug, Clone)]
pub(crate) enum Answer {
    /// In the shared cache (Redis), though not in the near cache the handler looked at first.
    Cached(Bytes),
    /// Computed now (cached and queued for persistence).
    Computed(Bytes),
    /// The keyword has no search volume (listing data only).
    NoVolume,
}

/// One single-keyword miss waiting for the batcher.
pub(crate) struct Job {
    /// The keyword.
    pub key: (Platform, Keyword),
    /// Its cache key (written by the batch).
    pub cache_key: String,
    /// Steps to forecast.
    pub horizon: Horizon,
    /// Interval levels (checked against the model).
    pub levels: Arc<[f64]>,
    /// Model the request started with.
    pub model: Arc<Predictor>,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Result<Answer, ServeError>>,
}

/// Where forecasts are read from and go to: the store (volumes), the cache and the writer queue.
#[derive(Clone)]
pub(crate) struct Pipeline {
    pub store: Arc<dyn Store>,
    pub cache: Cache,
    pub persist: mpsc::Sender<PredictionRecord>,
}

impl Pipeline {
    /// Starts the batcher; it stops once every sender is dropped.
    pub fn spawn_batcher(&self) -> mpsc::Sender<Job> {
        let (tx, mut rx) = mpsc::channel::<Job>(4 * PERSIST_QUEUE);
        let lanes = Arc::new(tokio::sync::Semaphore::new(COALESCE_LANES));
        let this = self.clone();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let Ok(permit) = lanes.clone().acquire_owned().await else {
                    break;
                };
                let mut jobs = vec![first];
                while jobs.len() < COALESCE_MAX {
                    match rx.try_recv() {
                        Ok(j) => jobs.push(j),
                        Err(_) => break,
                    }
                }
                metrics::histogram!("kwi_coalesced_batch_size").record(jobs.len() as f64);
                let this = this.clone();
                tokio::spawn(async move {
                    this.run_jobs(jobs).await;
                    drop(permit);
                });
            }
        });
        tx
    }

    /// Answers a coalesced batch: keys found in the cache are answered from it; of the rest, jobs
    /// that share model, horizon and levels go through one [`Self::compute_many`] call; the groups
    /// run concurrently.
    async fn run_jobs(&self, jobs: Vec<Job>) {
        // The handlers already missed the in-process cache for these keys: only Redis is asked.
        let keys: Vec<&str> = jobs.iter().map(|j| j.cache_key.as_str()).collect();
        let mut found = vec![None; keys.len()];
        self.cache.fill_from_redis(&keys, &mut found).await;
        let mut jobs: Vec<Job> = jobs
            .into_iter()
            .zip(found)
            .filter_map(|(j, hit)| match hit {
                Some(bytes) => {
                    let _ = j.reply.send(Ok(Answer::Cached(bytes)));
                    None
                }
                None => Some(j),
            })
            .collect();
        let mut groups = Vec::new();
        while !jobs.is_empty() {
            let (model, horizon, levels) = {
                let j = &jobs[0];
                (j.model.clone(), j.horizon, j.levels.clone())
            };
            let (group, rest): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| {
                Arc::ptr_eq(&j.model, &model) && j.horizon == horizon && j.levels == levels
            });
            jobs = rest;
            groups.push((model, horizon, levels, group));
        }
        // Groups (different horizons, levels or models) run at the same time, not one after another.
        futures::future::join_all(groups.into_iter().map(
            |(model, horizon, levels, group)| async move {
                let keys: Vec<(Platform, Keyword)> = group.iter().map(|j| j.key.clone()).collect();
                let cache_keys: Vec<String> = group.iter().map(|j| j.cache_key.clone()).collect();
                match self
                    .compute_many(&model, &keys, &cache_keys, horizon, &levels)
                    .await
                {
                    Ok(bodies) => {
                        for (j, b) in group.into_iter().zip(bodies) {
                            let _ = j
                                .reply
                                .send(Ok(b.map_or(Answer::NoVolume, Answer::Computed)));
                        }
                    }
                    Err(e) => {
                        for j in group {
                            let _ = j.reply.send(Err(e.clone()));
                        }
                    }
                }
            },
        ))
        .await;
    }

    /// Forecasts stored keywords together: one volume query, one model call (on the blocking pool
    /// unless the model is light and the input small), the JSON bodies cached under `cache_keys`
    /// (one pipelined write) and queued for persistence. `None` for a keyword without search volume.
    pub async fn compute_many(
        &self,
        model: &Arc<Predictor>,
        keys: &[(Platform, Keyword)],
        cache_keys: &[String],
        horizon: Horizon,
        levels: &[f64],
    ) -> Result<Vec<Option<Bytes>>, ServeError> {
        let volumes = self.store.volumes_many(keys).await?;
        let mut series = Vec::with_capacity(keys.len());
        let mut series_of: Vec<Option<usize>> = Vec::with_capacity(keys.len());
        for (key, v) in keys.iter().zip(&volumes) {
            let s = series_from_volumes(key.0, &key.1, v);
            series_of.push(s.is_some().then_some(series.len()));
            if let Some(s) = s {
                series.push(s);
            }
        }
        let t = std::time::Instant::now();
        let values: usize = series.iter().map(|s| s.values.len()).sum();
        let bodies = if model.is_light() && values <= INLINE_VALUES {
            forecast_many(model, &series, horizon, levels)?
        } else {
            let (m, lv) = (model.clone(), levels.to_vec());
            tokio::task::spawn_blocking(move || forecast_many(&m, &series, horizon, &lv)).await??
        };
        metrics::histogram!("kwi_inference_seconds").record(t.elapsed().as_secs_f64());
        let mut out = Vec::with_capacity(keys.len());
        let mut entries = Vec::with_capacity(bodies.len());
        for ((key, ck), at) in keys.iter().zip(cache_keys).zip(&series_of) {
            let Some(b) = at.map(|j| &bodies[j]) else {
                out.push(None);
                continue;
            };
            let bytes = encode(b)?;
            if let Some(rec) = prediction_record(b, &key.1) {
                // Back-pressure only when the writer is 10,000 rows behind; never dropped.
                let _ = self.persist.send(rec).await;
            }
            entries.push((ck.clone(), bytes.clone()));
            out.push(Some(bytes));
        }
        self.cache.set_many(&entries).await;
        Ok(out)
    }
}
