//! Health, readiness and keyword lookups.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kwi_features::{Keyword, Platform};
use serde::Serialize;
use serde_json::json;

use super::ApiError;
use crate::app::AppState;
use crate::store::{HistoryPoint, Snapshot};

/// `GET /healthz`: the process is up.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the store answers, the cache answers, and which model is loaded (the service still answers with a failed
/// cache, so a cache failure is reported as `degraded` with 200; a failed store is 503).
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let store = state.store.ping().await;
    let cache = state.cache.ping().await;
    let model = state.forecasting.model.current();
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
                       "errors_since_start": state.cache.error_count() },
            "model": { "version": model.manifest.version, "members": model.manifest.ensemble.members },
        })),
    )
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
#[derive(Serialize)]
pub struct KeywordResponse {
    /// Platform.
    pub platform: Platform,
    /// Normalised keyword.
    pub keyword: Keyword,
    /// Current snapshot.
    pub snapshot: Snapshot,
    /// Every stored observation, oldest first.
    pub history: Vec<HistoryPoint>,
}

/// `GET /v1/keywords/{platform}/{keyword}`: snapshot and stored history.
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
    Ok(Json(KeywordResponse {
        platform,
        keyword,
        snapshot,
        history,
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
pub async fn search(
    State(state): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<SearchQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let raw = q.q.unwrap_or_default();
    let query = Keyword::parse(&raw).map_err(|e| ApiError::BadRequest {
        field: "q",
        message: e.to_string(),
    })?;
    let platform = q
        .platform
        .filter(|p| !p.trim().is_empty())
        .map(|p| p.parse::<Platform>())
        .transpose()
        .map_err(|e| ApiError::BadRequest {
            field: "platform",
            message: e.to_string(),
        })?;
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
