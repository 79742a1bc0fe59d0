//! `/openapi.json` describes the routes the router really has, and `/docs` works offline.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use kwi::app::AppState;

use crate::helpers::{Backends, in_process_state};

async fn call(state: &AppState, method: &str, uri: &str) -> (StatusCode, String, Vec<u8>) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(if method == "POST" { "{}" } else { "" }))
        .unwrap();
    crate::helpers::send(state, req).await
}

#[tokio::test]
async fn every_documented_path_is_routed_and_the_docs_page_is_self_contained() {
    let b = Backends::new().await;
    kwi::import::load_sample(b.sqlite.as_ref()).await.unwrap();
    let (state, _w) = in_process_state(&b.sqlite).await;
    let (s, ct, body) = call(&state, "GET", "/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    assert!(ct.starts_with("application/json"), "{ct}");
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
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
            let (s, _, body) = call(&state, &method.to_uppercase(), &uri).await;
            let text = String::from_utf8_lossy(&body);
            assert!(
                !text.contains("no route for") && s != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is documented but not routed: {s} {text}"
            );
        }
    }
    // The docs page and its assets come from the binary: no external URL anywhere in the page.
    let (s, ct, html) = call(&state, "GET", "/docs/").await;
    assert_eq!(s, StatusCode::OK);
    assert!(ct.starts_with("text/html"), "{ct}");
    let html = String::from_utf8_lossy(&html);
    assert!(
        !html.contains("https://") && !html.contains("http://"),
        "{html}"
    );
    let (s, ct, _) = call(&state, "GET", "/docs/swagger-ui-bundle.js").await;
    assert_eq!(s, StatusCode::OK);
    assert!(ct.contains("javascript"), "{ct}");
    let (s, _, init) = call(&state, "GET", "/docs/swagger-initializer.js").await;
    assert_eq!(s, StatusCode::OK);
    assert!(String::from_utf8_lossy(&init).contains("/openapi.json"));
    b.cleanup().await;
}
