//! Forecast and model-registry endpoints.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use kwi_features::series::Series;
use kwi_features::{Frequency, Keyword, Platform};
use serde::{Deserialize, Serialize};

use super::ApiError;
use super::error::ErrorResponse;
use super::extract::{self, Path, Query};
use super::keywords::parse_key;
use super::openapi::{KeywordText, Level, LevelList, PlatformName};
use crate::app::AppState;
use crate::forecast::Predictor;
use crate::serving::{
    Answer, ForecastBody, Job, cache_key, cached_or_compute, compute_many, forecast_many,
};
use crate::store::ModelRecord;

/// Longest horizon served.
pub const MAX_HORIZON: usize = 104;
/// Most keywords, and most series, in one batch request.
pub const MAX_BATCH: usize = 1000;
/// Largest value of an ad-hoc series: far above any search volume, far enough below `f64::MAX`
/// that intervals around it stay finite.
pub const MAX_SERIES_VALUE: f64 = 1e12;

/// Query of the forecast endpoint (strings, so a bad value is a 400 naming the field).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ForecastQuery {
    /// Periods ahead.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 104, default = 13)]
    horizon: Option<String>,
    /// Interval coverages in percent, comma-separated (`levels=80,95`, the default), returned
    /// sorted without duplicates.
    #[param(value_type = Option<LevelList>)]
    #[serde(default, deserialize_with = "extract::level_list")]
    levels: Option<String>,
}

/// Parses `horizon` (default 13, 1..=104).
pub fn parse_horizon(raw: Option<&str>) -> Result<usize, ApiError> {
    let Some(raw) = raw else { return Ok(13) };
    raw.trim()
        .parse::<usize>()
        .ok()
        .filter(|h| (1..=MAX_HORIZON).contains(h))
        .ok_or_else(|| bad_horizon(raw))
}

/// Checks a horizon given as a number (batch body).
pub fn check_horizon(h: Option<usize>) -> Result<usize, ApiError> {
    match h {
        None => Ok(13),
        Some(h) if (1..=MAX_HORIZON).contains(&h) => Ok(h),
        Some(h) => Err(bad_horizon(&h.to_string())),
    }
}

fn bad_horizon(raw: &str) -> ApiError {
    ApiError::BadRequest {
        field: "horizon",
        message: format!("`{raw}` is not a whole number of periods in 1..={MAX_HORIZON}"),
    }
}

/// Parses `levels` (default `80,95`): comma-separated percentages, then [`check_levels`].
pub fn parse_levels(raw: Option<&str>, model: &Predictor) -> Result<Vec<f64>, ApiError> {
    let Some(raw) = raw else {
        return Ok(vec![80.0, 95.0]);
    };
    let values = raw
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|part| {
            part.parse::<f64>().map_err(|_| ApiError::BadRequest {
                field: "levels",
                message: format!("`{part}` is not a number"),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_levels(Some(values), model)
}

/// Checks levels (default 80, 95): 1 to 10 percentages in (0, 100) that the model's calibration
/// covers; returned sorted without duplicates.
pub fn check_levels(values: Option<Vec<f64>>, model: &Predictor) -> Result<Vec<f64>, ApiError> {
    let Some(values) = values else {
        return Ok(vec![80.0, 95.0]);
    };
    let conformal = &model.manifest.conformal;
    for &v in &values {
        if !(v > 0.0 && v < 100.0) {
            return Err(ApiError::BadRequest {
                field: "levels",
                message: format!("{v} is outside (0, 100): levels are coverage percentages"),
            });
        }
        if !conformal.supports(v) {
            return Err(ApiError::BadRequest {
                field: "levels",
                message: format!(
                    "{v} is outside the range model {} is calibrated for ({}..={})",
                    model.manifest.version,
                    conformal.levels.first().copied().unwrap_or(f64::NAN),
                    conformal.levels.last().copied().unwrap_or(f64::NAN)
                ),
            });
        }
    }
    if values.is_empty() || values.len() > 10 {
        return Err(ApiError::BadRequest {
            field: "levels",
            message: "give 1 to 10 levels, e.g. 80,95".into(),
        });
    }
    let mut out = values;
    out.sort_by(|a, b| a.total_cmp(b));
    out.dedup();
    Ok(out)
}

fn json_bytes(body: Bytes, cached: bool) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (
                header::HeaderName::from_static("x-cache"),
                if cached { "hit" } else { "miss" },
            ),
        ],
        Body::from(body),
    )
        .into_response()
}

async fn keyword_forecast(
    state: &AppState,
    platform: Platform,
    keyword: &Keyword,
    horizon: usize,
    levels: &[f64],
    model: Arc<Predictor>,
) -> Result<(Bytes, bool), ApiError> {
    let version = state
        .forecasting
        .data_versions
        .get(state.store.as_ref(), platform, keyword)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!("no data for keyword `{keyword}` on {platform}"))
        })?;
    let key = cache_key(
        &model.manifest.version,
        platform,
        keyword,
        version,
        horizon,
        levels,
    );
    // The job is built only when the in-process cache misses: a hit there allocates nothing for it.
    let compute = |cache_key: &str| {
        // A keyword already found to have no volume at this data version: no query.
        let known_empty =
            state
                .forecasting
                .no_volume
                .contains_key(&(platform, keyword.clone(), version));
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Job {
            key: (platform, keyword.clone()),
            cache_key: cache_key.to_string(),
            horizon,
            levels: levels.to_vec(),
            model: model.clone(),
            reply,
        };
        let batcher = state.forecasting.batcher.clone();
        async move {
            if known_empty {
                return Err(NoVolumes.into());
            }
            batcher
                .send(job)
                .await
                .map_err(|_| anyhow::anyhow!("the forecast batcher has stopped"))?;
            match answer
                .await
                .map_err(|_| anyhow::anyhow!("the forecast batcher dropped a request"))?
            {
                Ok(Answer::Cached(bytes)) => Ok((bytes, true)),
                Ok(Answer::Computed(bytes)) => Ok((bytes, false)),
                Ok(Answer::NoVolume) => Err(NoVolumes.into()),
                Err(e) => Err(anyhow::anyhow!("{e:#}")),
            }
        }
    };
    cached_or_compute(&state.cache, &state.forecasting.inflight, key, compute)
        .await
        .map_err(|e| match e.downcast_ref::<NoVolumes>() {
            Some(_) => {
                state
                    .forecasting
                    .no_volume
                    .insert((platform, keyword.clone(), version), ());
                ApiError::NotFound(no_volume_message(platform, keyword))
            }
            None => ApiError::Internal(e.to_string()),
        })
}

/// Why a stored keyword without any search volume (listing data only) has no forecast.
fn no_volume_message(platform: Platform, keyword: &Keyword) -> String {
    format!(
        "keyword `{keyword}` on {platform} has listing data but no search-volume history to forecast"
    )
}

/// A stored keyword without any search volume (listing data only): nothing to forecast.
#[derive(Debug, thiserror::Error)]
#[error("no search-volume history")]
struct NoVolumes;

/// `GET /v1/keywords/{platform}/{keyword}/forecast?horizon=13&levels=80,95`.
#[utoipa::path(get, path = "/v1/keywords/{platform}/{keyword}/forecast", tag = "forecasts",
    params(("platform" = PlatformName, Path), ("keyword" = KeywordText, Path), ForecastQuery),
    responses((status = 200, description = "Mean and intervals per step, the model version, the data's last period and the model's measured accuracy",
                 body = ForecastBody,
                 headers(("x-cache" = String, description = "`hit` (answered from the cache) or `miss`"))),
              (status = 400, description = "Bad platform, keyword, horizon or levels", body = ErrorResponse),
              (status = 404, description = "No data for the keyword, or no search-volume history to forecast", body = ErrorResponse),
              (status = 500, description = "The store or the model failed", body = ErrorResponse)))]
pub async fn forecast(
    State(state): State<AppState>,
    Path((platform, keyword)): Path<(String, String)>,
    Query(q): Query<ForecastQuery>,
) -> Result<Response, ApiError> {
    let (platform, keyword) = parse_key(&platform, &keyword)?;
    let horizon = parse_horizon(q.horizon.as_deref())?;
    let model = state.forecasting.model.current();
    let levels = parse_levels(q.levels.as_deref(), &model)?;
    let (bytes, cached) =
        keyword_forecast(&state, platform, &keyword, horizon, &levels, model).await?;
    Ok(json_bytes(bytes, cached))
}

/// One keyword of a batch.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchKeyword {
    #[schema(value_type = PlatformName)]
    platform: String,
    #[schema(value_type = KeywordText)]
    keyword: String,
}

/// An ad-hoc series (not stored): forecast it like TimeGPT's forecast call.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdHocSeries {
    /// Its name, echoed as the result's `keyword` (parsed like a keyword).
    #[schema(value_type = KeywordText)]
    id: String,
    /// Search volumes, oldest first, one per weekly period: 1 to 10,000 numbers in 0..=1e12.
    #[schema(value_type = Vec<SeriesValue>, min_items = 1, max_items = 10000)]
    values: Vec<f64>,
    /// First period (default 2000-01-02).
    start: Option<chrono::NaiveDate>,
}

// Documentation type; the bounds are 0 and `MAX_SERIES_VALUE`, checked by the handler.
/// One value of an ad-hoc series: a search volume.
#[derive(utoipa::ToSchema)]
#[schema(minimum = 0, maximum = 1e12)]
#[allow(dead_code)]
pub struct SeriesValue(f64);

/// Body of `POST /v1/forecasts`: stored keywords and ad-hoc series, at least one, at most 1,000
/// of each.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Stored keywords to forecast.
    #[serde(default)]
    #[schema(max_items = 1000)]
    keywords: Vec<BatchKeyword>,
    /// Ad-hoc series to forecast.
    #[serde(default)]
    #[schema(max_items = 1000)]
    series: Vec<AdHocSeries>,
    /// Periods ahead (default 13).
    #[schema(minimum = 1, maximum = 104)]
    #[serde(default, deserialize_with = "extract::whole_number")]
    horizon: Option<usize>,
    /// Interval coverages in percent (default `[80, 95]`), returned sorted without duplicates.
    #[schema(value_type = Option<Vec<Level>>, min_items = 1, max_items = 10)]
    levels: Option<Vec<f64>>,
}

// Documentation type: the handler writes this body around the cached forecasts' bytes.
/// Body of `POST /v1/forecasts`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct BatchResponse {
    /// Model that produced the forecasts.
    model_version: String,
    /// Steps forecast.
    horizon: usize,
    /// One per request entry, in request order (stored keywords, then series).
    results: Vec<BatchResult>,
}

/// One entry of a batch answer: a forecast, or why a stored keyword has none.
#[derive(utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum BatchResult {
    /// The forecast.
    Forecast(ForecastBody),
    /// No data for the keyword, or no search-volume history to forecast.
    Error(BatchError),
}

/// A stored keyword of a batch without a forecast.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct BatchError {
    /// Platform.
    #[schema(value_type = PlatformName)]
    platform: String,
    /// Keyword, normalised.
    keyword: String,
    /// Why.
    error: BatchErrorDetail,
}

/// Why a batch entry has no forecast.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct BatchErrorDetail {
    /// Always `not_found`.
    #[schema(pattern = "^not_found$")]
    code: String,
    /// Why, in words.
    message: String,
}

/// `POST /v1/forecasts`: up to 1,000 stored keywords and up to 1,000 ad-hoc series.
#[utoipa::path(post, path = "/v1/forecasts", tag = "forecasts",
    request_body(content = BatchRequest, description = "At least one keyword or series, at most 1,000 of each; the body at most 16 MiB"),
    responses((status = 200, description = "One result per entry, in request order", body = BatchResponse),
              (status = 400, description = "Unreadable body, or a bad entry, horizon or levels", body = ErrorResponse),
              (status = 413, description = "The body is over 16 MiB", body = ErrorResponse),
              (status = 415, description = "The body is not `application/json`", body = ErrorResponse),
              (status = 500, description = "The store or the model failed", body = ErrorResponse)))]
pub async fn batch(
    State(state): State<AppState>,
    extract::Json(req): extract::Json<BatchRequest>,
) -> Result<Response, ApiError> {
    // Each list is bounded on its own: OpenAPI cannot bound the sum of two lists.
    if req.keywords.is_empty() && req.series.is_empty() {
        return Err(ApiError::BadRequest {
            field: "keywords",
            message: "give at least one keyword or series".into(),
        });
    }
    for (field, n) in [
        ("keywords", req.keywords.len()),
        ("series", req.series.len()),
    ] {
        if n > MAX_BATCH {
            return Err(ApiError::BadRequest {
                field,
                message: format!("a batch holds at most {MAX_BATCH} {field}; got {n}"),
            });
        }
    }
    let horizon = check_horizon(req.horizon)?;
    let model = state.forecasting.model.current();
    let levels = check_levels(req.levels, &model)?;
    let mut keys = Vec::with_capacity(req.keywords.len());
    for (i, k) in req.keywords.iter().enumerate() {
        let key = parse_key(&k.platform, &k.keyword).map_err(|e| match e {
            ApiError::BadRequest { field, message } => ApiError::BadRequest {
                field: if field == "platform" {
                    "keywords[].platform"
                } else {
                    "keywords[].keyword"
                },
                message: format!("keywords[{i}]: {message}"),
            },
            other => other,
        })?;
        keys.push(key);
    }
    let mut adhoc = Vec::with_capacity(req.series.len());
    for (i, s) in req.series.iter().enumerate() {
        if s.values.is_empty() || s.values.len() > 10_000 {
            return Err(ApiError::BadRequest {
                field: "series[].values",
                message: format!("series[{i}]: give 1 to 10000 values"),
            });
        }
        if let Some(v) = s
            .values
            .iter()
            .find(|v| !(0.0..=MAX_SERIES_VALUE).contains(*v))
        {
            return Err(ApiError::BadRequest {
                field: "series[].values",
                message: format!("series[{i}]: {v} is not a number in 0..={MAX_SERIES_VALUE:e}"),
            });
        }
        let keyword = Keyword::parse(&s.id).map_err(|e| ApiError::BadRequest {
            field: "series[].id",
            message: format!("series[{i}]: {e}"),
        })?;
        adhoc.push(Series {
            platform: Platform::Benchmark,
            keyword,
            label: s.id.clone(),
            start: s
                .start
                .unwrap_or_else(|| chrono::NaiveDate::from_ymd_opt(2000, 1, 2).expect("valid")),
            freq: Frequency::Weekly,
            observed: vec![true; s.values.len()],
            values: s.values.clone(),
            gaps: 0,
        });
    }
    let mut results = batch_stored(&state, &keys, horizon, &levels, &model).await?;
    // Ad-hoc series: one model call for all of them, off the async workers.
    if !adhoc.is_empty() {
        let (m, lv) = (model.clone(), levels.clone());
        let bodies = tokio::task::spawn_blocking(move || {
            let mut bodies = forecast_many(&m, &adhoc, horizon, &lv)?;
            for (b, s) in bodies.iter_mut().zip(&adhoc) {
                b.platform = None;
                b.keyword = s.label.clone();
            }
            Ok::<_, anyhow::Error>(bodies)
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
        for b in bodies {
            results.push(Bytes::from(
                serde_json::to_vec(&b).map_err(|e| ApiError::Internal(e.to_string()))?,
            ));
        }
    }
    // The cached bodies are already JSON: the answer is written around them, not re-parsed.
    let mut out = serde_json::to_vec(&serde_json::json!({
        "model_version": model.manifest.version,
        "horizon": horizon,
    }))
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    out.pop(); // the closing brace
    out.extend_from_slice(b",\"results\":[");
    for (i, r) in results.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(r);
    }
    out.extend_from_slice(b"]}");
    Ok(([(header::CONTENT_TYPE, "application/json")], out).into_response())
}

/// The stored keywords of a batch, in order: one data-version query for keywords not held, one
/// cache round trip (`MGET`), then [`compute_many`] for the misses (one volume query, one model
/// call, one pipelined cache write, the prediction writer), run as its own task so a client that
/// hangs up cannot stop computed forecasts from being queued for persistence. An unknown keyword gets an error entry.
async fn batch_stored(
    state: &AppState,
    keys: &[(Platform, Keyword)],
    horizon: usize,
    levels: &[f64],
    model: &Arc<Predictor>,
) -> Result<Vec<Bytes>, ApiError> {
    let versions = state
        .forecasting
        .data_versions
        .get_many(state.store.as_ref(), keys)
        .await?;
    let error_entry = |(p, k): &(Platform, Keyword), message: String| -> Bytes {
        let v = serde_json::json!({ "platform": p, "keyword": k, "error": { "code": "not_found",
            "message": message } });
        Bytes::from(serde_json::to_vec(&v).expect("json"))
    };
    let not_found = |key: &(Platform, Keyword)| {
        error_entry(key, format!("no data for keyword `{}` on {}", key.1, key.0))
    };
    let mut out: Vec<Option<Bytes>> = vec![None; keys.len()];
    let mut wanted: Vec<(usize, String)> = Vec::new();
    for (i, (key, version)) in keys.iter().zip(&versions).enumerate() {
        match version {
            None => out[i] = Some(not_found(key)),
            Some(v) => wanted.push((
                i,
                cache_key(&model.manifest.version, key.0, &key.1, *v, horizon, levels),
            )),
        }
    }
    let cache_keys: Vec<String> = wanted.iter().map(|(_, k)| k.clone()).collect();
    let hits = state.cache.get_many(&cache_keys).await;
    // Misses, each distinct key once (a batch may name a keyword twice).
    let mut miss_of_key: std::collections::HashMap<String, usize> = Default::default();
    let mut misses: Vec<(usize, String)> = Vec::new();
    let mut dup: Vec<(usize, String)> = Vec::new();
    for ((i, k), hit) in wanted.into_iter().zip(hits) {
        match hit {
            Some(bytes) => out[i] = Some(bytes),
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
        let (store, cache, persist) = (
            state.store.clone(),
            state.cache.clone(),
            state.forecasting.persist.clone(),
        );
        let (model, lv) = (model.clone(), levels.to_vec());
        let bodies = tokio::spawn(async move {
            compute_many(
                store.as_ref(),
                &cache,
                &persist,
                &model,
                &miss_keys,
                &miss_cache_keys,
                horizon,
                &lv,
            )
            .await
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
        for ((i, _), b) in misses.iter().zip(bodies) {
            out[*i] = Some(b.unwrap_or_else(|| {
                error_entry(&keys[*i], no_volume_message(keys[*i].0, &keys[*i].1))
            }));
        }
    }
    for (i, k) in dup {
        out[i] = out[miss_of_key[&k]].clone();
    }
    out.into_iter()
        .map(|o| o.ok_or_else(|| ApiError::Internal("batch entry left unanswered".into())))
        .collect()
}

/// Body of `GET /v1/models`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ModelsResponse {
    /// Version being served.
    serving: String,
    /// Every registered model.
    models: Vec<ModelRecord>,
}

/// `GET /v1/models`: the registry and the model being served.
#[utoipa::path(get, path = "/v1/models", tag = "models",
    responses((status = 200, body = ModelsResponse),
              (status = 500, description = "The store failed", body = ErrorResponse)))]
pub async fn models(State(state): State<AppState>) -> Result<Json<ModelsResponse>, ApiError> {
    let list = state.store.models().await?;
    Ok(Json(ModelsResponse {
        serving: state.forecasting.model.current().manifest.version.clone(),
        models: list,
    }))
}

/// Body of `POST /v1/models/{version}/activate`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Activated {
    /// Version now served.
    serving: String,
}

/// `POST /v1/models/{version}/activate`: loads the model, marks it active, swaps it in.
#[utoipa::path(post, path = "/v1/models/{version}/activate", tag = "models",
    params(("version" = String, Path, description = "A registered model version")),
    responses((status = 200, description = "The model is loaded, marked active and served", body = Activated),
              (status = 400, description = "The version is not valid UTF-8 once percent-decoded", body = ErrorResponse),
              (status = 404, description = "No such version in the registry", body = ErrorResponse),
              (status = 409, description = "The artifact cannot be loaded", body = ErrorResponse),
              (status = 500, description = "The store failed", body = ErrorResponse)))]
pub async fn activate(
    State(state): State<AppState>,
    Path(version): Path<String>,
) -> Result<Response, ApiError> {
    let rec = state
        .store
        .models()
        .await?
        .into_iter()
        .find(|m| m.version == version)
        .ok_or_else(|| {
            ApiError::NotFound(format!("no model version `{version}` in the registry"))
        })?;
    let dir = std::path::PathBuf::from(&rec.artifact);
    let loaded = tokio::task::spawn_blocking(move || Predictor::load(&dir))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Conflict(format!("model {version} cannot be loaded: {e}")))?;
    state.store.activate_model(&version).await?;
    state.forecasting.model.swap(loaded);
    Ok((StatusCode::OK, Json(Activated { serving: version })).into_response())
}
