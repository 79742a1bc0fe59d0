//! The HTTP layer: the router, its handlers and its one error type. Handlers talk to the store and
//! cache through [`crate::app::AppState`]; they never touch tensors or SQL.

mod dashboard;
mod error;
mod export;
mod extract;
mod forecast;
mod insights;
mod keywords;
mod openapi;
mod telemetry;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use error::ApiError;
pub use extract::MAX_BODY_BYTES;
pub use forecast::MAX_BATCH;
pub use openapi::ApiDoc;
pub use telemetry::install_metrics;

use crate::app::AppState;

/// Builds the service's router (tests call it directly with `tower::ServiceExt::oneshot`).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(dashboard::index))
        .route("/assets/{name}", get(dashboard::asset))
        .route("/healthz", get(keywords::healthz))
        .route("/readyz", get(keywords::readyz))
        .route("/metrics", get(telemetry::metrics))
        .route("/v1/keywords/search", get(keywords::search))
        // Same capture name as the route below (the router requires it); it holds the keyword here.
        .route("/v1/keywords/{platform}/markets", get(keywords::markets))
        .route("/v1/keywords/{platform}/{keyword}", get(keywords::keyword))
        .route(
            "/v1/keywords/{platform}/{keyword}/forecast",
            get(forecast::forecast),
        )
        .route("/v1/forecasts", post(forecast::batch))
        .route("/v1/models", get(forecast::models))
        .route("/v1/models/{version}/activate", post(forecast::activate))
        .route("/v1/export/observations", get(export::observations))
        .route("/v1/export/predictions", get(export::predictions))
        .route("/v1/trends", get(insights::trends))
        .merge(openapi::routes())
        .fallback(error::not_found)
        // After every route: it applies to the method routers registered so far.
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(telemetry::track))
        .with_state(state)
}
