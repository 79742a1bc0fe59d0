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

/// `GET /readyz`: the store answers and the cache answers (the service still answers with a failed
/// cache, so a cache failure is reported as `degraded` with 200; a failed store is 503).
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let store = state.store.ping().await;
    let cache = state.cache.ping().await;
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
        })),
    )
}

/// Parses the `{platform}` and `{keyword}` path segments.
pub fn parse_key(platform: &str, keyword: &str) -> Result<(Platform, Keyword), ApiError> {
    let platform = platform.parse::<Platform>().map_err(|e| ApiError::BadRequest {
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
