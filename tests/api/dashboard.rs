//! The dashboard's page and assets through the router: served from the binary, self-contained (no
//! other host), with the content types a browser needs. (The page's behaviour is tested in a real
//! browser by `.ci/e2e`.)

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use kwi::app::AppState;
use kwi_store::{SqliteStore, Store};
use tower::ServiceExt;

use crate::helpers::in_process_state;

/// `(status, content type, cache control, body)` of a GET.
async fn get(state: &AppState, uri: &str) -> (StatusCode, String, String, String) {
    let res = kwi::http::router(state.clone())
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let header_of = |name| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let (status, ctype, cache) = (
        res.status(),
        header_of(header::CONTENT_TYPE),
        header_of(header::CACHE_CONTROL),
    );
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        ctype,
        cache,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

async fn state() -> (AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(dir.path().join("kwi.db").to_str().unwrap())
            .await
            .unwrap(),
    );
    store.migrate().await.unwrap();
    let (state, _writer) = in_process_state(&store).await;
    (state, dir)
}

/// Every `http://` or `https://` URL in `text` whose host is not local.
fn foreign_urls(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for scheme in ["http://", "https://"] {
        for (i, _) in text.match_indices(scheme) {
            let rest = &text[i + scheme.len()..];
            let host: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || ".-:".contains(*c))
                .collect();
            if !host.is_empty() && !host.starts_with("127.0.0.1") && !host.starts_with("localhost")
            {
                found.push(format!("{scheme}{host}"));
            }
        }
    }
    found
}

#[tokio::test]
async fn index_is_html_that_loads_only_its_own_assets() {
    let (state, _dir) = state().await;
    let (status, ctype, cache, html) = get(&state, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ctype, "text/html; charset=utf-8");
    assert!(!cache.is_empty(), "no Cache-Control on /");
    for asset in [
        "/assets/app.js",
        "/assets/style.css",
        "/assets/uPlot.iife.min.js",
        "/assets/uPlot.min.css",
    ] {
        assert!(
            html.contains(&format!("\"{asset}\"")),
            "page does not load {asset}"
        );
    }
    assert_eq!(
        foreign_urls(&html),
        Vec::<String>::new(),
        "page names another host"
    );
}

#[tokio::test]
async fn assets_are_served_with_their_types_and_unknown_ones_are_404() {
    let (state, _dir) = state().await;
    for (uri, ctype, marker) in [
        (
            "/assets/app.js",
            "text/javascript; charset=utf-8",
            "/v1/keywords/",
        ),
        // The real library (build.rs copies it from web/node_modules; CI runs npm ci first).
        (
            "/assets/uPlot.iife.min.js",
            "text/javascript; charset=utf-8",
            "uPlot",
        ),
        ("/assets/style.css", "text/css; charset=utf-8", "@media"),
        ("/assets/uPlot.min.css", "text/css; charset=utf-8", ".uplot"),
    ] {
        let (status, got, cache, body) = get(&state, uri).await;
        assert_eq!((status, got.as_str()), (StatusCode::OK, ctype), "{uri}");
        assert!(cache.contains("max-age"), "{uri}: Cache-Control `{cache}`");
        assert!(body.contains(marker), "{uri} lacks `{marker}`");
        assert!(
            !body.contains("KWI_UPLOT_MISSING") || uri == "/assets/app.js",
            "{uri}: the stand-in was embedded instead of uPlot (run `npm ci` in web/)"
        );
    }
    let (_, _, _, app) = get(&state, "/assets/app.js").await;
    assert_eq!(
        foreign_urls(&app),
        Vec::<String>::new(),
        "app.js names another host"
    );

    for uri in ["/assets/nope.js", "/assets/..%2FCargo.toml", "/assets/"] {
        let (status, ctype, _, body) = get(&state, uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert!(ctype.starts_with("application/json"), "{uri}: {ctype}");
        assert!(body.contains("not_found"), "{uri}: {body}");
    }
}
