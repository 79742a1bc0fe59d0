//! The edge, on a real listener (`kwi::app::serve`): security headers on every answer, the CORS
//! policy, the header-size limit and the slow-client timeouts. The edge does not depend on the
//! backend; these run on SQLite.

use std::time::{Duration, Instant};

use kwi::http::Edge;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::TestApp;

const ORIGIN: &str = "https://app.example.test";

/// A served `TestApp` behind a short-timeout edge that allows [`ORIGIN`]; its base URL.
async fn served(app: &TestApp) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let edge = Edge {
        cors_origins: vec![ORIGIN.into()],
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        max_header_bytes: 16 * 1024,
    };
    tokio::spawn(kwi::app::serve(
        listener,
        app.state.clone(),
        edge,
        std::future::pending(),
    ));
    base
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let app = TestApp::sqlite().await;
    let base = served(&app).await;
    let client = reqwest::Client::new();
    for (path, status) in [("/healthz", 200), ("/", 200), ("/no/such/route", 404)] {
        let res = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{path}");
        let h = res.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
    }
    app.cleanup().await;
}

#[tokio::test]
async fn cors_answers_only_the_configured_origins() {
    let app = TestApp::sqlite().await;
    let base = served(&app).await;
    let client = reqwest::Client::new();
    // A browser's preflight for a POST with a bearer token and a JSON body.
    let preflight = |origin: &'static str| {
        client
            .request(reqwest::Method::OPTIONS, format!("{base}/v1/forecast"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let res = preflight(ORIGIN).await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], ORIGIN);
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{allowed}"
    );
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    let res = preflight("https://evil.example.test").await.unwrap();
    assert!(
        !res.headers().contains_key("access-control-allow-origin"),
        "another origin is not allowed: {:?}",
        res.headers()
    );
    // The real request from the allowed origin: the script may read the rate-limit headers.
    let res = client
        .get(format!("{base}/v1/me"))
        .header("origin", ORIGIN)
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["access-control-allow-origin"], ORIGIN);
    let exposed = res.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        exposed.contains("retry-after") && exposed.contains("x-ratelimit-remaining"),
        "{exposed}"
    );
    // The default edge (no origins configured) answers no browser of another origin.
    let res = app
        .send(crate::helpers::get("/healthz"))
        .await
        .header("access-control-allow-origin")
        .map(str::to_string);
    assert_eq!(res, None);
    app.cleanup().await;
}

#[tokio::test]
async fn a_header_over_the_limit_is_431() {
    let app = TestApp::sqlite().await;
    let base = served(&app).await;
    let res = reqwest::Client::new()
        .get(format!("{base}/healthz"))
        .header("x-padding", "p".repeat(20 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 431);
    // Under the limit is served.
    let res = reqwest::Client::new()
        .get(format!("{base}/healthz"))
        .header("x-padding", "p".repeat(4 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    app.cleanup().await;
}

/// A plain TCP connection to the served edge (to send what no HTTP client would).
async fn raw_connection(base: &str) -> TcpStream {
    TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads what the server sends until it closes the connection (at most 10 s).
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .expect("the server closes a stalled connection")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn a_client_that_stalls_in_its_header_is_disconnected() {
    let app = TestApp::sqlite().await;
    let base = served(&app).await;
    let mut stream = raw_connection(&base).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: kwi\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let answer = read_until_closed(&mut stream).await;
    assert!(
        !answer.contains(" 200 "),
        "a half-sent header is not served: {answer}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed after the 1 s header timeout, not {:?}",
        started.elapsed()
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_408() {
    let app = TestApp::sqlite().await;
    let base = served(&app).await;
    let mut stream = raw_connection(&base).await;
    stream
        .write_all(
            b"POST /v1/auth/login HTTP/1.1\r\nHost: kwi\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\nConnection: close\r\n\r\n{\"email\":",
        )
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");
    app.cleanup().await;
}

#[test]
fn edge_settings_that_cannot_work_are_refused() {
    let with_origin = |o: &str| Edge {
        cors_origins: vec![o.into()],
        ..Edge::default()
    };
    assert!(Edge::default().validate().is_ok());
    assert!(with_origin("*").validate().is_ok());
    assert!(with_origin("http://localhost:3000").validate().is_ok());
    for bad in [
        "app.example.com",
        "https://app.example.com/",
        "ftp://x",
        "https://",
    ] {
        let err = with_origin(bad).validate().unwrap_err().to_string();
        assert!(err.contains(bad), "{bad}: {err}");
    }
    let small = Edge {
        max_header_bytes: 1024,
        ..Edge::default()
    };
    assert!(
        small
            .validate()
            .unwrap_err()
            .to_string()
            .contains("at least 8192")
    );
    let zero = Edge {
        body_timeout: Duration::ZERO,
        ..Edge::default()
    };
    assert!(zero.validate().is_err());
}
