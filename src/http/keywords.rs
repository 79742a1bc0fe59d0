//! Health, readiness and keyword lookups.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kwi_features::{Keyword, Platform};
use serde::Serialize;
use serde_json::json;

use super::ApiError;
use crate::app::AppState;
use kwi_store::{HistoryPoint, Snapshot};

/// `GET /healthz`: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is up", body = Object, example = json!({"status": "ok"}))))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the store answers, the cache answers, and which model is loaded (the service still answers with a failed
/// cache, so a cache failure is reported as `degraded` with 200; a failed store is 503).
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "Store up; `status` is `ready`, or `degraded` when the cache failed (the service still answers)", body = Object),
    (status = 503, description = "The store is unreachable", body = Object)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let store = state.store.ping().await;
    let cache = state.cache.ping().await;
    let forecaster = state.forecaster.status();
    let status = match (&store, &cache) {
        (Err(_), _) => "unavailable",
        (Ok(()), Err(_)) => "degraded",
        (Ok(()), Ok(())) => "ready",
    };
    let code = if store.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(json!({
            "status": status,
            "store": { "backend": state.store.backend(), "ok": store.is_ok(),
                       "error": store.err().map(|e| e.to_string()) },
            "cache": { "kind": state.cache.kind(), "ok": cache.is_ok(), "error": cache.err(),
                       "errors_since_start": state.cache.error_count(),
                       "in_process": state.cache.local_status() },
            "model": { "version": forecaster.model_version, "members": forecaster.members },
            "forecaster": { "in_flight": forecaster.in_flight, "persist_backlog": forecaster.persist_backlog,
                            "no_volume_known": forecaster.no_volume_known },
        })),
    )
}

/// An optional `platform` query parameter: absent or blank means every platform; anything else must
/// name a platform (400 naming the field otherwise).
pub fn optional_platform(raw: Option<&str>) -> Result<Option<Platform>, ApiError> {
    raw.filter(|p| !p.trim().is_empty())
        .map(|p| p.parse::<Platform>())
        .transpose()
        .map_err(|e| ApiError::BadRequest {
            field: "platform",
            message: e.to_string(),
        })
}

/// Parses the `{platform}` and `{keyword}` path segments.
pub fn parse_key(platform: &str, keyword: &str) -> Result<(Platform, Keyword), ApiError> {
    let platform = platform
        .parse::<Platform>()
        .map_err(|e| ApiError::BadRequest {
            field: "platform",
            message: e.to_string(),
        })?;
    let keyword = Keyword::parse(keyword).map_err(|e| ApiError::BadRequest {
        field: "keyword",
        message: e.to_string(),
    })?;
    Ok((platform, keyword))
}

/// Response of `GET /v1/keywords/{platform}/{keyword}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct KeywordResponse {
    /// Platform.
    #[schema(value_type = String, example = "google")]
    pub platform: Platform,
    /// Normalised keyword.
    #[schema(value_type = String, example = "coffee")]
    pub keyword: Keyword,
    /// Current snapshot.
    pub snapshot: Snapshot,
    /// Every stored observation, oldest first.
    pub history: Vec<HistoryPoint>,
    /// Competition score with per-factor contributions; null without listing data or before the
    /// insights job ran.
    pub competition: Option<super::insights::CompetitionBody>,
    /// Opportunity (forecast demand growth against competition); null before the insights job ran.
    pub opportunity: Option<super::insights::OpportunityBody>,
    /// Trend insights (direction, growth, seasonal peak, anomaly); null before the insights job ran.
    pub insights: Option<super::insights::InsightsBody>,
}

/// `GET /v1/keywords/{platform}/{keyword}`: snapshot and stored history.
#[utoipa::path(get, path = "/v1/keywords/{platform}/{keyword}", tag = "keywords",
    params(("platform" = String, Path, description = "amazon, etsy, ebay, google or benchmark"),
           ("keyword" = String, Path, description = "Keyword (1-200 characters; normalised: NFKC, lower case, single spaces)")),
    responses((status = 200, body = KeywordResponse),
              (status = 400, description = "Unknown platform or bad keyword", body = crate::http::error::ErrorResponse),
              (status = 404, description = "No data for the keyword", body = crate::http::error::ErrorResponse)))]
pub async fn keyword(
    State(state): State<AppState>,
    Path((platform, keyword)): Path<(String, String)>,
) -> Result<Json<KeywordResponse>, ApiError> {
    let (platform, keyword) = parse_key(&platform, &keyword)?;
    let snapshot = state
        .store
        .snapshot(platform, &keyword)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!("no data for keyword `{keyword}` on {platform}"))
        })?;
    let history = state.store.history(platform, &keyword).await?;
    let extra = super::insights::keyword_insights(&state, platform, &keyword).await?;
    Ok(Json(KeywordResponse {
        platform,
        keyword,
        snapshot,
        history,
        competition: extra.competition,
        opportunity: extra.opportunity,
        insights: extra.insights,
    }))
}

/// Query of `GET /v1/keywords/search`.
#[derive(Debug, serde::Deserialize)]
pub struct SearchQuery {
    q: Option<String>,
    platform: Option<String>,
    limit: Option<String>,
}

/// `GET /v1/keywords/search?q=tar&platform=etsy&limit=10`: prefix matches first, then fuzzy ones.
#[utoipa::path(get, path = "/v1/keywords/search", tag = "keywords",
    params(("q" = String, Query, description = "Query (prefix first, then fuzzy: trigram similarity on PostgreSQL, substring on SQLite)"),
           ("platform" = Option<String>, Query, description = "Only this platform"),
           ("limit" = Option<i64>, Query, description = "1..=100, default 10")),
    responses((status = 200, description = "`{query, results: [SearchHit]}`", body = Object),
              (status = 400, body = crate::http::error::ErrorResponse)))]
pub async fn search(
    State(state): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<SearchQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let raw = q.q.unwrap_or_default();
    let query = Keyword::parse(&raw).map_err(|e| ApiError::BadRequest {
        field: "q",
        message: e.to_string(),
    })?;
    let platform = optional_platform(q.platform.as_deref())?;
    let limit = match q.limit.as_deref() {
        None => 10,
        Some(l) => l
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| ApiError::BadRequest {
                field: "limit",
                message: format!("`{l}` is not a whole number in 1..=100"),
            })?,
    };
    let hits = state.store.search(query.as_str(), platform, limit).await?;
    Ok(Json(json!({ "query": query, "results": hits })))
}

/// `GET /v1/keywords/{keyword}/markets`: the same keyword on every platform that has it. (A keyword
/// literally named "markets" is reached through the forecast and history routes.)
#[utoipa::path(get, path = "/v1/keywords/{keyword}/markets", tag = "keywords",
    params(("keyword" = String, Path, description = "Keyword")),
    responses((status = 200, description = "`{keyword, markets: [{platform, snapshot}]}`", body = Object),
              (status = 404, body = crate::http::error::ErrorResponse)))]
pub async fn markets(
    State(state): State<AppState>,
    Path(keyword): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let keyword = Keyword::parse(&keyword).map_err(|e| ApiError::BadRequest {
        field: "keyword",
        message: e.to_string(),
    })?;
    let markets = state.store.markets(&keyword).await?;
    if markets.is_empty() {
        return Err(ApiError::NotFound(format!(
            "no platform has data for keyword `{keyword}`"
        )));
    }
    let list: Vec<serde_json::Value> = markets
        .into_iter()
        .map(|(platform, snapshot)| json!({ "platform": platform, "snapshot": snapshot }))
        .collect();
    Ok(Json(json!({ "keyword": keyword, "markets": list })))
}
