//! The JSON request bodies' fuzz target: any body sent to any route that takes one is answered
//! below 500 (a 4xx names what is wrong in the API's error shape), and the server keeps serving.
//! Shared by the bounded bolero run under `cargo test` (`tests/api/fuzz.rs`) and the cargo-fuzz
//! target for long local runs (`fuzz/fuzz_targets/api_bodies.rs`).
//!
//! The input's first byte picks the route; the second picks how the rest becomes a body: sent as it
//! is (bytes rarely make JSON, so mostly the parse errors), or read as instructions that build a
//! JSON object out of the fields and values these routes know (so validation itself is reached).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use kwi::app::AppState;
use kwi::cache::{Cache, DEFAULT_LOCAL_BYTES, DEFAULT_TTL};
use kwi_store::{PlanName, Role};
use serde_json::{Map, Value, json};
use tower::ServiceExt;

/// The routes that take a JSON body.
const ROUTES: [(&str, &str); 11] = [
    ("POST", "/v1/forecasts"),
    ("POST", "/v2/forecast"),
    ("POST", "/v2/cross_validation"),
    ("POST", "/v1/auth/login"),
    ("POST", "/v1/auth/refresh"),
    ("POST", "/v1/auth/logout"),
    ("POST", "/v1/me/password"),
    ("POST", "/v1/me/api-keys"),
    ("POST", "/v1/watchlist"),
    ("POST", "/v1/admin/users"),
    ("PATCH", "/v1/admin/plans/free"),
];

/// Field names the bodies above use.
const FIELDS: [&str; 30] = [
    "keywords",
    "keyword",
    "platform",
    "horizon",
    "levels",
    "series",
    "id",
    "values",
    "start",
    "email",
    "password",
    "refresh_token",
    "current_password",
    "new_password",
    "name",
    "grace_seconds",
    "role",
    "plan",
    "source",
    "cadence",
    "monthly_lookups",
    "requests_per_minute",
    "n_windows",
    "h",
    "freq",
    "level",
    "y",
    "sizes",
    "model",
    "step_size",
];

/// Strings the fields above take or must refuse.
const STRINGS: [&str; 24] = [
    "",
    " ",
    "coffee",
    "tarot cards",
    "google",
    "amazon",
    "etsy",
    "benchmark",
    "W",
    "MS",
    "D",
    "weekly",
    "admin",
    "customer",
    "internal",
    "pro",
    "2024-01-01",
    "2024-02-30",
    "fuzz@kwi.test",
    "FUZZ@KWI.TEST ",
    "kwi_live_0000000000000000000000000000000000000000",
    "\u{0}",
    "ｔａｒｏｔ",
    "timegpt-1",
];

const NUMBERS: [f64; 12] = [
    0.0,
    1.0,
    -1.0,
    13.0,
    52.0,
    104.0,
    105.0,
    0.5,
    95.0,
    99.9,
    1e308,
    4_294_967_296.0,
];

/// A service on a fresh SQLite store with an admin's key, and a runtime to drive it.
pub struct Bodies {
    runtime: tokio::runtime::Runtime,
    state: AppState,
    key: String,
    _dir: tempfile::TempDir,
}

impl Bodies {
    /// Opens the store, loads the built-in sample (so forecasts have data) and makes the key.
    pub fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite:{}", dir.path().join("fuzz.db").display());
        let (state, key) = runtime.block_on(async {
            let store: Arc<dyn kwi_store::Store> = kwi_store::open(&url).await.expect("the store");
            kwi::import::load_sample(store.as_ref())
                .await
                .expect("the sample");
            let (state, _writer) =
                AppState::build(store, Cache::in_process(DEFAULT_LOCAL_BYTES, DEFAULT_TTL))
                    .await
                    .expect("the state");
            let (_, key) = state
                .auth
                .create_user(
                    None,
                    "fuzz-admin@kwi.test",
                    None,
                    Role::Admin,
                    PlanName::Internal,
                    Some("fuzz"),
                )
                .await
                .expect("the admin");
            (state, key.expect("a key"))
        });
        Self {
            runtime,
            state,
            key,
            _dir: dir,
        }
    }

    /// One input: a route, a body, and the checks on the answer.
    pub fn run(&self, data: &[u8]) {
        let (Some(&route), Some(&mode)) = (data.first(), data.get(1)) else {
            return;
        };
        let (method, path) = ROUTES[usize::from(route) % ROUTES.len()];
        let body = if mode % 4 == 0 {
            data[2..].to_vec()
        } else {
            let mut builder = Gen(&data[2..]);
            serde_json::to_vec(&builder.object(0)).expect("JSON")
        };
        let req = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).expect("a method"))
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {}", self.key))
            .body(Body::from(body.clone()))
            .expect("a request");
        let router = kwi::http::router(self.state.clone());
        let (status, content_type, bytes) = self.runtime.block_on(async {
            let res = router.oneshot(req).await.expect("infallible");
            let status = res.status();
            let ct = res
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let bytes = res.into_body().collect().await.expect("a body").to_bytes();
            (status, ct, bytes)
        });
        let shown = String::from_utf8_lossy(&body);
        let answer = String::from_utf8_lossy(&bytes);
        assert!(
            status.as_u16() < 500,
            "{method} {path} with {shown:?} answered {status}: {answer}"
        );
        if status.is_client_error() {
            let parsed: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "{method} {path} with {shown:?}: a {status} that is not JSON ({e}): {answer}"
                )
            });
            let named = if status == StatusCode::TOO_MANY_REQUESTS {
                content_type.starts_with("application/problem+json") && parsed["detail"].is_string()
            } else {
                parsed["error"]["code"].is_string() && parsed["error"]["message"].is_string()
            };
            assert!(
                named,
                "{method} {path} with {shown:?}: {status} without a code and message: {answer}"
            );
        }
    }
}

impl Default for Bodies {
    fn default() -> Self {
        Self::new()
    }
}

/// Builds JSON out of bytes: each byte read decides the next step; running out ends everything.
struct Gen<'a>(&'a [u8]);

impl Gen<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn object(&mut self, depth: usize) -> Value {
        let mut map = Map::new();
        let fields = self.byte().map_or(0, |b| b % 6);
        for _ in 0..fields {
            let Some(f) = self.byte() else { break };
            let value = self.value(depth);
            map.insert(FIELDS[usize::from(f) % FIELDS.len()].to_string(), value);
        }
        Value::Object(map)
    }

    fn value(&mut self, depth: usize) -> Value {
        let Some(kind) = self.byte() else {
            return Value::Null;
        };
        let pick = usize::from(self.byte().unwrap_or(0));
        match kind % 9 {
            0 => Value::Null,
            1 => Value::Bool(pick % 2 == 0),
            2 => json!(NUMBERS[pick % NUMBERS.len()]),
            3 => json!(pick as i64 - 128),
            4 => json!(STRINGS[pick % STRINGS.len()]),
            5 => json!("x".repeat(pick * 4)),
            6 if depth < 3 => Value::Array((0..pick % 5).map(|_| self.value(depth + 1)).collect()),
            7 if depth < 3 => self.object(depth + 1),
            // A keyword entry of a batch, the most common nested shape.
            _ => json!({
                "platform": STRINGS[pick % 8],
                "keyword": STRINGS[(pick / 8) % STRINGS.len()],
            }),
        }
    }
}
