//! The HTTP layer: the router, its handlers and its one error type. Handlers talk to the store and
//! cache through [`crate::app::AppState`]; they never touch tensors or SQL.

mod error;
mod keywords;

use axum::Router;
use axum::routing::get;

pub use error::ApiError;

use crate::app::AppState;

/// Builds the service's router (tests call it directly with `tower::ServiceExt::oneshot`).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(keywords::healthz))
        .route("/readyz", get(keywords::readyz))
        .route("/v1/keywords/{platform}/{keyword}", get(keywords::keyword))
        .fallback(error::not_found)
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
