//! Forecast and model-registry endpoints: parse the request into edge types, ask the
//! [`Forecaster`](crate::serving::Forecaster), write the answer out.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use kwi_features::series::Series;
use kwi_features::{Frequency, Horizon, Keyword, Levels, Platform};
use serde::{Deserialize, Serialize};

use super::ApiError;
use super::error::ErrorResponse;
use super::extract::{self, Path, Query};
use super::keywords::parse_key;
use super::openapi::{KeywordText, Level, LevelList, PlatformName};
use crate::app::AppState;
use crate::auth::Principal;
use crate::serving::{BatchItem, ForecastBody};
use kwi_store::ModelRecord;

/// Most keywords, and most series, in one batch request.
pub const MAX_BATCH: usize = 1000;
/// Most values in one ad-hoc series.
pub const MAX_SERIES_VALUES: usize = 10_000;
/// Largest value of an ad-hoc series: far above any search volume, far enough below `f64::MAX`
/// that intervals around it stay finite.
pub const MAX_SERIES_VALUE: f64 = 1e12;

/// Query of the forecast endpoint, parsed into edge types (a bad value is a 400 naming the field).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ForecastQuery {
    /// Periods ahead.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 104, default = 13)]
    #[serde(default, deserialize_with = "extract::query_horizon")]
    horizon: Option<Horizon>,
    /// Interval coverages in percent, comma-separated (`levels=80,95`, the default), returned
    /// sorted without duplicates.
    #[param(value_type = Option<LevelList>)]
    #[serde(default, deserialize_with = "extract::query_levels")]
    levels: Option<Levels>,
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
    p: Principal,
    Path((platform, keyword)): Path<(String, String)>,
    Query(q): Query<ForecastQuery>,
) -> Result<Response, ApiError> {
    let (platform, keyword) = parse_key(&platform, &keyword)?;
    state.auth.charge(&p, 1).await?;
    let horizon = q.horizon.unwrap_or_default();
    let served = state
        .forecaster
        .keyword(platform, &keyword, horizon, q.levels.as_ref())
        .await?;
    state.auth.record(
        &p,
        platform.as_str(),
        keyword.as_str(),
        || serde_json::json!({ "route": "forecast", "horizon": horizon.get() }),
    );
    Ok(json_bytes(served.body, served.cached))
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
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 104)]
    #[serde(default, deserialize_with = "extract::body_horizon")]
    horizon: Option<Horizon>,
    /// Interval coverages in percent (default `[80, 95]`), returned sorted without duplicates.
    #[schema(value_type = Option<Vec<Level>>, min_items = 1, max_items = 10)]
    #[serde(default, deserialize_with = "extract::body_levels")]
    levels: Option<Levels>,
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
    Failed(FailedEntry<'static>),
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
    p: Principal,
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
    let entries = req.keywords.len() + req.series.len();
    if req.keywords.len().max(req.series.len()) as i64 > p.plan.max_batch {
        return Err(ApiError::BadRequest {
            field: if req.keywords.len() as i64 > p.plan.max_batch {
                "keywords"
            } else {
                "series"
            },
            message: format!(
                "the {} plan takes at most {} keywords and {} series per batch; this one has {} and {}",
                p.plan.name,
                p.plan.max_batch,
                p.plan.max_batch,
                req.keywords.len(),
                req.series.len()
            ),
        });
    }
    let (horizon, levels) = (req.horizon.unwrap_or_default(), req.levels);
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
    let adhoc = req
        .series
        .into_iter()
        .enumerate()
        .map(|(i, s)| adhoc_series(i, s))
        .collect::<Result<Vec<_>, _>>()?;
    state.auth.charge(&p, entries).await?;
    let answer = state
        .forecaster
        .batch(&keys, adhoc, horizon, levels.as_ref())
        .await?;
    for (platform, keyword) in &keys {
        state.auth.record(
            &p,
            platform.as_str(),
            keyword.as_str(),
            || serde_json::json!({ "route": "batch", "horizon": horizon.get() }),
        );
    }
    // The forecasts are already JSON (most from the cache): the answer is written around them, not
    // re-parsed.
    let mut out = Vec::with_capacity(64 + answer.results.iter().map(item_len).sum::<usize>());
    out.extend_from_slice(b"{\"model_version\":");
    serde_json::to_writer(&mut out, &answer.model_version)?;
    out.extend_from_slice(format!(",\"horizon\":{},\"results\":[", answer.horizon).as_bytes());
    for (i, r) in answer.results.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match r {
            BatchItem::Forecast(body) => out.extend_from_slice(body),
            BatchItem::Failed {
                platform,
                keyword,
                error,
            } => serde_json::to_writer(
                &mut out,
                &FailedEntry {
                    platform: *platform,
                    keyword,
                    error: FailedError {
                        code: "not_found",
                        message: error.to_string(),
                    },
                },
            )?,
        }
    }
    out.extend_from_slice(b"]}");
    Ok(([(header::CONTENT_TYPE, "application/json")], out).into_response())
}

fn item_len(item: &BatchItem) -> usize {
    match item {
        BatchItem::Forecast(b) => b.len() + 1,
        BatchItem::Failed { .. } => 160,
    }
}

/// A batch entry that could not be forecast (`{platform, keyword, error: {code, message}}`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct FailedEntry<'a> {
    /// Platform of the entry.
    #[schema(value_type = PlatformName)]
    platform: Platform,
    /// Keyword of the entry.
    #[schema(value_type = String)]
    keyword: &'a Keyword,
    /// Why it has no forecast.
    error: FailedError,
}

/// Why a batch entry has no forecast.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FailedError {
    /// `not_found`: the keyword is not stored, or has no search-volume history.
    #[schema(value_type = String, pattern = "^not_found$")]
    code: &'static str,
    /// What is missing.
    message: String,
}

/// An ad-hoc series of a batch, checked: 1 to 10,000 values in 0..=1e12 and a valid id.
fn adhoc_series(i: usize, s: AdHocSeries) -> Result<Series, ApiError> {
    if s.values.is_empty() || s.values.len() > MAX_SERIES_VALUES {
        return Err(ApiError::BadRequest {
            field: "series[].values",
            message: format!("series[{i}]: give 1 to {MAX_SERIES_VALUES} values"),
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
    Ok(Series {
        platform: Platform::Benchmark,
        keyword,
        start: s
            .start
            .unwrap_or_else(|| chrono::NaiveDate::from_ymd_opt(2000, 1, 2).expect("valid")),
        freq: Frequency::Weekly,
        observed: vec![true; s.values.len()],
        gaps: 0,
        label: s.id,
        values: s.values,
    })
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
        serving: state.forecaster.model().manifest.version.clone(),
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
    p: Principal,
    Path(version): Path<String>,
) -> Result<Response, ApiError> {
    state.forecaster.activate(&version).await?;
    state.auth.audit(
        Some(p.user_id).filter(|_| !p.anonymous),
        "model.activated",
        Some(version.clone()),
        serde_json::json!({}),
    );
    Ok((StatusCode::OK, Json(Activated { serving: version })).into_response())
}
