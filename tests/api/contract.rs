//! The API contract at its edges: every rejection, whether the router, an extractor or a handler
//! makes it, answers in the API's JSON error shape `{"error": {"code", "field", "message"}}`, and
//! the OpenAPI description types every answer. (`.ci/schemathesis` checks the rest against a live
//! server.)

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use kwi::app::AppState;
use serde_json::Value;
use tower::ServiceExt;

use crate::helpers::{Backends, in_process_state};

/// What a rejection must look like.
struct Expect {
    status: StatusCode,
    code: &'static str,
    field: Option<&'static str>,
    /// The `Allow` header, for 405.
    allow: Option<&'static str>,
}

const fn bad(field: &'static str) -> Expect {
    Expect {
        status: StatusCode::BAD_REQUEST,
        code: "bad_request",
        field: Some(field),
        allow: None,
    }
}

/// Sends `req` through the router and checks the status, the JSON error body and `Allow`.
async fn check(state: &AppState, req: Request<Body>, want: Expect) {
    let what = format!("{} {}", req.method(), req.uri());
    let res = kwi::http::router(state.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let ct = res
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let allow = res
        .headers()
        .get(header::ALLOW)
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    assert_eq!(status, want.status, "{what}: {text}");
    assert_eq!(ct, "application/json", "{what}: {text}");
    let body: Value =
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{what}: {e}: {text}"));
    let error = body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("{what}: {body}"));
    assert_eq!(error["code"], want.code, "{what}: {body}");
    assert_eq!(
        error.get("field").and_then(Value::as_str),
        want.field,
        "{what}: {body}"
    );
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
    assert!(
        error
            .keys()
            .all(|k| ["code", "field", "message"].contains(&k.as_str())),
        "{what}: {body}"
    );
    assert_eq!(allow.as_deref(), want.allow, "{what}: Allow");
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn post(uri: &str, content_type: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, content_type)
        .body(body.into())
        .unwrap()
}

fn post_json(body: &str) -> Request<Body> {
    post("/v1/forecasts", "application/json", body.to_string())
}

#[tokio::test]
async fn every_rejection_is_a_json_error_naming_the_field() {
    let b = Backends::new().await;
    let (state, _w) = in_process_state(&b.sqlite).await;
    let forecast = "/v1/keywords/google/coffee/forecast";

    // Query strings axum could not deserialize.
    check(
        &state,
        get(&format!("{forecast}?horizon=1&horizon=2")),
        bad("horizon"),
    )
    .await;
    check(&state, get("/v1/trends?limit=5&limit=6"), bad("limit")).await;
    check(&state, get("/v1/keywords/search?q=a&q=b"), bad("q")).await;
    check(
        &state,
        get("/v1/export/observations?format=arrow&format=parquet"),
        bad("format"),
    )
    .await;
    // Path segments that are not UTF-8 once percent-decoded.
    check(
        &state,
        get("/v1/keywords/google/%FF/forecast"),
        bad("keyword"),
    )
    .await;
    check(&state, get("/v1/keywords/%C3%28/coffee"), bad("platform")).await;
    check(
        &state,
        post("/v1/models/%FF/activate", "application/json", ""),
        bad("version"),
    )
    .await;

    // JSON bodies: syntax, types, unknown and missing fields, each named by its path.
    check(&state, post_json(r#"{"keywords": ["#), bad("body")).await;
    check(
        &state,
        post_json(r#"{"horizon": 13} trailing"#),
        bad("body"),
    )
    .await;
    check(&state, post_json(r#"{"horizon": "13"}"#), bad("horizon")).await;
    check(&state, post_json(r#"{"nope": 1}"#), bad("nope")).await;
    check(
        &state,
        post_json(r#"{"keywords": [{"platform": "google"}]}"#),
        bad("keywords[0].keyword"),
    )
    .await;
    check(
        &state,
        post_json(r#"{"series": [{"id": "a", "values": [1, "x"]}]}"#),
        bad("series[0].values[1]"),
    )
    .await;
    // And what the handler refuses after reading the body.
    check(&state, post_json("{}"), bad("keywords")).await;
    // A field's own rule is checked as the body is read, before the batch-size rule.
    check(
        &state,
        post_json(r#"{"keywords": [], "series": [], "horizon": 0}"#),
        bad("horizon"),
    )
    .await;
    check(
        &state,
        post_json(r#"{"keywords": [], "series": [], "levels": [80, 100]}"#),
        bad("levels"),
    )
    .await;

    // Media type: missing or not JSON.
    let unsupported = Expect {
        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        code: "unsupported_media_type",
        field: Some("content-type"),
        allow: None,
    };
    check(
        &state,
        post("/v1/forecasts", "text/plain", "{}"),
        unsupported,
    )
    .await;
    let req = Request::post("/v1/forecasts")
        .body(Body::from("{}"))
        .unwrap();
    check(
        &state,
        req,
        Expect {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "unsupported_media_type",
            field: Some("content-type"),
            allow: None,
        },
    )
    .await;

    // A body over the limit, refused before it is parsed.
    let big = vec![b' '; kwi::http::MAX_BODY_BYTES + 1];
    check(
        &state,
        post("/v1/forecasts", "application/json", big),
        Expect {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "payload_too_large",
            field: None,
            allow: None,
        },
    )
    .await;

    // Unknown routes and methods a path does not have (with `Allow`).
    let not_found = || Expect {
        status: StatusCode::NOT_FOUND,
        code: "not_found",
        field: None,
        allow: None,
    };
    check(&state, get("/v1/nothing"), not_found()).await;
    check(
        &state,
        post("/v1/nothing", "application/json", "{}"),
        not_found(),
    )
    .await;
    let not_allowed = |allow| Expect {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "method_not_allowed",
        field: None,
        allow: Some(allow),
    };
    check(&state, get("/v1/forecasts"), not_allowed("POST")).await;
    let req = Request::delete("/v1/forecasts")
        .body(Body::empty())
        .unwrap();
    check(&state, req, not_allowed("POST")).await;
    check(
        &state,
        post("/healthz", "application/json", "{}"),
        not_allowed("GET,HEAD"),
    )
    .await;
    let req = Request::put(forecast).body(Body::empty()).unwrap();
    check(&state, req, not_allowed("GET,HEAD")).await;
    let req = Request::options("/v1/models").body(Body::empty()).unwrap();
    check(&state, req, not_allowed("GET,HEAD")).await;
    b.cleanup().await;
}

#[tokio::test]
async fn the_description_types_every_answer() {
    let b = Backends::new().await;
    let (state, _w) = in_process_state(&b.sqlite).await;
    let (s, _, body) = crate::helpers::send(&state, get("/openapi.json")).await;
    assert_eq!(s, StatusCode::OK);
    let doc: Value = serde_json::from_slice(&body).unwrap();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let what = format!("{method} {path}");
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.contains_key("200"), "{what}");
            for (status, res) in responses {
                let content = res["content"]
                    .as_object()
                    .unwrap_or_else(|| panic!("{what} {status}: no content"));
                for (media, c) in content {
                    let schema = &c["schema"];
                    // A bare `{"type": "object"}` says nothing about the body.
                    assert!(
                        schema.get("$ref").is_some()
                            || schema.get("properties").is_some()
                            || schema["type"] != "object",
                        "{what} {status} {media}: untyped body {schema}"
                    );
                    if status != "200" && !(path == "/readyz" && status == "503") {
                        assert_eq!(
                            schema["$ref"], "#/components/schemas/ErrorResponse",
                            "{what} {status}"
                        );
                    }
                }
            }
            // Every operation that takes parameters or a body says how it refuses them.
            let takes_input = op.get("parameters").is_some() || op.get("requestBody").is_some();
            assert_eq!(responses.contains_key("400"), takes_input, "{what}: 400");
        }
    }
    let batch = &doc["paths"]["/v1/forecasts"]["post"]["responses"];
    for status in ["413", "415", "500"] {
        assert!(batch.get(status).is_some(), "POST /v1/forecasts {status}");
    }
    b.cleanup().await;
}
