//! The dashboard: one HTML page at `/` and its assets at `/assets/{name}`, all compiled into the
//! binary (the page from `web/`, uPlot from `OUT_DIR`, put there by `build.rs`), so it works
//! offline and from any working directory. The page only calls the public JSON API.

use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use super::extract::Path;

const INDEX_HTML: &str = include_str!("../../web/index.html");

/// `(name, content type, bytes)` of every asset.
const ASSETS: [(&str, &str, &[u8]); 4] = [
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../../web/style.css"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!(concat!(env!("OUT_DIR"), "/uPlot.iife.min.js")),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!(concat!(env!("OUT_DIR"), "/uPlot.min.css")),
    ),
];

/// Assets change only with the binary; a short max-age plus revalidation keeps an upgraded server
/// from serving a stale page without making every load hit the server twice.
const CACHE_CONTROL: &str = "public, max-age=300, must-revalidate";

/// `GET /`: the dashboard page.
pub async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX_HTML,
    )
        .into_response()
}

/// `GET /assets/{name}`: a script, stylesheet or the chart library.
pub async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    let (_, content_type, bytes) = ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or_else(|| ApiError::NotFound(format!("no dashboard asset `{name}`")))?;
    Ok((
        [
            (header::CONTENT_TYPE, *content_type),
            (header::CACHE_CONTROL, CACHE_CONTROL),
        ],
        *bytes,
    )
        .into_response())
}
