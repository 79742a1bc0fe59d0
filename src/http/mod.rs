//! The HTTP layer: the router, its handlers and its one error type. Handlers talk to the store and
//! cache through [`crate::app::AppState`]; they never touch tensors or SQL.

mod access;
mod accounts;
mod collector;
mod dashboard;
pub mod edge;
mod error;
mod export;
mod extract;
mod forecast;
mod insights;
mod keywords;
mod openapi;
mod telemetry;
mod timegpt;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, patch, post};

pub use access::{Access, Routes, route_table};
pub use edge::Edge;
pub use error::ApiError;
pub use extract::MAX_BODY_BYTES;
pub use forecast::MAX_BATCH;
pub use openapi::ApiDoc;
pub use telemetry::install_metrics;

use crate::app::AppState;

/// The API's routes with who may call each (the dashboard, health, metrics and data routes; the
/// description routes are merged in [`router`]). One list: [`access::route_table`] reads it too.
pub(crate) fn api_routes() -> Routes {
    use kwi_store::Role::{Admin, Analyst, Customer};
    let customer = Access::Role(Customer);
    Routes::new()
        .add("/", Access::Public, get(dashboard::index))
        .add("/assets/{name}", Access::Public, get(dashboard::asset))
        .add("/healthz", Access::Public, get(keywords::healthz))
        .add("/readyz", Access::Public, get(keywords::readyz))
        .add("/metrics", Access::Metrics, get(telemetry::metrics))
        .add("/v1/auth/login", Access::Public, post(accounts::login))
        .add("/v1/auth/refresh", Access::Public, post(accounts::refresh))
        .add("/v1/auth/logout", Access::Public, post(accounts::logout))
        .add(
            "/v1/auth/providers",
            Access::Public,
            get(accounts::providers),
        )
        .add(
            "/v1/auth/oidc/login",
            Access::Public,
            get(accounts::oidc_login),
        )
        .add(
            "/v1/auth/oidc/callback",
            Access::Public,
            get(accounts::oidc_callback),
        )
        .add("/v1/me", customer, get(accounts::me))
        .add("/v1/me/password", customer, post(accounts::change_password))
        .add("/v1/me/usage", customer, get(accounts::usage))
        .add(
            "/v1/me/history",
            customer,
            get(accounts::history).delete(accounts::delete_history),
        )
        .add(
            "/v1/me/history/{id}",
            customer,
            delete(accounts::delete_history_row),
        )
        .add(
            "/v1/me/api-keys",
            customer,
            get(accounts::api_keys).post(accounts::create_key),
        )
        .add(
            "/v1/me/api-keys/{id}",
            customer,
            delete(accounts::revoke_key),
        )
        .add(
            "/v1/me/api-keys/{id}/rotate",
            customer,
            post(accounts::rotate_key),
        )
        .add("/v1/keywords/search", customer, get(keywords::search))
        // Same capture name as the route below (the router requires it); it holds the keyword here.
        .add(
            "/v1/keywords/{platform}/markets",
            customer,
            get(keywords::markets),
        )
        .add(
            "/v1/keywords/{platform}/{keyword}",
            customer,
            get(keywords::keyword),
        )
        .add(
            "/v1/keywords/{platform}/{keyword}/forecast",
            customer,
            get(forecast::forecast),
        )
        .add("/v1/forecasts", customer, post(forecast::batch))
        .add("/v1/trends", customer, get(insights::trends))
        .add("/v1/models", Access::Role(Analyst), get(forecast::models))
        .add(
            "/v1/export/observations",
            Access::Role(Analyst),
            get(export::observations),
        )
        .add(
            "/v1/export/predictions",
            Access::Role(Analyst),
            get(export::predictions),
        )
        .add(
            "/v1/analytics/searches",
            Access::Role(Analyst),
            get(accounts::searches),
        )
        .add(
            "/v1/models/{version}/activate",
            Access::Role(Admin),
            post(forecast::activate),
        )
        .add(
            "/v1/admin/users",
            Access::Role(Admin),
            get(accounts::users).post(accounts::create_user),
        )
        .add(
            "/v1/admin/users/{id}",
            Access::Role(Admin),
            patch(accounts::update_user),
        )
        .add("/v1/admin/plans", Access::Role(Admin), get(accounts::plans))
        .add(
            "/v1/admin/plans/{name}",
            Access::Role(Admin),
            patch(accounts::update_plan),
        )
        .add("/v1/admin/audit", Access::Role(Admin), get(accounts::audit))
        .add(
            "/v1/watchlist",
            customer,
            get(collector::watchlist).post(collector::add_watch),
        )
        .add(
            "/v1/watchlist/{id}",
            customer,
            delete(collector::remove_watch),
        )
        .add(
            "/v1/collector/status",
            Access::Role(Admin),
            get(collector::status),
        )
        // TimeGPT-compatible (the nixtla SDK's paths): bodies may be zstd-compressed and larger.
        .add("/model_params", customer, get(timegpt::model_params))
        .add(
            "/v2/forecast",
            customer,
            timegpt_route(post(timegpt::forecast)),
        )
        .add(
            "/v2/cross_validation",
            customer,
            timegpt_route(post(timegpt::cross_validation)),
        )
}

/// A TimeGPT route: zstd/gzip request bodies decoded, the body limit applying to the decoded size.
fn timegpt_route(
    m: axum::routing::MethodRouter<AppState>,
) -> axum::routing::MethodRouter<AppState> {
    use std::convert::Infallible;
    m.layer::<_, Infallible>(DefaultBodyLimit::max(timegpt::MAX_TIMEGPT_BODY))
        .layer::<_, Infallible>(tower_http::decompression::RequestDecompressionLayer::new())
}

/// Builds the service's router with the default edge settings (tests call it directly with
/// `tower::ServiceExt::oneshot`).
pub fn router(state: AppState) -> Router {
    router_with(state, &Edge::default())
}

/// Builds the service's router behind `edge` (security headers, CORS, body timeout).
pub fn router_with(state: AppState, edge: &Edge) -> Router {
    let routes = api_routes()
        .finish(&state)
        .merge(openapi::routes())
        .fallback(error::not_found)
        // After every route: it applies to the method routers registered so far.
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(telemetry::track))
        .with_state(state);
    edge.wrap(routes)
}
