//! The API contract at its edges: every rejection, whether the router, an extractor or a handler
//! makes it, answers in the API's JSON error shape `{"error": {"code", "field", "message"}}`, and
//! the OpenAPI description types every answer. (`.ci/schemathesis` checks the rest against a live
//! server.)

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::Value;

use crate::helpers::{TestApp, get, post};

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

const UNSUPPORTED: Expect = Expect {
    status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
    code: "unsupported_media_type",
    field: Some("content-type"),
    allow: None,
};

const NOT_FOUND: Expect = Expect {
    status: StatusCode::NOT_FOUND,
    code: "not_found",
    field: None,
    allow: None,
};

const fn not_allowed(allow: &'static str) -> Expect {
    Expect {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "method_not_allowed",
        field: None,
        allow: Some(allow),
    }
}

/// Sends `req` through the router and checks the status, the JSON error body and `Allow`.
async fn check(app: &TestApp, req: Request<Body>, want: Expect) {
    let what = format!("{} {}", req.method(), req.uri());
    let res = app.send(req).await;
    let text = res.text();
    assert_eq!(res.status, want.status, "{what}: {text}");
    assert_eq!(res.content_type(), "application/json", "{what}: {text}");
    let body: Value =
        serde_json::from_slice(&res.body).unwrap_or_else(|e| panic!("{what}: {e}: {text}"));
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
    assert_eq!(res.header(header::ALLOW), want.allow, "{what}: Allow");
}

/// A JSON body for the batch endpoint.
fn batch(body: &str) -> Request<Body> {
    post("/v1/forecasts", "application/json", body.to_string())
}

const FORECAST: &str = "/v1/keywords/google/coffee/forecast";

/// Query strings axum could not deserialize.
#[tokio::test]
async fn a_repeated_query_field_is_a_json_error_naming_it() {
    let app = TestApp::sqlite().await;
    check(
        &app,
        get(&format!("{FORECAST}?horizon=1&horizon=2")),
        bad("horizon"),
    )
    .await;
    check(&app, get("/v1/trends?limit=5&limit=6"), bad("limit")).await;
    check(&app, get("/v1/keywords/search?q=a&q=b"), bad("q")).await;
    check(
        &app,
        get("/v1/export/observations?format=arrow&format=parquet"),
        bad("format"),
    )
    .await;
    app.cleanup().await;
}

/// Path segments that are not UTF-8 once percent-decoded.
#[tokio::test]
async fn a_path_segment_that_is_not_utf8_is_a_json_error_naming_it() {
    let app = TestApp::sqlite().await;
    check(
        &app,
        get("/v1/keywords/google/%FF/forecast"),
        bad("keyword"),
    )
    .await;
    check(&app, get("/v1/keywords/%C3%28/coffee"), bad("platform")).await;
    check(
        &app,
        post("/v1/models/%FF/activate", "application/json", ""),
        bad("version"),
    )
    .await;
    app.cleanup().await;
}

/// JSON bodies: syntax, types, unknown and missing fields, each named by its path.
#[tokio::test]
async fn a_json_body_axum_cannot_read_is_a_json_error_naming_the_path() {
    let app = TestApp::sqlite().await;
    check(&app, batch(r#"{"keywords": ["#), bad("body")).await;
    check(&app, batch(r#"{"horizon": 13} trailing"#), bad("body")).await;
    // A struct serde could fill from an array is still not the object the API takes.
    check(&app, batch(r#"[null, null]"#), bad("body")).await;
    check(&app, batch(r#"{"horizon": "13"}"#), bad("horizon")).await;
    check(&app, batch(r#"{"nope": 1}"#), bad("nope")).await;
    check(
        &app,
        batch(r#"{"keywords": [{"platform": "google"}]}"#),
        bad("keywords[0].keyword"),
    )
    .await;
    check(
        &app,
        batch(r#"{"series": [{"id": "a", "values": [1, "x"]}]}"#),
        bad("series[0].values[1]"),
    )
    .await;
    app.cleanup().await;
}

/// What the handler refuses after reading the body.
#[tokio::test]
async fn an_empty_batch_is_refused_by_the_handler() {
    let app = TestApp::sqlite().await;
    check(&app, batch("{}"), bad("keywords")).await;
    app.cleanup().await;
}

/// A field's own rule is checked as the body is read, before the batch-size rule.
#[tokio::test]
async fn a_field_rule_is_checked_before_the_batch_size_rule() {
    let app = TestApp::sqlite().await;
    check(
        &app,
        batch(r#"{"keywords": [], "series": [], "horizon": 0}"#),
        bad("horizon"),
    )
    .await;
    check(
        &app,
        batch(r#"{"keywords": [], "series": [], "levels": [80, 100]}"#),
        bad("levels"),
    )
    .await;
    app.cleanup().await;
}

/// Media type: missing or not JSON.
#[tokio::test]
async fn a_body_that_is_not_declared_json_is_415() {
    let app = TestApp::sqlite().await;
    check(&app, post("/v1/forecasts", "text/plain", "{}"), UNSUPPORTED).await;
    let req = Request::post("/v1/forecasts")
        .body(Body::from("{}"))
        .unwrap();
    check(&app, req, UNSUPPORTED).await;
    app.cleanup().await;
}

/// A body over the limit, refused before it is parsed.
#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let app = TestApp::sqlite().await;
    let big = vec![b' '; kwi::http::MAX_BODY_BYTES + 1];
    check(
        &app,
        post("/v1/forecasts", "application/json", big),
        Expect {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "payload_too_large",
            field: None,
            allow: None,
        },
    )
    .await;
    app.cleanup().await;
}

#[tokio::test]
async fn an_unknown_route_is_a_json_404() {
    let app = TestApp::sqlite().await;
    check(&app, get("/v1/nothing"), NOT_FOUND).await;
    check(
        &app,
        post("/v1/nothing", "application/json", "{}"),
        NOT_FOUND,
    )
    .await;
    app.cleanup().await;
}

/// Methods a path does not have: 405 with `Allow`.
#[tokio::test]
async fn a_method_the_path_lacks_is_405_with_allow() {
    let app = TestApp::sqlite().await;
    check(&app, get("/v1/forecasts"), not_allowed("POST")).await;
    let req = Request::delete("/v1/forecasts")
        .body(Body::empty())
        .unwrap();
    check(&app, req, not_allowed("POST")).await;
    check(
        &app,
        post("/healthz", "application/json", "{}"),
        not_allowed("GET,HEAD"),
    )
    .await;
    let req = Request::put(FORECAST).body(Body::empty()).unwrap();
    check(&app, req, not_allowed("GET,HEAD")).await;
    let req = Request::options("/v1/models").body(Body::empty()).unwrap();
    check(&app, req, not_allowed("GET,HEAD")).await;
    app.cleanup().await;
}

#[tokio::test]
async fn the_description_types_every_answer() {
    let app = TestApp::sqlite().await;
    let res = app.get("/openapi.json").await;
    assert_eq!(res.status, StatusCode::OK);
    let doc = res.json();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let what = format!("{method} {path}");
            let responses = op["responses"].as_object().unwrap();
            let success: Vec<&String> = responses
                .keys()
                .filter(|s| s.starts_with('2') || s.starts_with('3'))
                .collect();
            assert_eq!(
                success.len(),
                1,
                "{what}: one success status, got {success:?}"
            );
            for (status, res) in responses {
                // 204 and 303 answer without a body.
                if status == "204" || status == "303" {
                    assert!(res.get("content").is_none(), "{what} {status}");
                    continue;
                }
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
                    if status == "429" {
                        assert_eq!(schema["$ref"], "#/components/schemas/Problem", "{what} 429");
                        assert_eq!(media, "application/problem+json", "{what} 429");
                    } else if !(status.starts_with('2') || path == "/readyz" && status == "503") {
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
    app.cleanup().await;
}
