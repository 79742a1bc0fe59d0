//! Forecast and model-registry endpoints: parse the request into edge types, ask the
//! [`Forecaster`](crate::serving::Forecaster), write the answer out.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use kwi_features::series::Series;
use kwi_features::{Frequency, Horizon, Keyword, Levels, ParamError, Platform};
use serde::{Deserialize, Serialize};

use super::ApiError;
use super::keywords::parse_key;
use crate::app::AppState;
use crate::serving::{BatchItem, ForecastBody};

/// Most keywords or series in one batch request.
pub const MAX_BATCH: usize = 1000;
/// Most values in one ad-hoc series.
pub const MAX_SERIES_VALUES: usize = 10_000;

/// Query of the forecast endpoint.
#[derive(Debug, Deserialize)]
pub struct ForecastQuery {
    horizon: Option<String>,
    levels: Option<String>,
}

fn param_error(field: &'static str) -> impl Fn(ParamError) -> ApiError {
    move |e| ApiError::BadRequest {
        field,
        message: e.to_string(),
    }
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
    params(("platform" = String, Path, description = "amazon, etsy, ebay, google or benchmark"),
           ("keyword" = String, Path, description = "Keyword"),
           ("horizon" = Option<usize>, Query, description = "Periods ahead, 1..=104 (default 13)"),
           ("levels" = Option<String>, Query, description = "Interval coverages in percent, comma-separated, in (0, 100) (default 80,95)")),
    responses((status = 200, description = "Mean and intervals per step, the model version, the data's last period and the model's measured accuracy; header `x-cache: hit|miss`", body = ForecastBody),
              (status = 400, body = crate::http::error::ErrorResponse),
              (status = 404, body = crate::http::error::ErrorResponse)))]
pub async fn forecast(
    State(state): State<AppState>,
    Path((platform, keyword)): Path<(String, String)>,
    Query(q): Query<ForecastQuery>,
) -> Result<Response, ApiError> {
    let (platform, keyword) = parse_key(&platform, &keyword)?;
    let horizon = q
        .horizon
        .as_deref()
        .map(Horizon::parse)
        .transpose()
        .map_err(param_error("horizon"))?
        .unwrap_or_default();
    let levels = q
        .levels
        .as_deref()
        .map(Levels::parse)
        .transpose()
        .map_err(param_error("levels"))?;
    let served = state
        .forecaster
        .keyword(platform, &keyword, horizon, levels.as_ref())
        .await?;
    Ok(json_bytes(served.body, served.cached))
}

/// One keyword of a batch.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchKeyword {
    platform: String,
    keyword: String,
}

/// An ad-hoc series (not stored): forecast it like TimeGPT's forecast call.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdHocSeries {
    id: String,
    /// Search volumes, oldest first, one per period.
    values: Vec<f64>,
    /// First period (default 2000-01-02).
    start: Option<chrono::NaiveDate>,
}

/// Body of `POST /v1/forecasts`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    #[serde(default)]
    keywords: Vec<BatchKeyword>,
    #[serde(default)]
    series: Vec<AdHocSeries>,
    horizon: Option<usize>,
    levels: Option<Vec<f64>>,
}

/// `POST /v1/forecasts`: up to 1,000 stored keywords and/or ad-hoc series.
#[utoipa::path(post, path = "/v1/forecasts", tag = "forecasts", request_body = BatchRequest,
    responses((status = 200, description = "`{model_version, horizon, results: [ForecastBody | {platform, keyword, error}]}` in request order (stored keywords, then series)", body = Object),
              (status = 400, body = crate::http::error::ErrorResponse),
              (status = 415, description = "Not application/json", body = crate::http::error::ErrorResponse)))]
pub async fn batch(
    State(state): State<AppState>,
    body: Result<Json<BatchRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body.map_err(|e| match e {
        axum::extract::rejection::JsonRejection::MissingJsonContentType(e) => {
            ApiError::UnsupportedMediaType(e.body_text())
        }
        e => ApiError::BadRequest {
            field: "body",
            message: e.body_text(),
        },
    })?;
    let n = req.keywords.len() + req.series.len();
    if n == 0 || n > MAX_BATCH {
        return Err(ApiError::BadRequest {
            field: "keywords",
            message: format!("a batch holds 1 to {MAX_BATCH} keywords and series; got {n}"),
        });
    }
    let horizon = req
        .horizon
        .map(Horizon::new)
        .transpose()
        .map_err(param_error("horizon"))?
        .unwrap_or_default();
    let levels = req
        .levels
        .map(Levels::new)
        .transpose()
        .map_err(param_error("levels"))?;
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
    let answer = state
        .forecaster
        .batch(&keys, adhoc, horizon, levels.as_ref())
        .await?;
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
    #[schema(value_type = String)]
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
    code: &'static str,
    /// What is missing.
    message: String,
}

/// An ad-hoc series of a batch, checked: 1 to 10,000 non-negative values and a valid id.
fn adhoc_series(i: usize, s: AdHocSeries) -> Result<Series, ApiError> {
    if s.values.is_empty() || s.values.len() > MAX_SERIES_VALUES {
        return Err(ApiError::BadRequest {
            field: "series[].values",
            message: format!("series[{i}]: give 1 to {MAX_SERIES_VALUES} values"),
        });
    }
    if let Some(v) = s.values.iter().find(|v| !v.is_finite() || **v < 0.0) {
        return Err(ApiError::BadRequest {
            field: "series[].values",
            message: format!("series[{i}]: {v} is not a non-negative number"),
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

/// `GET /v1/models`: the registry and the model being served.
#[utoipa::path(get, path = "/v1/models", tag = "models",
    responses((status = 200, description = "`{serving, models: [ModelRecord]}`", body = Object)))]
pub async fn models(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let list = state.store.models().await?;
    Ok(Json(serde_json::json!({
        "serving": state.forecaster.status().model_version,
        "models": list,
    })))
}

/// `POST /v1/models/{version}/activate`: loads the model, marks it active, swaps it in.
#[utoipa::path(post, path = "/v1/models/{version}/activate", tag = "models",
    params(("version" = String, Path, description = "A registered model version")),
    responses((status = 200, description = "`{serving: version}`", body = Object),
              (status = 404, body = crate::http::error::ErrorResponse),
              (status = 409, description = "The artifact cannot be loaded", body = crate::http::error::ErrorResponse)))]
pub async fn activate(
    State(state): State<AppState>,
    Path(version): Path<String>,
) -> Result<Response, ApiError> {
    state.forecaster.activate(&version).await?;
    Ok((
        StatusCode::OK,
        Json(serde_json::json!({ "serving": version })),
    )
        .into_response())
}
