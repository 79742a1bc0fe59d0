//! What a served forecast looks like: the JSON body of the forecast endpoints, built from the model's
//! output, and the `predictions` row it is persisted as.

use bytes::Bytes;
use chrono::NaiveDate;
use kwi_features::series::{Series, regular_series_of};
use kwi_features::{Frequency, Horizon, Keyword, Platform};
use kwi_predict::Predictor;
use kwi_store::PredictionRecord;
use serde::Serialize;

use super::ServeError;

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
    /// The series' frequency (`daily`, `weekly`, `monthly`: periods are calendar months, dated
    /// the 1st).
    #[schema(value_type = String, pattern = "^(daily|weekly|monthly)$")]
    pub freq: Frequency,
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

/// Builds a keyword's regular series from its stored volumes ([`kwi_store::Store::volumes_many`])
/// on the grid its dates show (daily, weekly or calendar months; the same construction as
/// training's [`kwi_features::series::regularise`]).
pub fn series_from_volumes(
    platform: Platform,
    keyword: &Keyword,
    volumes: &[(NaiveDate, f64)],
) -> Option<Series> {
    regular_series_of(platform, keyword, volumes)
}

/// Runs the model on many series in one call (global members batch them; blocking: call from the
/// blocking pool unless the model is light and the input small).
pub fn forecast_many(
    model: &Predictor,
    series: &[Series],
    horizon: Horizon,
    levels: &[f64],
) -> Result<Vec<ForecastBody>, ServeError> {
    if series.is_empty() {
        return Ok(Vec::new());
    }
    let refs: Vec<&Series> = series.iter().collect();
    let forecasts = model.forecast_any(&refs, horizon.get(), levels)?;
    if forecasts.len() != series.len() {
        return Err(ServeError::Internal(format!(
            "model returned {} forecasts for {} series",
            forecasts.len(),
            series.len()
        )));
    }
    Ok(series
        .iter()
        .zip(forecasts)
        .map(|(s, (f, version))| {
            // A series at another frequency than the model's was answered by its own baseline.
            let accuracy = if version == model.manifest.version {
                model.manifest.metrics.clone()
            } else {
                serde_json::json!({ "note": format!("{} data: built-in seasonal-naive baseline calibrated on this keyword's own history; publish a {} model with kwi-train for better accuracy", s.freq, s.freq) })
            };
            body_of(version, accuracy, s, &f, horizon.get())
        })
        .collect())
}

fn body_of(
    model_version: String,
    model_accuracy: serde_json::Value,
    series: &Series,
    f: &kwi_models::Forecast,
    horizon: usize,
) -> ForecastBody {
    let last = series.period(series.values.len() - 1);
    let forecast = (0..horizon)
        .map(|k| Step {
            step: k + 1,
            period_start: series.freq.advance(last, k as i64 + 1),
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
        model_version,
        data_as_of: last,
        freq: series.freq,
        horizon,
        model_accuracy,
        input_gaps: series.gaps,
        forecast,
    }
}

/// `body` as JSON bytes, written into a buffer sized so it never reallocates (served bodies take
/// about 70 bytes per step plus 60 per interval and step; a model's accuracy record usually under
/// 1 KiB).
pub fn encode(body: &ForecastBody) -> Result<Bytes, ServeError> {
    let levels = body.forecast.first().map_or(0, |s| s.intervals.len());
    let hint =
        1536 + body.keyword.len() + body.model_version.len() + body.horizon * (80 + 64 * levels);
    let mut json = Vec::with_capacity(hint);
    serde_json::to_writer(&mut json, body)
        .map_err(|e| ServeError::Internal(format!("cannot encode a forecast: {e}")))?;
    Ok(Bytes::from(json))
}

/// The prediction row for a served forecast of a stored keyword (`None` for an ad-hoc series).
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
