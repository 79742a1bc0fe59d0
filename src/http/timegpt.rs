//! TimeGPT-compatible endpoints, so data scientists keep the client they know: the official
//! `nixtla` Python SDK (`NixtlaClient(base_url=KWI, api_key=KEY)`) calls `GET /model_params`, then
//! `POST /v2/forecast` or `POST /v2/cross_validation` with every series concatenated (`series.y`,
//! `series.sizes`), `h`, `freq` (a pandas alias: `D`, `W-SUN`, `MS`, …) and `level`; it rebuilds
//! the timestamps itself. Bodies over 1 MiB arrive zstd-compressed (`Content-Encoding: zstd`,
//! decoded by tower-http's request decompression before these handlers).
//!
//! Which model answers: the served model when it was trained on data of the request's frequency
//! (its manifest's `training_data.freq`; weekly for older manifests), else the built-in seasonal
//! naive baseline for that frequency (season 7, 52 or 12) with intervals calibrated on the
//! request's own series (for cross-validation, on the history before each window, so no window sees
//! its own actuals). The `x-kwi-model` response header names it. One series is one keyword lookup
//! (a cross-validation costs series × windows), charged to the caller's plan like `/v1/forecasts`.
//!
//! Not supported (a 400 says so): exogenous variables (`X`, `X_future`, `hist_exog`), fine-tuning
//! (`finetune_steps` > 0), `multivariate`, negative values (kwi forecasts search volumes), and
//! frequencies other than daily, weekly and monthly.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::NaiveDate;
use kwi_features::series::regular_series;
use kwi_features::{Frequency, Horizon, Keyword, Platform};
use kwi_predict::Predictor;
use serde::{Deserialize, Serialize};

use super::ApiError;
use super::extract::Query;
use crate::app::AppState;
use crate::auth::Principal;

/// Largest decompressed body of the TimeGPT endpoints (the SDK sends up to 200 MiB; split larger
/// panels with its `num_partitions`).
pub const MAX_TIMEGPT_BODY: usize = 64 << 20;
/// Points per series `/model_params` announces: the SDK keeps that many of each series (three
/// times as many, plus the horizon, when intervals are asked for).
pub const INPUT_SIZE: usize = 1024;
/// Most values of all series together.
pub const MAX_TOTAL_VALUES: usize = 5_000_000;
/// Most distinct levels.
const MAX_LEVELS: usize = 20;
/// Largest `step_size` of a cross-validation.
const MAX_STEP: usize = 100_000;
/// Values of a series are volumes: at most this large (as `/v1/forecasts`' series).
const MAX_VALUE: f64 = super::forecast::MAX_SERIES_VALUE;

/// Query of `GET /model_params` (both are answered the same whatever they say: kwi serves its
/// own model, and an unsupported frequency is refused by the forecast routes).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ModelParamsQuery {
    /// Model name the SDK sends.
    pub model: Option<String>,
    /// pandas frequency alias.
    pub freq: Option<String>,
}

/// What `/model_params` answers (the SDK reads `detail.input_size` and `detail.horizon`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelParams {
    detail: ModelParamsDetail,
}

/// The parameters.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelParamsDetail {
    /// Points of history per series the client should send.
    input_size: usize,
    /// Horizon the served model was trained for.
    horizon: usize,
}

/// `GET /model_params`: how much history the client should send (TimeGPT-compatible).
#[utoipa::path(get, path = "/model_params", tag = "timegpt", params(ModelParamsQuery),
    responses((status = 200, body = ModelParams),
              (status = 400, description = "An unreadable query", body = super::error::ErrorResponse)))]
pub async fn model_params(
    State(state): State<AppState>,
    Query(q): Query<ModelParamsQuery>,
) -> Result<axum::Json<ModelParams>, ApiError> {
    tracing::debug!(model = ?q.model, freq = ?q.freq, "TimeGPT model_params");
    Ok(axum::Json(ModelParams {
        detail: ModelParamsDetail {
            input_size: INPUT_SIZE,
            horizon: state.forecaster.model().manifest.horizon,
        },
    }))
}

/// The series of a TimeGPT request, concatenated.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SeriesIn {
    /// Every series' values, one after the other (`null` = missing, interpolated when inside a
    /// series).
    pub y: Vec<Option<f64>>,
    /// Length of each series, in order; they sum to `y`'s length.
    pub sizes: Vec<usize>,
    /// Exogenous variables: not supported (must be null or absent).
    #[serde(rename = "X", default)]
    #[schema(value_type = Option<Object>)]
    pub x: Option<serde_json::Value>,
    /// Future exogenous variables: not supported (must be null or absent).
    #[serde(rename = "X_future", default)]
    #[schema(value_type = Option<Object>)]
    pub x_future: Option<serde_json::Value>,
}

/// Body of `POST /v2/forecast` and `POST /v2/cross_validation` (other fields the SDK sends, such
/// as `model`, `clean_ex_first`, `start_datetime`, are accepted and ignored).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct TimeGptRequest {
    /// The series.
    pub series: SeriesIn,
    /// Horizon (1..=104).
    pub h: usize,
    /// pandas alias: `D`, `W`/`W-SUN`/…, `MS`/`M`/`ME`.
    pub freq: String,
    /// Interval levels in percent, [0, 100) (duplicates are fine: the SDK sends quantiles so).
    #[serde(default)]
    pub level: Option<Vec<f64>>,
    /// Fine-tuning steps: only 0.
    #[serde(default)]
    pub finetune_steps: Option<u64>,
    /// Cross-validation windows (default 1).
    #[serde(default)]
    pub n_windows: Option<usize>,
    /// Periods between windows (default `h`).
    #[serde(default)]
    pub step_size: Option<usize>,
    /// Historical exogenous variables: not supported.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub hist_exog: Option<serde_json::Value>,
    /// Multivariate forecasting: not supported.
    #[serde(default)]
    pub multivariate: Option<bool>,
}

/// Answer of `POST /v2/forecast`: every series' `h` means in request order, and per level
/// `lo-L`/`hi-L` arrays aligned with them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TimeGptForecast {
    /// Means, series after series.
    mean: Vec<f64>,
    /// `{"lo-80": [...], "hi-80": [...]}`, or null without levels.
    #[schema(value_type = Option<Object>)]
    intervals: Option<BTreeMap<String, Vec<f64>>>,
    /// Always null (no exogenous variables).
    #[schema(value_type = Option<Object>)]
    weights_x: Option<()>,
    /// Always null.
    #[schema(value_type = Option<Object>)]
    feature_contributions: Option<()>,
}

/// Answer of `POST /v2/cross_validation`: for every series and window (oldest first), `h` rows;
/// `idxs` are the rows' positions in the request's `series.y`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TimeGptCrossValidation {
    /// Position in `series.y` of each forecast row's actual.
    idxs: Vec<usize>,
    /// Rows per series (windows × h).
    sizes: Vec<usize>,
    /// Means.
    mean: Vec<f64>,
    /// As in the forecast answer.
    #[schema(value_type = Option<Object>)]
    intervals: Option<BTreeMap<String, Vec<f64>>>,
}

/// pandas frequency alias → kwi frequency (a multiple other than 1 is refused).
fn pandas_freq(alias: &str) -> Result<Frequency, ApiError> {
    let t = alias.trim();
    let digits = t.chars().take_while(char::is_ascii_digit).count();
    let (n, unit) = t.split_at(digits);
    let unit = unit.to_ascii_uppercase();
    let freq = match unit.as_str() {
        "D" => Some(Frequency::Daily),
        "W" => Some(Frequency::Weekly),
        u if u.starts_with("W-") => Some(Frequency::Weekly),
        "MS" | "M" | "ME" => Some(Frequency::Monthly),
        _ => None,
    };
    match (freq, n) {
        (Some(f), "" | "1") => Ok(f),
        _ => Err(ApiError::BadRequest {
            field: "freq",
            message: format!(
                "frequency `{t}` is not supported: kwi forecasts daily (`D`), weekly (`W`, `W-SUN`, …) and monthly (`MS`, `M`) series"
            ),
        }),
    }
}

/// The request's checked parts.
struct Checked {
    freq: Frequency,
    horizon: Horizon,
    /// Distinct levels in (0, 100) asked for, sorted.
    levels: Vec<f64>,
    /// Whether level 0 was asked for (its band is the mean).
    zero_level: bool,
    /// The series (values as given, missing inside interpolated) and their offsets in `y`.
    series: Vec<(usize, Vec<f64>)>,
}

fn bad(field: &'static str, message: String) -> ApiError {
    ApiError::BadRequest { field, message }
}

fn check(req: &TimeGptRequest, plan_batch: i64) -> Result<Checked, ApiError> {
    let freq = pandas_freq(&req.freq)?;
    let horizon = Horizon::new(req.h).map_err(|e| bad("h", e.to_string()))?;
    if req.series.x.as_ref().is_some_and(|v| !v.is_null())
        || req.series.x_future.as_ref().is_some_and(|v| !v.is_null())
        || req.hist_exog.as_ref().is_some_and(|v| !v.is_null())
    {
        return Err(bad(
            "series.X",
            "exogenous variables are not supported: send the target series only".into(),
        ));
    }
    if req.finetune_steps.unwrap_or(0) > 0 {
        return Err(bad(
            "finetune_steps",
            "fine-tuning is not supported: kwi's model is trained with kwi-train; send finetune_steps=0".into(),
        ));
    }
    if req.multivariate == Some(true) {
        return Err(bad(
            "multivariate",
            "multivariate forecasting is not supported".into(),
        ));
    }
    let mut levels = Vec::new();
    let mut zero_level = false;
    for &l in req.level.iter().flatten() {
        if l == 0.0 {
            zero_level = true;
        } else if l > 0.0 && l < 100.0 {
            if !levels.contains(&l) {
                levels.push(l);
            }
        } else {
            return Err(bad("level", format!("level {l} is outside [0, 100)")));
        }
    }
    levels.sort_by(f64::total_cmp);
    if levels.len() > MAX_LEVELS {
        return Err(bad(
            "level",
            format!("at most {MAX_LEVELS} levels; got {}", levels.len()),
        ));
    }
    let sizes = &req.series.sizes;
    if sizes.is_empty() {
        return Err(bad("series.sizes", "give at least one series".into()));
    }
    if sizes.len() as i64 > plan_batch {
        return Err(bad(
            "series.sizes",
            format!(
                "your plan takes at most {plan_batch} series per request; this one has {} (the SDK's num_partitions splits a panel)",
                sizes.len()
            ),
        ));
    }
    // Checked: a size near usize::MAX must be an error, not an overflow.
    let total = sizes
        .iter()
        .try_fold(0usize, |a, n| a.checked_add(*n))
        .unwrap_or(usize::MAX);
    if total != req.series.y.len() {
        return Err(bad(
            "series.sizes",
            format!(
                "the sizes add up to {total} but series.y holds {} values",
                req.series.y.len()
            ),
        ));
    }
    if total > MAX_TOTAL_VALUES {
        return Err(bad(
            "series.y",
            format!("at most {MAX_TOTAL_VALUES} values per request; got {total}"),
        ));
    }
    let mut series = Vec::with_capacity(sizes.len());
    let mut offset = 0;
    for (i, &n) in sizes.iter().enumerate() {
        let raw = &req.series.y[offset..offset + n];
        let values = fill(i, raw)?;
        series.push((offset, values));
        offset += n;
    }
    Ok(Checked {
        freq,
        horizon,
        levels,
        zero_level,
        series,
    })
}

/// A series' values with inner gaps interpolated (the same construction as stored keywords',
/// [`regular_series`]); leading missing values are dropped, a missing last value is refused (the
/// forecast would start after a period with no data).
fn fill(i: usize, raw: &[Option<f64>]) -> Result<Vec<f64>, ApiError> {
    if raw.is_empty() {
        return Err(bad("series.sizes", format!("series {i} is empty")));
    }
    if raw.last().is_some_and(Option::is_none) {
        return Err(bad(
            "series.y",
            format!("series {i} ends with a missing value: drop trailing missing values"),
        ));
    }
    if let Some(v) = raw
        .iter()
        .flatten()
        .find(|v| !(0.0..=MAX_VALUE).contains(*v))
    {
        return Err(bad(
            "series.y",
            format!("series {i}: {v} is not a search volume in 0..={MAX_VALUE:e}"),
        ));
    }
    let day0 = NaiveDate::from_ymd_opt(2000, 1, 1).expect("valid");
    let points: Vec<(NaiveDate, f64)> = raw
        .iter()
        .enumerate()
        .filter_map(|(k, v)| v.map(|v| (day0 + chrono::Duration::days(k as i64), v)))
        .collect();
    let keyword = Keyword::parse("series").expect("valid keyword");
    let s = regular_series(
        Platform::Benchmark,
        keyword,
        String::new(),
        &points,
        Frequency::Daily,
    )
    .expect("the last value is present");
    Ok(s.values)
}

/// The model for `freq`: the served one if trained at that frequency, else a seasonal-naive
/// baseline calibrated on `calibration`.
fn model_for(
    served: Arc<Predictor>,
    freq: Frequency,
    calibration: &[&[f64]],
    h: usize,
) -> Arc<Predictor> {
    if served.frequency() == freq {
        served
    } else {
        // Calibrated on every series of the request together (pooled errors: steadier bands than
        // one series alone gives).
        Arc::new(Predictor::baseline_for(freq, calibration, h))
    }
}

/// One model call on `values` (the served model or a baseline calibrated on them, see
/// [`model_for`]), after [`supported`]: the forecasts and the answering model's version.
fn forecast_on(
    served: &Arc<Predictor>,
    c: &Checked,
    values: &[&[f64]],
) -> Result<(Vec<kwi_models::Forecast>, String), ApiError> {
    let h = c.horizon.get();
    let model = model_for(served.clone(), c.freq, values, h);
    supported(&model, c, values)?;
    let forecasts = model
        .forecast(values, h, &c.levels)
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    Ok((forecasts, model.manifest.version.clone()))
}

/// Runs model work off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?
}

/// Refuses levels the model cannot answer (outside its calibrated range, or a baseline with no
/// series long enough to calibrate on), so every `lo-L`/`hi-L` the client expects is present.
fn supported(model: &Predictor, c: &Checked, calibration: &[&[f64]]) -> Result<(), ApiError> {
    if c.levels.is_empty() {
        return Ok(());
    }
    let conformal = &model.manifest.conformal;
    if model.manifest.ensemble.members == [kwi_models::ensemble::Member::SNaive]
        && model.manifest.version.starts_with("builtin")
        && !calibration.iter().any(|s| s.len() > c.horizon.get() + 2)
    {
        return Err(bad(
            "level",
            format!(
                "intervals are calibrated on the series' own past: at least one series needs more than h + 2 = {} values",
                c.horizon.get() + 2
            ),
        ));
    }
    if let Some(l) = c.levels.iter().find(|l| !conformal.supports(**l)) {
        return Err(bad(
            "level",
            format!(
                "level {l} is outside the levels model {} is calibrated for ({}–{})",
                model.manifest.version,
                conformal.levels.first().copied().unwrap_or(f64::NAN),
                conformal.levels.last().copied().unwrap_or(f64::NAN)
            ),
        ));
    }
    Ok(())
}

/// Level as Python's `str()` spells it (`80`, `80.5`): the SDK builds its column names so.
fn level_key(side: &str, level: f64) -> String {
    if level.fract() == 0.0 {
        format!("{side}-{level:.0}")
    } else {
        format!("{side}-{level}")
    }
}

/// Collects forecasts into the answer's `mean` and `intervals`.
#[derive(Default)]
struct Columns {
    mean: Vec<f64>,
    bands: BTreeMap<String, Vec<f64>>,
}

impl Columns {
    fn push(&mut self, c: &Checked, f: &kwi_models::Forecast) {
        self.mean.extend_from_slice(&f.mean);
        for &l in &c.levels {
            if let Some(i) = f.interval(l) {
                self.bands
                    .entry(level_key("lo", l))
                    .or_default()
                    .extend_from_slice(&i.lo);
                self.bands
                    .entry(level_key("hi", l))
                    .or_default()
                    .extend_from_slice(&i.hi);
            }
        }
        if c.zero_level {
            for side in ["lo", "hi"] {
                self.bands
                    .entry(level_key(side, 0.0))
                    .or_default()
                    .extend_from_slice(&f.mean);
            }
        }
    }

    fn intervals(&mut self, c: &Checked) -> Option<BTreeMap<String, Vec<f64>>> {
        (!c.levels.is_empty() || c.zero_level).then(|| std::mem::take(&mut self.bands))
    }
}

fn with_model_header(body: impl Serialize, version: &str) -> Response {
    let mut res = axum::Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(version) {
        res.headers_mut().insert("x-kwi-model", v);
    }
    res
}

/// Reads a TimeGPT body (already decompressed), bounded by [`MAX_TIMEGPT_BODY`].
fn parse_body(body: &Bytes) -> Result<TimeGptRequest, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        ApiError::Unreadable {
            field: if path == "." { "body".into() } else { path },
            message: e.into_inner().to_string(),
        }
    })
}

/// `POST /v2/forecast`: TimeGPT-compatible forecast of every series in the body.
#[utoipa::path(post, path = "/v2/forecast", tag = "timegpt", request_body = TimeGptRequest,
    responses((status = 200, body = TimeGptForecast),
              (status = 400, description = "Invalid or unsupported request", body = super::error::ErrorResponse),
              (status = 413, description = "Body over 64 MiB once decompressed", body = super::error::ErrorResponse)))]
pub async fn forecast(
    State(state): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = parse_body(&body)?;
    drop(body);
    let c = check(&req, p.plan.max_batch)?;
    drop(req);
    state.auth.charge(&p, c.series.len()).await?;
    let served = state.forecaster.model();
    let (c, out, version) = blocking(move || {
        let values: Vec<&[f64]> = c.series.iter().map(|(_, v)| v.as_slice()).collect();
        let (forecasts, version) = forecast_on(&served, &c, &values)?;
        let mut cols = Columns::default();
        for f in &forecasts {
            cols.push(&c, f);
        }
        Ok((c, cols, version))
    })
    .await?;
    let mut out = out;
    let answer = TimeGptForecast {
        intervals: out.intervals(&c),
        mean: out.mean,
        weights_x: None,
        feature_contributions: None,
    };
    Ok(with_model_header(answer, &version))
}

/// `POST /v2/cross_validation`: TimeGPT-compatible rolling-origin forecasts.
#[utoipa::path(post, path = "/v2/cross_validation", tag = "timegpt", request_body = TimeGptRequest,
    responses((status = 200, body = TimeGptCrossValidation),
              (status = 400, description = "Invalid or unsupported request, or a series too short for its windows", body = super::error::ErrorResponse),
              (status = 413, description = "Body over 64 MiB once decompressed", body = super::error::ErrorResponse)))]
pub async fn cross_validation(
    State(state): State<AppState>,
    p: Principal,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = parse_body(&body)?;
    drop(body);
    let windows = req.n_windows.unwrap_or(1);
    let step = req.step_size.unwrap_or(req.h);
    if !(1..=50).contains(&windows) {
        return Err(bad(
            "n_windows",
            format!("n_windows must be in 1..=50; got {windows}"),
        ));
    }
    if !(1..=MAX_STEP).contains(&step) {
        return Err(bad(
            "step_size",
            format!("step_size must be in 1..={MAX_STEP}; got {step}"),
        ));
    }
    let c = check(&req, p.plan.max_batch)?;
    drop(req);
    let h = c.horizon.get();
    // Window w (0 = oldest) of a series of n values forecasts from cutoff n − h − step·(windows−1−w).
    let span = h + step * (windows - 1);
    for (i, (_, v)) in c.series.iter().enumerate() {
        if v.len() < span + 2 {
            return Err(bad(
                "series.sizes",
                format!(
                    "series {i} has {} values; {windows} window(s) of h = {h} every {step} need at least {}",
                    v.len(),
                    span + 2
                ),
            ));
        }
    }
    state.auth.charge(&p, c.series.len() * windows).await?;
    let served = state.forecaster.model();
    let (c, cols, idxs, version) = blocking(move || {
        // Per window: every series cut at its cutoff, one model call (a baseline calibrated on
        // exactly those histories).
        let mut by_window = Vec::with_capacity(windows);
        let mut version = String::new();
        for w in 0..windows {
            let back = h + step * (windows - 1 - w);
            let cut: Vec<&[f64]> = c.series.iter().map(|(_, v)| &v[..v.len() - back]).collect();
            let (forecasts, v) = forecast_on(&served, &c, &cut)?;
            version = v;
            by_window.push(forecasts);
        }
        let mut cols = Columns::default();
        let mut idxs = Vec::new();
        for (i, (offset, v)) in c.series.iter().enumerate() {
            for (w, window) in by_window.iter().enumerate() {
                let cutoff = v.len() - (h + step * (windows - 1 - w));
                idxs.extend((0..h).map(|k| offset + cutoff + k));
                cols.push(&c, &window[i]);
            }
        }
        Ok((c, cols, idxs, version))
    })
    .await?;
    let mut cols = cols;
    let answer = TimeGptCrossValidation {
        sizes: vec![windows * h; c.series.len()],
        idxs,
        intervals: cols.intervals(&c),
        mean: cols.mean,
    };
    Ok(with_model_header(answer, &version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pandas_aliases() {
        assert_eq!(pandas_freq("W-SUN").unwrap(), Frequency::Weekly);
        assert_eq!(pandas_freq("w").unwrap(), Frequency::Weekly);
        assert_eq!(pandas_freq("1MS").unwrap(), Frequency::Monthly);
        assert_eq!(pandas_freq("ME").unwrap(), Frequency::Monthly);
        assert_eq!(pandas_freq("D").unwrap(), Frequency::Daily);
        for bad in ["h", "2W", "QS", "", "min"] {
            assert!(pandas_freq(bad).is_err(), "{bad}");
        }
        assert_eq!(level_key("lo", 80.0), "lo-80");
        assert_eq!(level_key("hi", 80.5), "hi-80.5");
    }

    #[test]
    fn gaps_inside_a_series_are_interpolated_and_a_missing_end_refused() {
        assert_eq!(
            fill(0, &[None, Some(1.0), None, Some(3.0)]).unwrap(),
            vec![1.0, 2.0, 3.0]
        );
        assert!(fill(0, &[Some(1.0), None]).is_err());
        assert!(fill(0, &[Some(-1.0)]).is_err());
    }
}
