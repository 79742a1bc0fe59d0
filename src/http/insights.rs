//! Trends and the insight fields of the keyword response, read from what the insights job stored
//! (`competition_scores`, `keyword_insights`; see [`kwi_predict::insights`]). Nothing is computed here.

use axum::Json;
use axum::extract::State;
use chrono::NaiveDate;
use kwi_features::{Keyword, Platform};
use serde::{Deserialize, Serialize};

use super::ApiError;
use super::error::ErrorResponse;
use super::extract::Query;
use super::openapi::PlatformName;
use crate::app::AppState;
use kwi_store::{CompetitionRow, InsightRow, TrendItem};

/// Default `limit` of `GET /v1/trends`.
pub const TRENDS_DEFAULT_LIMIT: i64 = 20;
/// Largest `limit` of `GET /v1/trends`.
pub const TRENDS_MAX_LIMIT: i64 = 100;

/// One factor's share of a competition score.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ContributionBody {
    /// Factor name, e.g. `listings_per_demand`.
    pub factor: String,
    /// Human label, e.g. "listings per search".
    pub label: String,
    /// Points (positive: harder); they sum to the score minus the model's baseline.
    pub points: f64,
}

/// Competition score of a keyword.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CompetitionBody {
    /// 0..=100 (percentile among the model's training keywords).
    pub score: f64,
    /// `low` (< 25), `medium` (< 50), `high` (< 75) or `very high`.
    #[schema(example = "medium")]
    pub band: String,
    /// Per factor, largest first.
    pub contributions: Vec<ContributionBody>,
    /// Competition model version (`builtin-composite-v1`: the documented fallback).
    pub model_version: String,
    /// Whether the model was trained on generated data.
    pub synthetic: bool,
}

/// Opportunity of a keyword.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OpportunityBody {
    /// 0..=100: forecast demand growth against competition.
    pub score: f64,
    /// One line saying why.
    pub explanation: String,
}

/// Seasonal peak within the next year.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PeakBody {
    /// Weeks from the last observed period.
    pub in_weeks: i64,
    /// Forecast volume at the peak.
    pub value: f64,
    /// First day of the peak period.
    pub date: NaiveDate,
}

/// The latest actual outside the 95 % band of a one-step forecast.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AnomalyBody {
    /// Period of the latest actual.
    pub date: NaiveDate,
    /// Latest actual.
    pub actual: f64,
    /// Lower 95 % bound.
    pub lower: f64,
    /// Upper 95 % bound.
    pub upper: f64,
}

/// Trend insights of a keyword.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InsightsBody {
    /// `rising` / `falling` only when the growth clears the 80 % interval; else `flat`.
    #[schema(example = "rising")]
    pub direction: String,
    /// Forecast growth over the horizon, percent.
    pub growth_pct: f64,
    /// Seasonal peak, if any.
    pub peak: Option<PeakBody>,
    /// Anomaly of the latest actual, if any.
    pub anomaly: Option<AnomalyBody>,
}

/// The optional fields of the keyword response.
pub struct KeywordInsights {
    /// Competition.
    pub competition: Option<CompetitionBody>,
    /// Opportunity.
    pub opportunity: Option<OpportunityBody>,
    /// Insights.
    pub insights: Option<InsightsBody>,
}

/// Reads a keyword's stored competition, opportunity and insights.
pub async fn keyword_insights(
    state: &AppState,
    platform: Platform,
    keyword: &Keyword,
) -> Result<KeywordInsights, ApiError> {
    let (comp, ins) = state.store.keyword_insight(platform, keyword).await?;
    Ok(KeywordInsights {
        competition: comp.map(competition_body).transpose()?,
        opportunity: ins.as_ref().and_then(|i| {
            Some(OpportunityBody {
                score: i.opportunity?,
                explanation: i.opportunity_explanation.clone().unwrap_or_default(),
            })
        }),
        insights: ins.map(insights_body).transpose()?,
    })
}

fn corrupt(what: &str, e: serde_json::Error) -> ApiError {
    ApiError::Internal(format!("stored {what} cannot be decoded: {e}").into())
}

fn competition_body(c: CompetitionRow) -> Result<CompetitionBody, ApiError> {
    Ok(CompetitionBody {
        score: c.score,
        band: c.band,
        contributions: serde_json::from_value(c.contributions)
            .map_err(|e| corrupt("contributions", e))?,
        model_version: c.model_version,
        synthetic: c.synthetic,
    })
}

fn insights_body(i: InsightRow) -> Result<InsightsBody, ApiError> {
    Ok(InsightsBody {
        direction: i.direction,
        growth_pct: i.growth_pct,
        peak: i
            .peak
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| corrupt("peak", e))?,
        anomaly: i
            .anomaly
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| corrupt("anomaly", e))?,
    })
}

/// Query of `GET /v1/trends` (strings, so a bad value is a 400 naming the field).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TrendsQuery {
    /// Only this platform (empty: every platform).
    #[param(value_type = Option<PlatformName>)]
    platform: Option<String>,
    /// `rising` (the default) or `falling`.
    #[param(value_type = Option<Direction>)]
    direction: Option<String>,
    /// Most movers.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100, default = 20)]
    limit: Option<String>,
}

// Documentation type; the handler reads the parameter.
/// Which movers.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum Direction {
    /// Growth that clears the 80 % prediction interval.
    Rising,
    /// Decline that clears it.
    Falling,
}

/// Response of `GET /v1/trends`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TrendsResponse {
    /// `rising` or `falling`.
    #[schema(value_type = Direction, example = "rising")]
    pub direction: String,
    /// Movers, largest first.
    pub items: Vec<TrendItem>,
}

/// `GET /v1/trends?platform=&direction=rising|falling&limit=`: the top predicted movers (growth
/// over the horizon that clears the 80 % prediction interval), as stored by the insights job.
#[utoipa::path(get, path = "/v1/trends", tag = "insights",
    params(TrendsQuery),
    responses((status = 200, body = TrendsResponse),
              (status = 400, description = "Bad platform, direction or limit", body = ErrorResponse),
              (status = 500, description = "The store failed", body = ErrorResponse)))]
pub async fn trends(
    State(state): State<AppState>,
    Query(q): Query<TrendsQuery>,
) -> Result<Json<TrendsResponse>, ApiError> {
    let platform = super::keywords::optional_platform(q.platform.as_deref())?;
    let direction = match q.direction.as_deref() {
        None | Some("") | Some("rising") => "rising",
        Some("falling") => "falling",
        Some(other) => {
            return Err(ApiError::BadRequest {
                field: "direction",
                message: format!("`{other}` is neither `rising` nor `falling`"),
            });
        }
    };
    let limit = match q.limit.as_deref() {
        None => TRENDS_DEFAULT_LIMIT,
        Some(l) => l
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=TRENDS_MAX_LIMIT).contains(n))
            .ok_or_else(|| ApiError::BadRequest {
                field: "limit",
                message: format!("`{l}` is not a whole number in 1..={TRENDS_MAX_LIMIT}"),
            })?,
    };
    let items = state.store.trends(platform, direction, limit).await?;
    Ok(Json(TrendsResponse {
        direction: direction.into(),
        items,
    }))
}
