//! The forecasting service behind the HTTP layer: the active model (hot-swappable), cached and
//! single-flight forecasts, and the background writer that persists every computed forecast.
//!
//! - The active model lives in an `ArcSwap`: a request takes an `Arc` to the model at its start, so
//!   a swap never disturbs in-flight requests; the old model is freed when the last one finishes.
//! - Cache keys carry the model version and the keyword's data version (`keyword_data.last_updated`),
//!   so new data or a new model can never be answered from a stale entry. The data versions are kept
//!   in process ([`DataVersions`]) so a cache hit costs no database round trip; a watcher polls the
//!   newest change in the store every second (`--data-poll-ms`) and drops them all when it moves, so
//!   new data is picked up within one poll interval.
//! - Concurrent misses on one key compute once ([`SingleFlight`] coalesces them). The
//!   handler looks in the in-process cache only; what it misses goes to the batcher, which asks
//!   Redis for the whole batch with one `MGET` before computing what is still missing.
//! - Inference runs on the blocking pool, never on the async workers, except a light model's
//!   (baselines only) on a small batch: microseconds of work, cheaper than the thread hand-off
//!   ([`INLINE_VALUES`]).
//! - Computed forecasts go through a bounded queue to a writer that inserts them in batches; on
//!   shutdown the queue is drained before the process exits.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use chrono::{Duration as Days, NaiveDate};
use kwi_features::series::{Series, regular_series, regularise};
use kwi_features::{Frequency, Keyword, Platform};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::cache::{Cache, FastHash};
use crate::forecast::Predictor;
use crate::store::{PredictionRecord, Store};

/// Queue length of the prediction writer (back-pressure beyond it, never loss).
pub const PERSIST_QUEUE: usize = 10_000;
/// Most stored observations read at start-up to calibrate the built-in baseline's intervals (so a
/// large store does not slow start-up; a sample calibrates as well as everything).
pub const BASELINE_CALIBRATION_ROWS: i64 = 200_000;
/// Largest batch the writer inserts at once.
pub const PERSIST_BATCH: usize = 500;

/// One step of a served forecast.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Step {
    /// 1-based step.
    pub step: usize,
    /// First day of the forecast period.
    pub period_start: NaiveDate,
    /// Mean.
    pub mean: f64,
    /// `[{level, lo, hi}]`.
    pub intervals: Vec<Band>,
}

/// One interval of one step.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Band {
    /// Level in percent.
    pub level: f64,
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
}

/// A served forecast (the JSON body of the forecast endpoints).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ForecastBody {
    /// Platform (absent for ad-hoc series).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^(amazon|etsy|ebay|google|benchmark)$")]
    pub platform: Option<Platform>,
    /// Keyword or ad-hoc series id.
    pub keyword: String,
    /// Model that produced it.
    pub model_version: String,
    /// Last period of the data used.
    pub data_as_of: NaiveDate,
    /// Steps forecast.
    pub horizon: usize,
    /// The model's measured accuracy (validation/backtest metrics from its manifest; free-form,
    /// by name).
    #[schema(value_type = std::collections::HashMap<String, serde_json::Value>)]
    pub model_accuracy: serde_json::Value,
    /// Periods with a gap in the input (interpolated before forecasting).
    pub input_gaps: usize,
    /// The forecast.
    pub forecast: Vec<Step>,
}

/// Holds the active model.
#[derive(Clone)]
pub struct ModelSlot(Arc<ArcSwap<Predictor>>);

impl ModelSlot {
    /// A slot holding `p`.
    pub fn new(p: Predictor) -> Self {
        served_gauge(&p, 1.0);
        Self(Arc::new(ArcSwap::from_pointee(p)))
    }
    /// The current model (kept alive by the caller for as long as it needs it).
    pub fn current(&self) -> Arc<Predictor> {
        self.0.load_full()
    }
    /// Replaces the model; requests already holding the old one finish on it.
    pub fn swap(&self, p: Predictor) {
        tracing::info!(version = %p.manifest.version, "model swapped in");
        metrics::counter!("kwi_model_swaps_total").increment(1);
        served_gauge(&p, 1.0);
        let version = p.manifest.version.clone();
        let old = self.0.swap(Arc::new(p));
        if old.manifest.version != version {
            served_gauge(&old, 0.0);
        }
    }
}

/// `kwi_model_info{version}`: 1 for the model being served, 0 for one swapped out (the
/// Prometheus info-metric pattern, so dashboards can show and alert on the served version).
fn served_gauge(p: &Predictor, value: f64) {
    metrics::gauge!("kwi_model_info", "version" => p.manifest.version.clone()).set(value);
}

/// Builds a keyword's regular series from its stored volumes ([`Store::volumes_many`]; the same construction as training's
/// [`kwi_features::series::regularise`]).
pub fn series_from_volumes(
    platform: Platform,
    keyword: &Keyword,
    volumes: &[(NaiveDate, f64)],
) -> Option<Series> {
    regular_series(
        platform,
        keyword.clone(),
        format!("{platform}/{keyword}"),
        volumes,
        Frequency::Weekly,
    )
}

/// Runs the model on one series (blocking: call from the blocking pool).
pub fn forecast_series(
    model: &Predictor,
    series: &Series,
    horizon: usize,
    levels: &[f64],
) -> anyhow::Result<ForecastBody> {
    forecast_many(model, std::slice::from_ref(series), horizon, levels)?
        .pop()
        .ok_or_else(|| anyhow::anyhow!("model returned no forecast"))
}

/// Runs the model on many series in one call (global members batch them; blocking: call from the
/// blocking pool).
pub fn forecast_many(
    model: &Predictor,
    series: &[Series],
    horizon: usize,
    levels: &[f64],
) -> anyhow::Result<Vec<ForecastBody>> {
    if series.is_empty() {
        return Ok(Vec::new());
    }
    let values: Vec<&[f64]> = series.iter().map(|s| s.values.as_slice()).collect();
    let forecasts = model.forecast(&values, horizon, levels)?;
    anyhow::ensure!(
        forecasts.len() == series.len(),
        "model returned {} forecasts for {} series",
        forecasts.len(),
        series.len()
    );
    Ok(series
        .iter()
        .zip(forecasts)
        .map(|(s, f)| body_of(model, s, &f, horizon))
        .collect())
}

fn body_of(
    model: &Predictor,
    series: &Series,
    f: &kwi_models::Forecast,
    horizon: usize,
) -> ForecastBody {
    let last = series.period(series.values.len() - 1);
    let step_days = series.freq.days();
    let forecast = (0..horizon)
        .map(|k| Step {
            step: k + 1,
            period_start: last + Days::days(step_days * (k as i64 + 1)),
            mean: f.mean[k],
            intervals: f
                .intervals
                .iter()
                .map(|i| Band {
                    level: i.level,
                    lo: i.lo[k],
                    hi: i.hi[k],
                })
                .collect(),
        })
        .collect();
    ForecastBody {
        platform: Some(series.platform),
        keyword: series.keyword.to_string(),
        model_version: model.manifest.version.clone(),
        data_as_of: last,
        horizon,
        model_accuracy: model.manifest.metrics.clone(),
        input_gaps: series.gaps,
        forecast,
    }
}

/// About how many bytes `body`'s JSON takes, rounded up so that it is written without reallocating
/// (served bodies take about 70 bytes per step plus 60 per interval and step; a model's accuracy
/// record usually under 1 KiB).
fn json_size_hint(body: &ForecastBody) -> usize {
    let levels = body.forecast.first().map_or(0, |s| s.intervals.len());
    1536 + body.keyword.len() + body.model_version.len() + body.horizon * (80 + 64 * levels)
}

/// The prediction row for a served forecast.
pub fn prediction_record(body: &ForecastBody, keyword: &Keyword) -> Option<PredictionRecord> {
    let platform = body.platform?;
    let levels: Vec<f64> = body
        .forecast
        .first()
        .map(|s| s.intervals.iter().map(|b| b.level).collect())
        .unwrap_or_default();
    let band = |side: fn(&Band) -> f64| -> Vec<f64> {
        (0..levels.len())
            .flat_map(|j| body.forecast.iter().map(move |s| side(&s.intervals[j])))
            .collect()
    };
    Some(PredictionRecord {
        platform,
        keyword: keyword.clone(),
        model_version: body.model_version.clone(),
        data_as_of: body.data_as_of,
        horizon: body.horizon as i32,
        mean: body.forecast.iter().map(|s| s.mean).collect(),
        lo: band(|b| b.lo),
        hi: band(|b| b.hi),
        levels,
    })
}

/// Starts the prediction writer; it ends (after draining) once every sender is dropped.
pub fn spawn_persister(store: Arc<dyn Store>) -> (mpsc::Sender<PredictionRecord>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<PredictionRecord>(PERSIST_QUEUE);
    let handle = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(PERSIST_BATCH);
        while let Some(first) = rx.recv().await {
            batch.push(first);
            // Gather what is already queued (up to a batch) without waiting long.
            let deadline = tokio::time::sleep(Duration::from_millis(50));
            tokio::pin!(deadline);
            while batch.len() < PERSIST_BATCH {
                tokio::select! {
                    more = rx.recv() => match more { Some(r) => batch.push(r), None => break },
                    () = &mut deadline => break,
                }
            }
            let n = batch.len();
            let mut attempt = 0;
            loop {
                let t = std::time::Instant::now();
                match store.insert_predictions(&batch).await {
                    Ok(()) => {
                        metrics::histogram!("kwi_predictions_persist_seconds")
                            .record(t.elapsed().as_secs_f64());
                        metrics::histogram!("kwi_predictions_persist_batch_size").record(n as f64);
                        metrics::counter!("kwi_predictions_persisted_total").increment(n as u64);
                        break;
                    }
                    Err(e) if attempt < 5 => {
                        attempt += 1;
                        tracing::warn!(error = %e, attempt, "persisting predictions failed; retrying");
                        tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, rows = n, "persisting predictions failed; batch dropped");
                        metrics::counter!("kwi_predictions_persist_failed_total")
                            .increment(n as u64);
                        break;
                    }
                }
            }
            batch.clear();
        }
        tracing::info!("prediction writer drained and stopped");
    });
    (tx, handle)
}

/// Cache key of a keyword forecast: model version and data version make stale answers impossible.
pub fn cache_key(
    model: &str,
    platform: Platform,
    keyword: &Keyword,
    data_version: i64,
    horizon: usize,
    levels: &[f64],
) -> String {
    let lv: Vec<String> = levels.iter().map(|l| format!("{l}")).collect();
    format!(
        "kwi:fc:v1:{model}:{platform}:{keyword}:{data_version}:{horizon}:{}",
        lv.join(",")
    )
}

/// Per-keyword data versions held in process (a bounded map), dropped whenever the store reports
/// newer data. `None` entries remember keywords the store does not have (no repeated lookups for
/// unknown keywords either).
#[derive(Clone)]
pub struct DataVersions {
    map: moka::sync::Cache<(Platform, Keyword), Option<i64>, FastHash>,
    epoch: Arc<std::sync::atomic::AtomicI64>,
}

impl Default for DataVersions {
    fn default() -> Self {
        Self {
            map: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .build_with_hasher(FastHash::default()),
            epoch: Arc::new(std::sync::atomic::AtomicI64::new(i64::MIN)),
        }
    }
}

impl DataVersions {
    /// The keyword's data version (microseconds since the epoch of its last change), or `None` when
    /// the store has no data for it.
    pub async fn get(
        &self,
        store: &dyn Store,
        platform: Platform,
        keyword: &Keyword,
    ) -> crate::store::Result<Option<i64>> {
        let key = (platform, keyword.clone());
        if let Some(v) = self.map.get(&key) {
            return Ok(v);
        }
        let v = store
            .data_version(platform, keyword)
            .await?
            .map(|t| t.timestamp_micros());
        self.map.insert(key, v);
        Ok(v)
    }

    /// [`Self::get`] for many keywords, with one store query for those not held.
    pub async fn get_many(
        &self,
        store: &dyn Store,
        keys: &[(Platform, Keyword)],
    ) -> crate::store::Result<Vec<Option<i64>>> {
        let mut out: Vec<Option<Option<i64>>> = keys.iter().map(|k| self.map.get(k)).collect();
        let missing: Vec<(Platform, Keyword)> = keys
            .iter()
            .zip(&out)
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        if !missing.is_empty() {
            let found: std::collections::HashMap<_, _> = store
                .data_versions_many(&missing)
                .await?
                .into_iter()
                .map(|(k, t)| (k, t.timestamp_micros()))
                .collect();
            for (k, v) in keys.iter().zip(out.iter_mut()) {
                if v.is_none() {
                    let version = found.get(k).copied();
                    self.map.insert(k.clone(), version);
                    *v = Some(version);
                }
            }
        }
        Ok(out.into_iter().map(Option::flatten).collect())
    }

    /// Checks the store's newest change; drops every held version when it moved. Returns whether
    /// it did.
    pub async fn refresh(&self, store: &dyn Store) -> crate::store::Result<bool> {
        use std::sync::atomic::Ordering;
        let latest = store
            .latest_data_change()
            .await?
            .map_or(i64::MIN + 1, |t| t.timestamp_micros());
        if self.epoch.swap(latest, Ordering::AcqRel) != latest {
            self.map.invalidate_all();
            return Ok(true);
        }
        Ok(false)
    }

    /// Polls [`Self::refresh`] every `every`.
    pub fn spawn_watcher(&self, store: Arc<dyn Store>, every: Duration) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Err(e) = this.refresh(store.as_ref()).await {
                    tracing::warn!(error = %e, "cannot poll the store for new data");
                }
            }
        })
    }
}

/// Everything the forecast handlers need.
#[derive(Clone)]
pub struct Forecasting {
    /// Active model.
    pub model: ModelSlot,
    /// Coalesces concurrent misses of one key.
    pub inflight: SingleFlight,
    /// Writer queue.
    pub persist: mpsc::Sender<PredictionRecord>,
    /// Per-keyword data versions (no database round trip on a cache hit).
    pub data_versions: DataVersions,
    /// Coalesces concurrent single-keyword misses into batches ([`spawn_batcher`]).
    pub batcher: mpsc::Sender<Job>,
    /// Keywords found to have no search volume, per data version (listing data only): their
    /// forecast 404 is answered without a query until their data changes.
    pub no_volume: moka::sync::Cache<(Platform, Keyword, i64), (), FastHash>,
}

/// A single-keyword answer: the JSON body and whether it was found in the cache.
pub type Found = Result<(Bytes, bool), Arc<anyhow::Error>>;

/// Single flight: concurrent requests for one key share one lookup-or-compute and all get its
/// answer. Only requests that overlap share: once the answer is out the key is forgotten, and the
/// next request finds the forecast in the cache. A plain map of waiters under a mutex held for a
/// few instructions (no await inside); a moka cache with a TTL did the same at several times the
/// CPU on the uncached path.
#[derive(Clone, Default)]
pub struct SingleFlight(Arc<std::sync::Mutex<Waiters>>);

/// Keys being computed, each with the requests waiting for it.
type Waiters = std::collections::HashMap<String, Vec<oneshot::Sender<Found>>, FastHash>;

/// The request that computes a key; dropping it unanswered (the client hung up) releases the key,
/// and every waiter then tries again itself.
struct Leader<'a> {
    flight: &'a SingleFlight,
    key: Option<String>,
}

impl Leader<'_> {
    fn finish(mut self, answer: &Found) {
        let key = self.key.take().expect("finished once");
        let waiters = self.flight.lock().remove(&key).unwrap_or_default();
        for w in waiters {
            let _ = w.send(answer.clone());
        }
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.flight.lock().remove(&key);
        }
    }
}

impl SingleFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiters> {
        // A panic while holding it cannot leave the map inconsistent (inserts and removes only).
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `work`'s answer for `key`, computed once however many ask for it at the same time.
    pub async fn run<F>(&self, key: String, work: impl Fn() -> F) -> Found
    where
        F: std::future::Future<Output = anyhow::Result<(Bytes, bool)>>,
    {
        loop {
            let waiting = {
                let mut map = self.lock();
                match map.get_mut(&key) {
                    Some(waiters) => {
                        let (tx, rx) = oneshot::channel();
                        waiters.push(tx);
                        Some(rx)
                    }
                    None => {
                        map.insert(key.clone(), Vec::new());
                        None
                    }
                }
            };
            match waiting {
                // The leader answered; or it was dropped unanswered: try again.
                Some(rx) => match rx.await {
                    Ok(answer) => return answer,
                    Err(_) => continue,
                },
                None => {
                    let leader = Leader {
                        flight: self,
                        key: Some(key),
                    };
                    let answer = work().await.map_err(Arc::new);
                    leader.finish(&answer);
                    return answer;
                }
            }
        }
    }

    /// Keys being computed now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no key is being computed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Forecasting {
    /// Builds the service around a model, the store and cache, and a writer queue; starts the
    /// batcher (it stops once every clone of this is dropped).
    pub fn new(
        model: Predictor,
        store: Arc<dyn Store>,
        cache: Cache,
        persist: mpsc::Sender<PredictionRecord>,
    ) -> Self {
        Self {
            model: ModelSlot::new(model),
            inflight: SingleFlight::default(),
            batcher: spawn_batcher(store, cache, persist.clone()),
            persist,
            data_versions: DataVersions::default(),
            no_volume: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .build_with_hasher(FastHash::default()),
        }
    }
}

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
pub enum Answer {
    /// In the shared cache (Redis), though not in the near cache the handler looked at first.
    Cached(Bytes),
    /// Computed now (cached and queued for persistence).
    Computed(Bytes),
    /// The keyword has no search volume (listing data only).
    NoVolume,
}

/// A batcher's answer, or the batch's error (shared by every job of the batch).
pub type JobAnswer = Result<Answer, Arc<anyhow::Error>>;

/// One single-keyword miss waiting for the batcher.
pub struct Job {
    /// The keyword.
    pub key: (Platform, Keyword),
    /// Its cache key (written by the batch).
    pub cache_key: String,
    /// Steps to forecast.
    pub horizon: usize,
    /// Interval levels (checked).
    pub levels: Vec<f64>,
    /// Model the request started with.
    pub model: Arc<Predictor>,
    /// Where the answer goes.
    pub reply: tokio::sync::oneshot::Sender<JobAnswer>,
}

/// Starts the batcher: single-keyword requests the in-process cache could not answer queue here and
/// are answered in batches: one cache lookup for all of them (one Redis `MGET`), then, for the
/// keys not found, one volume query, one model call and one cache write (the batch endpoint's
/// path, [`compute_many`]). Nothing waits to fill a batch: a batch is whatever queued while the
/// previous ones ran (at most [`COALESCE_LANES`] at once), so an idle server answers a lone request
/// at once and a loaded one amortises the round trips.
pub fn spawn_batcher(
    store: Arc<dyn Store>,
    cache: Cache,
    persist: mpsc::Sender<PredictionRecord>,
) -> mpsc::Sender<Job> {
    let (tx, mut rx) = mpsc::channel::<Job>(4 * PERSIST_QUEUE);
    let lanes = Arc::new(tokio::sync::Semaphore::new(COALESCE_LANES));
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
            let (store, cache, persist) = (store.clone(), cache.clone(), persist.clone());
            tokio::spawn(async move {
                run_jobs(store.as_ref(), &cache, &persist, jobs).await;
                drop(permit);
            });
        }
    });
    tx
}

/// Answers a coalesced batch: keys found in the cache are answered from it; of the rest, jobs that
/// share model, horizon and levels go through one [`compute_many`] call; the groups run
/// concurrently.
async fn run_jobs(
    store: &dyn Store,
    cache: &Cache,
    persist: &mpsc::Sender<PredictionRecord>,
    jobs: Vec<Job>,
) {
    // The handlers already missed the in-process cache for these keys: only Redis is asked.
    let keys: Vec<&str> = jobs.iter().map(|j| j.cache_key.as_str()).collect();
    let mut found = vec![None; keys.len()];
    cache.fill_from_redis(&keys, &mut found).await;
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
            match compute_many(
                store,
                cache,
                persist,
                &model,
                &keys,
                &cache_keys,
                horizon,
                &levels,
            )
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
                    let e = Arc::new(e);
                    for j in group {
                        let _ = j.reply.send(Err(e.clone()));
                    }
                }
            }
        },
    ))
    .await;
}

/// Forecasts stored keywords together: one volume query, one model call on the blocking pool, the
/// JSON bodies cached under `cache_keys` (one pipelined write) and queued for persistence. `None`
/// for a keyword without search volume.
#[allow(clippy::too_many_arguments)]
pub async fn compute_many(
    store: &dyn Store,
    cache: &Cache,
    persist: &mpsc::Sender<PredictionRecord>,
    model: &Arc<Predictor>,
    keys: &[(Platform, Keyword)],
    cache_keys: &[String],
    horizon: usize,
    levels: &[f64],
) -> anyhow::Result<Vec<Option<Bytes>>> {
    let volumes = store.volumes_many(keys).await?;
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
        let mut json = Vec::with_capacity(json_size_hint(b));
        serde_json::to_writer(&mut json, b)?;
        let bytes = Bytes::from(json);
        if let Some(rec) = prediction_record(b, &key.1) {
            // Back-pressure only when the writer is 10,000 rows behind; never dropped.
            let _ = persist.send(rec).await;
        }
        entries.push((ck.clone(), bytes.clone()));
        out.push(Some(bytes));
    }
    cache.set_many(&entries).await;
    Ok(out)
}

/// Loads the active forecaster from the registry, or the built-in baseline calibrated on `store`'s
/// data when none is active (or it cannot be loaded, which is logged).
pub async fn load_active_model(store: &dyn Store) -> anyhow::Result<Predictor> {
    let active = store
        .models()
        .await?
        .into_iter()
        .find(|m| m.active && m.kind == "forecaster");
    if let Some(m) = active {
        let dir = std::path::PathBuf::from(&m.artifact);
        match tokio::task::spawn_blocking(move || Predictor::load(&dir)).await? {
            Ok(p) => return Ok(p),
            Err(e) => {
                tracing::error!(version = %m.version, error = %e, "active model cannot be loaded; serving the built-in baseline")
            }
        }
    }
    let rows = store
        .observations(None, Some(BASELINE_CALIBRATION_ROWS))
        .await?;
    tokio::task::spawn_blocking(move || {
        let series = regularise(&rows, Frequency::Weekly, &Default::default());
        let refs: Vec<&[f64]> = series
            .iter()
            .map(|s| s.values.as_slice())
            .take(5000)
            .collect();
        Predictor::baseline(&refs, 52, 13)
    })
    .await
    .map_err(Into::into)
}

/// Polls the registry and swaps in a newly activated model (every `every`).
pub fn spawn_model_watcher(
    store: Arc<dyn Store>,
    slot: ModelSlot,
    every: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Ok(models) = store.models().await else {
                continue;
            };
            let Some(active) = models
                .into_iter()
                .find(|m| m.active && m.kind == "forecaster")
            else {
                continue;
            };
            if active.version == slot.current().manifest.version {
                continue;
            }
            let dir = std::path::PathBuf::from(&active.artifact);
            match tokio::task::spawn_blocking(move || Predictor::load(&dir)).await {
                Ok(Ok(p)) => slot.swap(p),
                Ok(Err(e)) => {
                    tracing::error!(version = %active.version, error = %e, "newly active model cannot be loaded; keeping the current one")
                }
                Err(e) => tracing::error!(error = %e, "model loader panicked"),
            }
        }
    })
}

/// The forecast handler's path to a body: the in-process cache (no I/O), else `lookup`, called
/// with the key, whose future runs once per key however many ask at once (single flight): it looks
/// the key up in the shared cache and computes it on a miss (the batcher, [`spawn_batcher`], does
/// both for many keys at once), returning the body and whether it was found in the cache. Each
/// request counts as a cache hit or miss by what its answer was.
pub async fn cached_or_compute<C, F>(
    cache: &Cache,
    inflight: &SingleFlight,
    key: String,
    lookup: C,
) -> Found
where
    C: Fn(&str) -> F,
    F: std::future::Future<Output = anyhow::Result<(Bytes, bool)>>,
{
    if let Some(hit) = cache.get_near(&key) {
        metrics::counter!("kwi_cache_hits_total").increment(1);
        return Ok((hit, true));
    }
    let (bytes, cached) = inflight.run(key.clone(), || lookup(&key)).await?;
    if cached {
        metrics::counter!("kwi_cache_hits_total").increment(1);
    } else {
        metrics::counter!("kwi_cache_misses_total").increment(1);
    }
    Ok((bytes, cached))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Overlapping requests compute once and share the answer; a later request computes again
    /// (the key is forgotten once answered); a leader dropped unanswered hands over to a waiter.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn single_flight_shares_only_overlapping_work() {
        let flight = SingleFlight::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let (go, gate) = tokio::sync::watch::channel(false);
        let work = |runs: Arc<AtomicUsize>, gate: tokio::sync::watch::Receiver<bool>| {
            move || {
                let (runs, mut gate) = (runs.clone(), gate.clone());
                async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    gate.wait_for(|open| *open).await?;
                    Ok((Bytes::from_static(b"body"), false))
                }
            }
        };
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (f, w) = (flight.clone(), work(runs.clone(), gate.clone()));
                tokio::spawn(async move { f.run("k".into(), w).await })
            })
            .collect();
        while flight.is_empty() {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        go.send(true).unwrap();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().0, Bytes::from_static(b"body"));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(flight.is_empty());
        flight
            .run("k".into(), work(runs.clone(), gate.clone()))
            .await
            .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 2);

        // A leader that never finishes is dropped (its client hung up): the waiter takes over.
        let (_hold, closed) = tokio::sync::watch::channel(false);
        let stuck = {
            let f = flight.clone();
            let w = work(runs.clone(), closed.clone());
            tokio::spawn(async move { f.run("j".into(), w).await })
        };
        while flight.is_empty() {
            tokio::task::yield_now().await;
        }
        let waiter = {
            let f = flight.clone();
            let w = work(runs.clone(), gate.clone());
            tokio::spawn(async move { f.run("j".into(), w).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        stuck.abort();
        assert!(waiter.await.unwrap().is_ok());
        assert_eq!(runs.load(Ordering::SeqCst), 4);
        assert!(flight.is_empty());
    }
}
