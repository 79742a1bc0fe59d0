//! The dashboard's page and assets through the router: served from the binary, self-contained (no
//! other host), with the content types a browser needs. (The page's behaviour is tested in a real
//! browser by `.ci/e2e`.)

use axum::http::{StatusCode, header};

use crate::helpers::TestApp;

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
    let app = TestApp::sqlite().await;
    let res = app.get("/").await;
    let html = res.text();
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.content_type(), "text/html; charset=utf-8");
    assert!(
        !res.header(header::CACHE_CONTROL)
            .unwrap_or_default()
            .is_empty(),
        "no Cache-Control on /"
    );
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
    app.cleanup().await;
}

#[tokio::test]
async fn assets_are_served_with_their_types_and_unknown_ones_are_404() {
    let app = TestApp::sqlite().await;
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
        let res = app.get(uri).await;
        let (cache, body) = (
            res.header(header::CACHE_CONTROL).unwrap_or_default(),
            res.text(),
        );
        assert_eq!(
            (res.status, res.content_type()),
            (StatusCode::OK, ctype),
            "{uri}"
        );
        assert!(cache.contains("max-age"), "{uri}: Cache-Control `{cache}`");
        assert!(body.contains(marker), "{uri} lacks `{marker}`");
        assert!(
            !body.contains("KWI_UPLOT_MISSING") || uri == "/assets/app.js",
            "{uri}: the stand-in was embedded instead of uPlot (run `npm ci` in web/)"
        );
    }
    let app_js = app.get("/assets/app.js").await.text();
    assert_eq!(
        foreign_urls(&app_js),
        Vec::<String>::new(),
        "app.js names another host"
    );

    for uri in ["/assets/nope.js", "/assets/..%2FCargo.toml", "/assets/"] {
        let res = app.get(uri).await;
        let (ctype, body) = (res.content_type(), res.text());
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(ctype.starts_with("application/json"), "{uri}: {ctype}");
        assert!(body.contains("not_found"), "{uri}: {body}");
    }
    app.cleanup().await;
}
