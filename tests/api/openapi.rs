//! `/openapi.json` describes the routes the router really has, and `/docs` works offline.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};

use crate::helpers::{TestApp, TestResponse};

/// `method uri` with a JSON body (`{}` for POST, empty otherwise).
async fn call(app: &TestApp, method: &str, uri: &str) -> TestResponse {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(if method == "POST" { "{}" } else { "" }))
        .unwrap();
    app.send(req).await
}

#[tokio::test]
async fn every_documented_path_is_routed() {
    let app = TestApp::sqlite().await;
    app.load_sample().await;
    let res = app.get("/openapi.json").await;
    assert_eq!(res.status, StatusCode::OK);
    let ct = res.content_type();
    assert!(ct.starts_with("application/json"), "{ct}");
    let doc = res.json();
    let paths = doc["paths"].as_object().expect("paths");
    for required in [
        "/v1/keywords/{platform}/{keyword}/forecast",
        "/v1/forecasts",
        "/v1/keywords/search",
        "/v1/export/observations",
        "/metrics",
    ] {
        assert!(paths.contains_key(required), "{required} is not documented");
    }
    for (path, ops) in paths {
        let uri = path
            .replace("{platform}", "google")
            .replace("{keyword}", "coffee")
            .replace("{version}", "no-such-version");
        for method in ops.as_object().unwrap().keys() {
            let res = call(&app, &method.to_uppercase(), &uri).await;
            let text = res.text();
            assert!(
                !text.contains("no route for") && res.status != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is documented but not routed: {res}"
            );
        }
    }
    app.cleanup().await;
}

/// The docs page and its assets come from the binary: no external URL anywhere in the page.
#[tokio::test]
async fn the_docs_page_is_self_contained() {
    let app = TestApp::sqlite().await;
    let res = app.get("/docs/").await;
    assert_eq!(res.status, StatusCode::OK);
    let ct = res.content_type();
    assert!(ct.starts_with("text/html"), "{ct}");
    let html = res.text();
    assert!(
        !html.contains("https://") && !html.contains("http://"),
        "{html}"
    );
    let res = app.get("/docs/swagger-ui-bundle.js").await;
    assert_eq!(res.status, StatusCode::OK);
    let ct = res.content_type();
    assert!(ct.contains("javascript"), "{ct}");
    let res = app.get("/docs/swagger-initializer.js").await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.text().contains("/openapi.json"));
    app.cleanup().await;
}
