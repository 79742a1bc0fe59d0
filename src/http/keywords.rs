//! Health, readiness and keyword lookups.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use kwi_features::{Keyword, Platform};
use serde::Serialize;

use super::ApiError;
use super::extract::{Path, Query};
use super::openapi::{KeywordText, PlatformName};
use crate::app::AppState;
use crate::auth::Principal;
use kwi_store::{HistoryPoint, SearchHit, Snapshot};

/// Body of `GET /healthz`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(value_type = String, example = "ok")]
    status: &'static str,
}

/// `GET /healthz`: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is up", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Body of `GET /readyz`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready`; `degraded` when the cache failed (the service still answers); `unavailable` when
    /// the store failed (status 503).
    #[schema(value_type = ReadinessStatus)]
    status: &'static str,
    /// The store.
    store: StoreStatus,
    /// The cache.
    cache: CacheStatus,
    /// The model being served.
    model: ModelStatus,
    /// The forecasting service's queues.
    forecaster: ForecasterStatus,
}

// Documentation type for `Readiness::status`.
/// The three answers of `/readyz`.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum ReadinessStatus {
    /// Store and cache answer.
    Ready,
    /// The store answers, the cache does not.
    Degraded,
    /// The store does not answer.
    Unavailable,
}

/// The store's part of `/readyz`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StoreStatus {
    /// `postgres` or `sqlite`.
    #[schema(value_type = String, pattern = "^(postgres|sqlite)$", example = "sqlite")]
    backend: kwi_store::Backend,
    /// Whether it answered.
    ok: bool,
    /// Why not.
    error: Option<String>,
}

/// The cache's part of `/readyz`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CacheStatus {
    /// `redis` or `inprocess`.
    #[schema(value_type = String, pattern = "^(redis|inprocess)$", example = "inprocess")]
    kind: crate::cache::CacheKind,
    /// Whether it answered.
    ok: bool,
    /// Why not.
    error: Option<String>,
    /// Cache operations that failed since start (each became a miss).
    errors_since_start: u64,
    /// The in-process cache (the whole cache without Redis, the near cache with it).
    #[schema(value_type = InProcessCache)]
    in_process: serde_json::Value,
}

// Documentation type for what `Cache::local_status` builds.
/// The in-process cache's part of `/readyz`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct InProcessCache {
    /// `cache` (no Redis), `near cache in front of Redis`, or `off`.
    #[schema(pattern = "^(cache|near cache in front of Redis|off)$")]
    role: String,
    /// Its bound in bytes.
    max_bytes: u64,
    /// Bytes held now.
    bytes: u64,
    /// Entries held now.
    entries: u64,
}

/// The model's part of `/readyz`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ModelStatus {
    /// Version being served.
    version: String,
    /// Its ensemble's members (`naive`, `snaive`, `naive2`, `ets`, `mlp`, `linear`).
    #[schema(value_type = Vec<String>)]
    members: Vec<kwi_predict::Member>,
}

/// The forecasting service's part of `/readyz`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ForecasterStatus {
    /// Keys being computed now (single flight).
    in_flight: usize,
    /// Forecasts waiting in the prediction writer's queue.
    persist_backlog: usize,
    /// Keywords remembered as having no search volume at their current data version.
    no_volume_known: u64,
}

/// `GET /readyz`: the store answers, the cache answers, and which model is loaded (the service still answers with a failed
/// cache, so a cache failure is reported as `degraded` with 200; a failed store is 503).
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "Store up; `status` is `ready`, or `degraded` when the cache failed (the service still answers)", body = Readiness),
    (status = 503, description = "The store is unreachable (`status` is `unavailable`)", body = Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
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
        Json(Readiness {
            status,
            store: StoreStatus {
                backend: state.store.backend(),
                ok: store.is_ok(),
                error: store.err().map(|e| e.to_string()),
            },
            cache: CacheStatus {
                kind: state.cache.kind(),
                ok: cache.is_ok(),
                error: cache.err(),
                errors_since_start: state.cache.error_count(),
                in_process: state.cache.local_status(),
            },
            model: ModelStatus {
                version: forecaster.model_version,
                members: forecaster.members,
            },
            forecaster: ForecasterStatus {
                in_flight: forecaster.in_flight,
                persist_backlog: forecaster.persist_backlog,
                no_volume_known: forecaster.no_volume_known,
            },
        }),
    )
}

/// An optional `platform` query parameter: absent or empty means every platform; anything else
/// must name a platform (400 naming the field otherwise).
pub fn optional_platform(raw: Option<&str>) -> Result<Option<Platform>, ApiError> {
    raw.filter(|p| !p.is_empty())
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
    #[schema(value_type = PlatformName, example = "google")]
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
    params(("platform" = PlatformName, Path),
           ("keyword" = KeywordText, Path)),
    responses((status = 200, body = KeywordResponse),
              (status = 400, description = "Unknown platform or bad keyword", body = crate::http::error::ErrorResponse),
              (status = 404, description = "No data for the keyword", body = crate::http::error::ErrorResponse),
              (status = 500, description = "The store failed", body = crate::http::error::ErrorResponse)))]
pub async fn keyword(
    State(state): State<AppState>,
    p: Principal,
    Path((platform, keyword)): Path<(String, String)>,
) -> Result<Json<KeywordResponse>, ApiError> {
    let (platform, keyword) = parse_key(&platform, &keyword)?;
    state.auth.charge(&p, 1).await?;
    let snapshot = state
        .store
        .snapshot(platform, &keyword)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!("no data for keyword `{keyword}` on {platform}"))
        })?;
    let history = state.store.history(platform, &keyword).await?;
    let extra = super::insights::keyword_insights(&state, platform, &keyword).await?;
    state
        .auth
        .record(&p, platform.as_str(), keyword.as_str(), || {
            serde_json::json!({
                "route": "keyword",
                "search_volume": snapshot.search_volume,
                "competition": snapshot.competition,
            })
        });
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

/// Default `limit` of `GET /v1/keywords/search`.
pub const SEARCH_DEFAULT_LIMIT: i64 = 10;
/// Largest `limit` of `GET /v1/keywords/search`.
pub const SEARCH_MAX_LIMIT: i64 = 100;

/// Query of `GET /v1/keywords/search` (strings, so a bad value is a 400 naming the field).
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Query: keywords starting with it first, then fuzzy matches (trigram similarity on
    /// PostgreSQL, substring on SQLite).
    #[param(value_type = KeywordText, required = true)]
    q: Option<String>,
    /// Only this platform (empty: every platform).
    #[param(value_type = Option<PlatformName>)]
    platform: Option<String>,
    /// Most results.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100, default = 10)]
    limit: Option<String>,
}

/// Body of `GET /v1/keywords/search`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SearchResponse {
    /// The query, normalised.
    #[schema(value_type = String, example = "tar")]
    query: Keyword,
    /// Matches: prefix matches first.
    results: Vec<SearchHit>,
}

/// `GET /v1/keywords/search?q=tar&platform=etsy&limit=10`: prefix matches first, then fuzzy ones.
#[utoipa::path(get, path = "/v1/keywords/search", tag = "keywords",
    params(SearchQuery),
    responses((status = 200, body = SearchResponse),
              (status = 400, description = "Bad query, platform or limit", body = crate::http::error::ErrorResponse),
              (status = 500, description = "The store failed", body = crate::http::error::ErrorResponse)))]
pub async fn search(
    State(state): State<AppState>,
    p: Principal,
    Query(q): Query<SearchQuery>,
) -> Result<Json<SearchResponse>, ApiError> {
    let raw = q.q.unwrap_or_default();
    let query = Keyword::parse(&raw).map_err(|e| ApiError::BadRequest {
        field: "q",
        message: e.to_string(),
    })?;
    let platform = optional_platform(q.platform.as_deref())?;
    let limit = match q.limit.as_deref() {
        None => SEARCH_DEFAULT_LIMIT,
        Some(l) => l
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=SEARCH_MAX_LIMIT).contains(n))
            .ok_or_else(|| ApiError::BadRequest {
                field: "limit",
                message: format!("`{l}` is not a whole number in 1..={SEARCH_MAX_LIMIT}"),
            })?,
    };
    state.auth.charge(&p, 1).await?;
    let results = state.store.search(query.as_str(), platform, limit).await?;
    // History rows name one platform: a search across every platform is not one of them.
    if let Some(platform) = platform {
        state.auth.record(
            &p,
            platform.as_str(),
            query.as_str(),
            || serde_json::json!({ "route": "search", "results": results.len() }),
        );
    }
    Ok(Json(SearchResponse { query, results }))
}

/// Body of `GET /v1/keywords/{keyword}/markets`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MarketsResponse {
    /// The keyword, normalised.
    #[schema(value_type = String, example = "coffee")]
    keyword: Keyword,
    /// Every platform that has it, in platform order.
    markets: Vec<Market>,
}

/// One platform's snapshot of a keyword.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Market {
    /// Platform.
    #[schema(value_type = PlatformName)]
    platform: String,
    /// Its snapshot there.
    snapshot: Snapshot,
}

/// `GET /v1/keywords/{keyword}/markets`: the same keyword on every platform that has it. (A keyword
/// literally named "markets" is reached through the forecast and history routes.)
#[utoipa::path(get, path = "/v1/keywords/{keyword}/markets", tag = "keywords",
    params(("keyword" = KeywordText, Path)),
    responses((status = 200, body = MarketsResponse),
              (status = 400, description = "Bad keyword", body = crate::http::error::ErrorResponse),
              (status = 404, description = "No platform has the keyword", body = crate::http::error::ErrorResponse),
              (status = 500, description = "The store failed", body = crate::http::error::ErrorResponse)))]
pub async fn markets(
    State(state): State<AppState>,
    p: Principal,
    Path(keyword): Path<String>,
) -> Result<Json<MarketsResponse>, ApiError> {
    let keyword = Keyword::parse(&keyword).map_err(|e| ApiError::BadRequest {
        field: "keyword",
        message: e.to_string(),
    })?;
    state.auth.charge(&p, 1).await?;
    let markets = state.store.markets(&keyword).await?;
    if markets.is_empty() {
        return Err(ApiError::NotFound(format!(
            "no platform has data for keyword `{keyword}`"
        )));
    }
    let markets = markets
        .into_iter()
        .map(|(platform, snapshot)| Market { platform, snapshot })
        .collect();
    Ok(Json(MarketsResponse { keyword, markets }))
}
