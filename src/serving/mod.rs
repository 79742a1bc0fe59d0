//! The forecasting service behind the HTTP layer: the [`Forecaster`].
//!
//! Handlers parse a request into edge types ([`Keyword`], [`Platform`], [`Horizon`], [`Levels`]),
//! call one of the forecaster's methods and write its answer out; everything between is private to
//! this module, one idea a file:
//!
//! - [`slot`]: the active model, hot-swappable (in-flight requests keep their `Arc`), and the
//!   registry watcher that swaps in a newly activated one;
//! - [`versions`]: per-keyword data versions held in process, dropped when the store's newest change
//!   moves; with the model version they make every cache key immutable;
//! - [`flight`]: single flight, so concurrent misses on one key compute once;
//! - [`batcher`]: single-keyword misses answered in batches (one Redis `MGET`, one volume query, one
//!   model call, one pipelined cache write), the path the batch endpoint shares;
//! - [`persist`]: the bounded writer queue that stores every computed forecast, drained on shutdown;
//! - [`body`]: the served JSON body and the `predictions` row built from a model's output.
//!
//! Inference runs on the blocking pool, never on the async workers, except a light model's
//! (baselines only) on a small batch: microseconds of work, cheaper than the thread hand-off
//! ([`INLINE_VALUES`]).

mod batcher;
mod body;
mod flight;
mod persist;
mod slot;
mod versions;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kwi_features::series::Series;
use kwi_features::{Horizon, Keyword, Levels, Platform};
use kwi_predict::registry::{self, RegistryError};
use kwi_predict::{ForecastError, Predictor};
use kwi_store::{Store, StoreError};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::cache::{Cache, FastHash};
use batcher::{Answer, Job, Pipeline};
pub use batcher::{COALESCE_LANES, COALESCE_MAX, INLINE_VALUES};
pub use body::{Band, ForecastBody, Step};
pub(crate) use body::{forecast_many, prediction_record, series_from_volumes};
use flight::SingleFlight;
pub use persist::{PERSIST_BATCH, PERSIST_QUEUE};
use slot::ModelSlot;
use versions::DataVersions;

/// Why a forecast (or a model change) could not be served. Cheap to clone: one failed batch answers
/// every request that waited on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServeError {
    /// The store holds nothing for the keyword.
    #[error("no data for keyword `{keyword}` on {platform}")]
    UnknownKeyword {
        /// Platform asked for.
        platform: Platform,
        /// Keyword asked for.
        keyword: Keyword,
    },
    /// A stored keyword without any search volume (listing data only): nothing to forecast.
    #[error(
        "keyword `{keyword}` on {platform} has listing data but no search-volume history to forecast"
    )]
    NoVolume {
        /// Platform asked for.
        platform: Platform,
        /// Keyword asked for.
        keyword: Keyword,
    },
    /// An interval level outside what the served model's calibration covers.
    #[error("{level} is outside the range model {version} is calibrated for ({lo}..={hi})")]
    LevelNotCalibrated {
        /// The level asked for.
        level: f64,
        /// The served model.
        version: String,
        /// Lowest calibrated level.
        lo: f64,
        /// Highest calibrated level.
        hi: f64,
    },
    /// No such version in the registry.
    #[error("no model version `{0}` in the registry")]
    UnknownModel(String),
    /// A registered model whose artifact cannot be loaded.
    #[error("model {version} cannot be loaded: {reason}")]
    Unloadable {
        /// The version asked for.
        version: String,
        /// Why loading failed.
        reason: String,
    },
    /// The store failed.
    #[error("store: {0}")]
    Store(Arc<StoreError>),
    /// The model failed on its input.
    #[error("model: {0}")]
    Model(Arc<ForecastError>),
    /// The service itself failed (a task ended abnormally, a queue stopped).
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for ServeError {
    fn from(e: StoreError) -> Self {
        ServeError::Store(Arc::new(e))
    }
}

impl From<ForecastError> for ServeError {
    fn from(e: ForecastError) -> Self {
        ServeError::Model(Arc::new(e))
    }
}

impl From<tokio::task::JoinError> for ServeError {
    fn from(e: tokio::task::JoinError) -> Self {
        ServeError::Internal(format!("a forecasting task failed: {e}"))
    }
}

impl From<RegistryError> for ServeError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Store(e) => e.into(),
            RegistryError::Load(e) => e.into(),
            RegistryError::Task(e) => e.into(),
        }
    }
}

/// A single keyword's forecast: its JSON body and whether it was answered from the cache.
#[derive(Debug, Clone)]
pub struct Served {
    /// The JSON body ([`ForecastBody`]).
    pub body: Bytes,
    /// Found in the cache (in process or Redis) rather than computed now.
    pub cached: bool,
}

/// One entry of a batch answer, in request order.
#[derive(Debug, Clone)]
pub enum BatchItem {
    /// A forecast's JSON body ([`ForecastBody`]).
    Forecast(Bytes),
    /// A stored keyword that could not be forecast (unknown, or without search volume).
    Failed {
        /// Its platform.
        platform: Platform,
        /// The keyword.
        keyword: Keyword,
        /// Why.
        error: ServeError,
    },
}

/// The answer to a batch: every entry forecast by one model version.
#[derive(Debug, Clone)]
pub struct BatchAnswer {
    /// The model every entry was forecast with.
    pub model_version: String,
    /// Steps forecast.
    pub horizon: Horizon,
    /// Stored keywords first, then ad-hoc series, each in request order.
    pub results: Vec<BatchItem>,
}

/// What the forecaster is doing now (for `/readyz` and the registry endpoint).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    /// The version being served.
    pub model_version: String,
    /// Its ensemble members.
    pub members: Vec<kwi_predict::Member>,
    /// Keys being computed now (single flight).
    pub in_flight: usize,
    /// Keywords remembered as having no search volume at their current data version.
    pub no_volume_known: u64,
    /// Forecasts waiting in the writer's queue.
    pub persist_backlog: usize,
}

/// The forecasting service: owns the model slot, data versions, single flight, the no-volume memo,
/// the batcher and the prediction writer's queue. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Forecaster(Arc<Inner>);

struct Inner {
    pipeline: Pipeline,
    model: ModelSlot,
    inflight: SingleFlight,
    data_versions: DataVersions,
    batcher: mpsc::Sender<Job>,
    /// Keywords found to have no search volume, per data version (listing data only): their
    /// forecast 404 is answered without a query until their data changes.
    no_volume: moka::sync::Cache<(Platform, Keyword, i64), (), FastHash>,
}

impl Forecaster {
    /// Loads the active model (or the built-in baseline), starts the prediction writer and the
    /// batcher. Await the returned handle after the server stops (and every clone of the forecaster
    /// is dropped) to make sure every computed forecast is persisted.
    pub async fn start(
        store: Arc<dyn Store>,
        cache: Cache,
    ) -> Result<(Self, JoinHandle<()>), ServeError> {
        let model = registry::load_active_model(store.as_ref()).await?;
        tracing::info!(version = %model.manifest.version, members = ?model.manifest.ensemble.members, "serving model");
        let (persist, writer) = persist::spawn_persister(store.clone());
        let pipeline = Pipeline {
            store,
            cache,
            persist,
        };
        let inner = Inner {
            batcher: pipeline.spawn_batcher(),
            pipeline,
            model: ModelSlot::new(model),
            inflight: SingleFlight::default(),
            data_versions: DataVersions::default(),
            no_volume: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .build_with_hasher(FastHash::default()),
        };
        Ok((Self(Arc::new(inner)), writer))
    }

    /// Starts the background watchers: the registry (swaps in a newly activated model, every
    /// `model_every`) and the store's newest data change (drops the held data versions, every
    /// `data_every`). They hold no writer queue, so they never delay its drain; abort them on
    /// shutdown.
    pub fn spawn_watchers(
        &self,
        model_every: Duration,
        data_every: Duration,
    ) -> [JoinHandle<()>; 2] {
        let store = &self.0.pipeline.store;
        [
            self.0.model.spawn_watcher(store.clone(), model_every),
            self.0
                .data_versions
                .spawn_watcher(store.clone(), data_every),
        ]
    }

    /// The model being served now (kept alive by the caller for as long as it needs it).
    pub fn model(&self) -> Arc<Predictor> {
        self.0.model.current()
    }

    /// A handle that gives the model being served at each call, holding nothing else (for the
    /// insights schedule).
    pub fn served_models(&self) -> impl Fn() -> Arc<Predictor> + Send + Sync + 'static {
        let slot = self.0.model.clone();
        move || slot.current()
    }

    /// What the forecaster is doing now.
    pub fn status(&self) -> Status {
        let model = self.model();
        Status {
            model_version: model.manifest.version.clone(),
            members: model.manifest.ensemble.members.clone(),
            in_flight: self.0.inflight.len(),
            no_volume_known: {
                self.0.no_volume.run_pending_tasks();
                self.0.no_volume.entry_count()
            },
            persist_backlog: PERSIST_QUEUE - self.0.pipeline.persist.capacity(),
        }
    }

    /// Checks the store's newest change now (instead of waiting for the watcher's next poll);
    /// whether it moved (and the held data versions were dropped).
    pub async fn refresh_data_versions(&self) -> Result<bool, ServeError> {
        Ok(self
            .0
            .data_versions
            .refresh(self.0.pipeline.store.as_ref())
            .await?)
    }

    /// One stored keyword's forecast: the in-process cache (no I/O), else single flight over the
    /// batcher (shared cache, then compute). `levels: None` means the default 80 and 95 %.
    pub async fn keyword(
        &self,
        platform: Platform,
        keyword: &Keyword,
        horizon: Horizon,
        levels: Option<&Levels>,
    ) -> Result<Served, ServeError> {
        let inner = &self.0;
        let model = inner.model.current();
        let levels = calibrated(&model, levels)?;
        let version = inner
            .data_versions
            .get(inner.pipeline.store.as_ref(), platform, keyword)
            .await?
            .ok_or_else(|| ServeError::UnknownKeyword {
                platform,
                keyword: keyword.clone(),
            })?;
        let key = cache_key(
            &model.manifest.version,
            platform,
            keyword,
            version,
            horizon,
            &levels,
        );
        if let Some(body) = inner.pipeline.cache.get_near(&key) {
            metrics::counter!("kwi_cache_hits_total").increment(1);
            return Ok(Served { body, cached: true });
        }
        let no_volume = || ServeError::NoVolume {
            platform,
            keyword: keyword.clone(),
        };
        // The job is built only when the in-process cache misses: a hit there allocates nothing.
        let lookup = || {
            // A keyword already found to have no volume at this data version: no query.
            let known_empty = inner
                .no_volume
                .contains_key(&(platform, keyword.clone(), version));
            let (reply, answer) = tokio::sync::oneshot::channel();
            let job = Job {
                key: (platform, keyword.clone()),
                cache_key: key.clone(),
                horizon,
                levels: levels.clone(),
                model: model.clone(),
                reply,
            };
            async move {
                if known_empty {
                    return Err(no_volume());
                }
                let stopped = || ServeError::Internal("the forecast batcher has stopped".into());
                inner.batcher.send(job).await.map_err(|_| stopped())?;
                match answer.await.map_err(|_| stopped())?? {
                    Answer::Cached(bytes) => Ok((bytes, true)),
                    Answer::Computed(bytes) => Ok((bytes, false)),
                    Answer::NoVolume => Err(no_volume()),
                }
            }
        };
        match inner.inflight.run(key.clone(), lookup).await {
            Ok((body, cached)) => {
                let counter = if cached {
                    "kwi_cache_hits_total"
                } else {
                    "kwi_cache_misses_total"
                };
                metrics::counter!(counter).increment(1);
                Ok(Served { body, cached })
            }
            Err(e @ ServeError::NoVolume { .. }) => {
                inner
                    .no_volume
                    .insert((platform, keyword.clone(), version), ());
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// A batch of stored keywords and ad-hoc series, all forecast by the model served when the
    /// batch started. Stored keywords: one data-version query for those not held, one cache round
    /// trip (`MGET`), then one compute for the misses (one volume query, one model call, one
    /// pipelined cache write, the writer), run as its own task so a client that hangs up cannot stop
    /// computed forecasts from being queued for persistence. An unknown keyword gets a
    /// [`BatchItem::Failed`] entry; the ad-hoc series go through one model call.
    pub async fn batch(
        &self,
        keys: &[(Platform, Keyword)],
        series: Vec<Series>,
        horizon: Horizon,
        levels: Option<&Levels>,
    ) -> Result<BatchAnswer, ServeError> {
        let model = self.model();
        let levels = calibrated(&model, levels)?;
        let mut results = self.batch_stored(keys, horizon, &levels, &model).await?;
        for body in self
            .forecast_series(&model, series, horizon, &levels)
            .await?
        {
            results.push(BatchItem::Forecast(body::encode(&body)?));
        }
        Ok(BatchAnswer {
            model_version: model.manifest.version.clone(),
            horizon,
            results,
        })
    }

    /// Forecasts ad-hoc series (not stored, not cached, not persisted) with the served model, in
    /// one model call off the async workers; each body names its series by its label.
    pub async fn series(
        &self,
        series: Vec<Series>,
        horizon: Horizon,
        levels: Option<&Levels>,
    ) -> Result<Vec<ForecastBody>, ServeError> {
        let model = self.model();
        let levels = calibrated(&model, levels)?;
        self.forecast_series(&model, series, horizon, &levels).await
    }

    /// Makes a registered version the served model: loads it (a model that cannot be loaded is
    /// refused and the current one kept), marks it active in the registry, swaps it in.
    pub async fn activate(&self, version: &str) -> Result<(), ServeError> {
        let store = &self.0.pipeline.store;
        let record = store
            .models()
            .await?
            .into_iter()
            .find(|m| m.version == version)
            .ok_or_else(|| ServeError::UnknownModel(version.to_string()))?;
        let loaded = registry::load(&record).await.map_err(|e| match e {
            RegistryError::Load(e) => ServeError::Unloadable {
                version: version.to_string(),
                reason: e.to_string(),
            },
            other => other.into(),
        })?;
        store.activate_model(version).await?;
        self.0.model.swap(loaded);
        Ok(())
    }

    async fn forecast_series(
        &self,
        model: &Arc<Predictor>,
        series: Vec<Series>,
        horizon: Horizon,
        levels: &Arc<[f64]>,
    ) -> Result<Vec<ForecastBody>, ServeError> {
        if series.is_empty() {
            return Ok(Vec::new());
        }
        let (m, lv) = (model.clone(), levels.clone());
        tokio::task::spawn_blocking(move || {
            let mut bodies = body::forecast_many(&m, &series, horizon, &lv)?;
            for (b, s) in bodies.iter_mut().zip(&series) {
                b.platform = None;
                b.keyword = s.label.clone();
            }
            Ok(bodies)
        })
        .await?
    }

    async fn batch_stored(
        &self,
        keys: &[(Platform, Keyword)],
        horizon: Horizon,
        levels: &Arc<[f64]>,
        model: &Arc<Predictor>,
    ) -> Result<Vec<BatchItem>, ServeError> {
        let pipeline = &self.0.pipeline;
        let versions = self
            .0
            .data_versions
            .get_many(pipeline.store.as_ref(), keys)
            .await?;
        let failed =
            |(platform, keyword): &(Platform, Keyword), error: ServeError| BatchItem::Failed {
                platform: *platform,
                keyword: keyword.clone(),
                error,
            };
        let mut out: Vec<Option<BatchItem>> = vec![None; keys.len()];
        let mut wanted: Vec<(usize, String)> = Vec::new();
        for (i, (key, version)) in keys.iter().zip(&versions).enumerate() {
            match version {
                None => {
                    let error = ServeError::UnknownKeyword {
                        platform: key.0,
                        keyword: key.1.clone(),
                    };
                    out[i] = Some(failed(key, error));
                }
                Some(v) => wanted.push((
                    i,
                    cache_key(&model.manifest.version, key.0, &key.1, *v, horizon, levels),
                )),
            }
        }
        let cache_keys: Vec<String> = wanted.iter().map(|(_, k)| k.clone()).collect();
        let hits = pipeline.cache.get_many(&cache_keys).await;
        // Misses, each distinct key once (a batch may name a keyword twice).
        let mut miss_of_key: std::collections::HashMap<String, usize> = Default::default();
        let mut misses: Vec<(usize, String)> = Vec::new();
        let mut dup: Vec<(usize, String)> = Vec::new();
        for ((i, k), hit) in wanted.into_iter().zip(hits) {
            match hit {
                Some(bytes) => out[i] = Some(BatchItem::Forecast(bytes)),
                None if miss_of_key.contains_key(&k) => dup.push((i, k)),
                None => {
                    miss_of_key.insert(k.clone(), i);
                    misses.push((i, k));
                }
            }
        }
        metrics::counter!("kwi_cache_hits_total")
            .increment((keys.len() - misses.len() - dup.len()) as u64);
        metrics::counter!("kwi_cache_misses_total").increment((misses.len() + dup.len()) as u64);
        if !misses.is_empty() {
            let miss_keys: Vec<(Platform, Keyword)> =
                misses.iter().map(|(i, _)| keys[*i].clone()).collect();
            let miss_cache_keys: Vec<String> = misses.iter().map(|(_, k)| k.clone()).collect();
            let (pipeline, model, lv) = (pipeline.clone(), model.clone(), levels.clone());
            let bodies = tokio::spawn(async move {
                pipeline
                    .compute_many(&model, &miss_keys, &miss_cache_keys, horizon, &lv)
                    .await
            })
            .await??;
            for ((i, _), b) in misses.iter().zip(bodies) {
                let key = &keys[*i];
                out[*i] = Some(match b {
                    Some(bytes) => BatchItem::Forecast(bytes),
                    None => {
                        let error = ServeError::NoVolume {
                            platform: key.0,
                            keyword: key.1.clone(),
                        };
                        failed(key, error)
                    }
                });
            }
        }
        for (i, k) in dup {
            out[i] = out[miss_of_key[&k]].clone();
        }
        out.into_iter()
            .map(|o| o.ok_or_else(|| ServeError::Internal("batch entry left unanswered".into())))
            .collect()
    }
}

/// The levels to forecast with: the default 80 and 95 %, or those asked for when the model's
/// calibration covers each of them.
fn calibrated(model: &Predictor, levels: Option<&Levels>) -> Result<Arc<[f64]>, ServeError> {
    // The default is shared: most requests name no levels, and then cost no allocation here.
    static DEFAULT: std::sync::LazyLock<Arc<[f64]>> =
        std::sync::LazyLock::new(|| Levels::default().as_slice().into());
    let Some(levels) = levels else {
        return Ok(DEFAULT.clone());
    };
    let conformal = &model.manifest.conformal;
    if let Some(&level) = levels.as_slice().iter().find(|l| !conformal.supports(**l)) {
        return Err(ServeError::LevelNotCalibrated {
            level,
            version: model.manifest.version.clone(),
            lo: conformal.levels.first().copied().unwrap_or(f64::NAN),
            hi: conformal.levels.last().copied().unwrap_or(f64::NAN),
        });
    }
    Ok(levels.as_slice().into())
}

/// Cache key of a keyword forecast: model version and data version make stale answers impossible.
fn cache_key(
    model: &str,
    platform: Platform,
    keyword: &Keyword,
    data_version: i64,
    horizon: Horizon,
    levels: &[f64],
) -> String {
    let lv: Vec<String> = levels.iter().map(|l| format!("{l}")).collect();
    format!(
        "kwi:fc:v1:{model}:{platform}:{keyword}:{data_version}:{horizon}:{}",
        lv.join(",")
    )
}
