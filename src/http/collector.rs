//! The collectors over HTTP: the caller's watch list (`/v1/watchlist`, collected on its cadence by
//! the scheduler of `kwi worker` / `kwi serve --worker`) and the queue's status for admins.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use kwi_features::Keyword;
use kwi_store::{Cadence, DeadLetter, ReforecastStatus, Source, Watch};
use serde::{Deserialize, Serialize};

use super::ApiError;
use super::accounts::parse_id;
use super::error::ErrorResponse;
use super::extract::{self, Path};
use super::openapi::KeywordText;
use crate::app::AppState;
use crate::auth::Principal;
use crate::collect::SourceReport;

/// Most keywords one user may watch.
pub const MAX_WATCHES: usize = 10_000;

/// A collection cadence (UTC).
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CadenceName {
    /// Every day; observations are for the day.
    Daily,
    /// Every ISO week; observations are for its Monday.
    Weekly,
}

impl From<CadenceName> for Cadence {
    fn from(c: CadenceName) -> Self {
        match c {
            CadenceName::Daily => Cadence::Daily,
            CadenceName::Weekly => Cadence::Weekly,
        }
    }
}

/// Reads a source by its name (the store's `FromStr`, whose error lists the names).
fn source<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Source, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

/// Body of `POST /v1/watchlist`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WatchRequest {
    /// Where to collect it from.
    #[schema(value_type = Source)]
    #[serde(deserialize_with = "source")]
    source: Source,
    /// The keyword.
    #[schema(value_type = KeywordText)]
    keyword: String,
    /// How often (default `weekly`).
    #[serde(default)]
    cadence: Option<CadenceName>,
}

/// `GET /v1/watchlist`: the caller's watched keywords, by source then keyword.
#[utoipa::path(get, path = "/v1/watchlist", tag = "collectors",
    responses((status = 200, body = Vec<Watch>)))]
pub async fn watchlist(
    State(state): State<AppState>,
    p: Principal,
) -> Result<Json<Vec<Watch>>, ApiError> {
    Ok(Json(state.store.watches(Some(p.user_id)).await?))
}

/// Answer of `POST /v1/watchlist`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WatchAnswer {
    #[serde(flatten)]
    watch: Watch,
    /// `true`: newly watched; `false`: it was watched already and took the cadence given.
    created: bool,
}

/// `POST /v1/watchlist`: watch a keyword, or give a watched one a new cadence (`created` says
/// which). The scheduler queues its first collection within a minute.
#[utoipa::path(post, path = "/v1/watchlist", tag = "collectors",
    request_body = WatchRequest,
    responses((status = 200, description = "Watched", body = WatchAnswer),
              (status = 400, description = "Bad keyword or unreadable body", body = ErrorResponse),
              (status = 403, description = "Authentication is off: watch lists belong to users", body = ErrorResponse),
              (status = 409, description = "The caller watches the most keywords allowed", body = ErrorResponse),
              (status = 413, description = "Body too large", body = ErrorResponse),
              (status = 415, description = "Not JSON", body = ErrorResponse)))]
pub async fn add_watch(
    State(state): State<AppState>,
    p: Principal,
    extract::Json(req): extract::Json<WatchRequest>,
) -> Result<Json<WatchAnswer>, ApiError> {
    if p.anonymous {
        return Err(ApiError::Forbidden(
            "authentication is off: a watch list belongs to a user (start kwi serve with --auth on)"
                .into(),
        ));
    }
    let keyword = Keyword::parse(&req.keyword).map_err(|e| ApiError::BadRequest {
        field: "keyword",
        message: e.to_string(),
    })?;
    let source = req.source;
    let cadence = req.cadence.map(Cadence::from).unwrap_or(Cadence::Weekly);
    // The list is read only at the cap (a keyword already watched may still change cadence).
    let count = state.store.watch_count(p.user_id).await?;
    if count >= MAX_WATCHES as i64 {
        let known = state
            .store
            .watches(Some(p.user_id))
            .await?
            .iter()
            .any(|w| w.source == source && w.keyword == keyword);
        if !known {
            return Err(ApiError::Conflict(format!(
                "you watch {count} keywords, the most allowed; remove some first"
            )));
        }
    }
    let (watch, created) = state
        .store
        .watch(
            p.user_id,
            source,
            std::slice::from_ref(&keyword),
            cadence,
            Utc::now(),
        )
        .await?
        .pop()
        .expect("one watch per keyword given");
    Ok(Json(WatchAnswer { watch, created }))
}

/// `DELETE /v1/watchlist/{id}`: stop watching (collected observations stay).
#[utoipa::path(delete, path = "/v1/watchlist/{id}", tag = "collectors",
    params(("id" = uuid::Uuid, Path, description = "A watch's id")),
    responses((status = 204, description = "No longer watched"),
              (status = 400, description = "Not an id", body = ErrorResponse),
              (status = 404, description = "No such watch of the caller", body = ErrorResponse)))]
pub async fn remove_watch(
    State(state): State<AppState>,
    p: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id("id", &id)?;
    if state.store.unwatch(Some(p.user_id), id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no watch {id}")))
    }
}

/// Body of `GET /v1/collector/status`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CollectorStatus {
    /// Jobs queued or running: every source's and the re-forecast chunks.
    queue_depth: i64,
    /// Per source.
    sources: Vec<SourceReport>,
    /// Re-forecast chunks (`kwi-train reforecast`) of every run, by state.
    reforecast: ReforecastStatus,
    /// The latest jobs that failed for good, newest first (at most 20).
    dead_letters: Vec<DeadLetter>,
}

/// `GET /v1/collector/status`: the queue (depth, per source jobs by state, last success, last
/// error), today's requests against each source's daily limit, the re-forecast chunks and the
/// latest dead letters.
#[utoipa::path(get, path = "/v1/collector/status", tag = "collectors",
    responses((status = 200, body = CollectorStatus)))]
pub async fn status(State(state): State<AppState>) -> Result<Json<CollectorStatus>, ApiError> {
    let sources = crate::collect::report(state.store.as_ref(), &state.daily_limits).await?;
    let reforecast = state.store.reforecast_status(None).await?;
    Ok(Json(CollectorStatus {
        queue_depth: sources.iter().map(|s| s.queued + s.running).sum::<i64>()
            + reforecast.queued
            + reforecast.running,
        sources,
        reforecast,
        dead_letters: state.store.dead_letters(20).await?,
    }))
}
