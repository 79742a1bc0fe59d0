//! Shared test fixtures: [`TestApp`] (the service over a fresh, migrated database of one backend,
//! with the request helpers every test file uses), [`TestDb`] (a fresh, empty database),
//! [`backend_tests!`] (one test per backend, named after it), and paths to the reference data.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::{self, AsHeaderName};
use axum::http::{HeaderMap, Request, StatusCode};
use futures::FutureExt;
use http_body_util::BodyExt;
use kwi::app::AppState;
use kwi::auth::AuthConfig;
use kwi::cache::{Cache, DEFAULT_LOCAL_BYTES, DEFAULT_TTL};
pub use kwi_store::Backend;
use kwi_store::Store;
pub use kwi_store::{PlanName, Role};
use serde_json::Value;
use sqlx::Connection;
use tower::ServiceExt;

/// Admin URL of the test PostgreSQL server.
pub fn pg_admin_url() -> String {
    std::env::var("KWI_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// URL of the test Redis server.
pub fn redis_url() -> String {
    std::env::var("KWI_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The shared test Redis as a cache (`near_bytes` of near cache in front; 0 turns it off).
pub async fn redis_cache(ttl: Duration, near_bytes: u64) -> Cache {
    Cache::redis(&redis_url(), ttl, near_bytes)
        .await
        .unwrap_or_else(|e| panic!("Redis is required for these tests ({}): {e}", redis_url()))
}

/// `data/<rel>` in the repository: the reference files committed there (origin in data/README.md).
pub fn data_file(rel: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(rel);
    assert!(
        p.exists(),
        "reference data file missing: {} (it is committed under data/; see data/README.md)",
        p.display()
    );
    p
}

/// `"postgres"` or `"sqlite"`: how the API (`/readyz`) and the test names spell a backend.
pub fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "postgres",
        Backend::Sqlite => "sqlite",
    }
}

/// A fresh, empty database of one backend, as a binary sees it on its first run (nothing has
/// migrated it): a PostgreSQL database with a random name, dropped by [`TestDb::cleanup`], or an
/// SQLite file (not yet created) in a temporary directory removed when this is dropped.
pub struct TestDb {
    /// What `KWI_DATABASE_URL` would say.
    pub url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Postgres => Self::postgres().await,
            Backend::Sqlite => Self::sqlite(),
        }
    }

    pub async fn postgres() -> Self {
        let admin = pg_admin_url();
        let name = format!("kwi_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is required for these tests ({admin}): {e}. Start it with \
                 `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` or set KWI_TEST_DATABASE_URL"
            )
        });
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        Self {
            url: format!("{base}/{name}"),
            pg_name: Some(name),
            _dir: None,
        }
    }

    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            url: format!("sqlite:{}", dir.path().join("kwi.db").display()),
            pg_name: None,
            _dir: Some(dir),
        }
    }

    /// Drops the PostgreSQL database (and removes the SQLite directory).
    pub async fn cleanup(self) {
        if let Some(name) = &self.pg_name {
            drop_pg_database(name).await;
        }
    }
}

async fn drop_pg_database(name: &str) {
    let mut conn = sqlx::PgConnection::connect(&pg_admin_url()).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await
    .expect("drop test database");
}

/// The service as the tests drive it (zero-to-production's `TestApp`): a fresh database of one
/// backend, migrated, behind an [`AppState`] with the default in-process cache, and the router
/// reached through `oneshot`. The prediction writer runs for as long as this lives.
pub struct TestApp {
    pub backend: Backend,
    /// `"postgres"` or `"sqlite"`, for assertion messages.
    pub name: &'static str,
    /// The database's URL, for the `kwi` executable.
    pub db_url: String,
    pub store: Arc<dyn Store>,
    pub state: AppState,
    /// API key of `admin@kwi.test` (role admin, plan internal): [`TestApp::send`] adds it to every
    /// request that carries no `Authorization` of its own.
    pub key: String,
    writer: tokio::task::JoinHandle<()>,
    db: TestDb,
}

/// The accounts settings of the tests: argon2id at a test-only cost (hashes record their cost,
/// so they verify the same way; the server's default is OWASP's 19 MiB, 2 passes).
pub fn test_auth() -> AuthConfig {
    AuthConfig {
        argon2_kib: 1024,
        argon2_passes: 1,
        ..AuthConfig::default()
    }
}

/// `req` with `Authorization: Bearer <token>`.
pub fn with_token(mut req: Request<Body>, token: &str) -> Request<Body> {
    req.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    req
}

/// Marks a request to go out without credentials (see [`TestApp::send`]).
pub fn anonymous(mut req: Request<Body>) -> Request<Body> {
    req.headers_mut()
        .insert("x-test-anonymous", "1".parse().unwrap());
    req
}

impl TestApp {
    pub async fn postgres() -> Self {
        Self::spawn(Backend::Postgres).await
    }

    pub async fn sqlite() -> Self {
        Self::spawn(Backend::Sqlite).await
    }

    pub async fn spawn(backend: Backend) -> Self {
        let db = TestDb::new(backend).await;
        let store = kwi_store::open(&db.url)
            .await
            .unwrap_or_else(|e| panic!("open the test store: {e}"));
        let (state, writer) = AppState::build_with(
            store.clone(),
            Cache::in_process(DEFAULT_LOCAL_BYTES, DEFAULT_TTL),
            test_auth(),
        )
        .await
        .unwrap();
        let (_, key) = state
            .auth
            .create_user(
                None,
                "admin@kwi.test",
                None,
                Role::Admin,
                PlanName::Internal,
                Some("tests"),
            )
            .await
            .unwrap();
        Self {
            backend,
            name: backend_name(backend),
            db_url: db.url.clone(),
            store,
            state,
            key: key.unwrap(),
            writer,
            db,
        }
    }

    /// The same store behind a fresh service that uses `cache` (Redis, a private Redis, ...).
    pub async fn with_cache(mut self, cache: Cache) -> Self {
        self.replace_service(cache).await;
        self
    }

    /// Stops the service as `kwi serve` does (every handle dropped; the writer must drain within
    /// 10 s) and starts a fresh one on the same store and cache.
    pub async fn restart(&mut self) {
        let cache = self.state.cache.clone();
        self.replace_service(cache).await;
    }

    async fn replace_service(&mut self, cache: Cache) {
        let (state, writer) = AppState::build_with(self.store.clone(), cache, test_auth())
            .await
            .unwrap();
        drop(std::mem::replace(&mut self.state, state));
        let old = std::mem::replace(&mut self.writer, writer);
        tokio::time::timeout(Duration::from_secs(10), old)
            .await
            .expect("the prediction writer drains once every handle is dropped")
            .unwrap();
    }

    /// Imports the built-in sample (Google Trends topics and the Amazon/Etsy listing data).
    pub async fn load_sample(&self) {
        kwi::import::load_sample(self.store.as_ref())
            .await
            .unwrap_or_else(|e| panic!("{}: load the sample: {e}", self.name));
    }

    /// Sends one request through a fresh router, as the test admin unless it carries its own
    /// `Authorization` or is marked [`anonymous`].
    pub async fn send(&self, mut req: Request<Body>) -> TestResponse {
        if req.headers_mut().remove("x-test-anonymous").is_none()
            && !req.headers().contains_key(header::AUTHORIZATION)
        {
            req = with_token(req, &self.key);
        }
        send_to(&self.state, req).await
    }

    /// GET as the holder of `token`.
    pub async fn get_as(&self, uri: &str, token: &str) -> TestResponse {
        self.send(with_token(get(uri), token)).await
    }

    /// POST JSON as the holder of `token`.
    pub async fn post_as(&self, uri: &str, token: &str, body: impl ToString) -> TestResponse {
        self.send(with_token(
            post(uri, "application/json", body.to_string()),
            token,
        ))
        .await
    }

    /// A new user with `role` and `plan`, and its API key.
    pub async fn user(&self, email: &str, role: Role, plan: PlanName) -> (uuid::Uuid, String) {
        let (a, key) = self
            .state
            .auth
            .create_user(None, email, None, role, plan, Some("test"))
            .await
            .unwrap_or_else(|e| panic!("{}: create {email}: {e}", self.name));
        (a.id, key.unwrap())
    }

    pub async fn get(&self, uri: &str) -> TestResponse {
        self.send(get(uri)).await
    }

    /// POSTs `body` (a `&str` or a `serde_json::Value`) as `application/json`.
    pub async fn post_json(&self, uri: &str, body: impl ToString) -> TestResponse {
        self.send(post(uri, "application/json", body.to_string()))
            .await
    }

    /// Drops the PostgreSQL database (the SQLite file goes with its directory).
    pub async fn cleanup(self) {
        let Self {
            store, state, db, ..
        } = self;
        drop((state, store));
        db.cleanup().await;
    }
}

/// Polls `f` every 50 ms until it gives a value (rows written off the request path); panics after
/// 10 s.
pub async fn eventually<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    for _ in 0..200 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not met within 10 s");
}

/// A GET request for `uri`.
pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

/// A POST request for `uri` with a `content-type`.
pub fn post(uri: &str, content_type: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, content_type)
        .body(body.into())
        .unwrap()
}

/// [`TestApp::send`] for code that holds only a state clone (spawned tasks).
pub async fn send_to(state: &AppState, req: Request<Body>) -> TestResponse {
    let res = kwi::http::router(state.clone()).oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    TestResponse {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

/// A whole response: status, headers, body.
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    /// A header's value, if present and text.
    pub fn header(&self, name: impl AsHeaderName) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// `x-cache`: `miss` or `hit` on a forecast.
    pub fn x_cache(&self) -> Option<&str> {
        self.header("x-cache")
    }

    /// `content-type`, empty when absent.
    pub fn content_type(&self) -> &str {
        self.header(header::CONTENT_TYPE).unwrap_or_default()
    }

    /// The body as JSON; panics (showing it) when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {self}"))
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl fmt::Display for TestResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, String::from_utf8_lossy(&self.body))
    }
}

/// What [`backend_tests!`] hands a test: built for one backend, its database dropped afterwards.
pub trait Fixture: Sized {
    fn spawn(backend: Backend) -> impl Future<Output = Self>;
    /// The PostgreSQL database to drop after the test.
    fn pg_database(&self) -> Option<String>;
}

impl Fixture for TestApp {
    fn spawn(backend: Backend) -> impl Future<Output = Self> {
        TestApp::spawn(backend)
    }
    fn pg_database(&self) -> Option<String> {
        self.db.pg_name.clone()
    }
}

impl Fixture for TestDb {
    fn spawn(backend: Backend) -> impl Future<Output = Self> {
        TestDb::new(backend)
    }
    fn pg_database(&self) -> Option<String> {
        self.pg_name.clone()
    }
}

/// Runs `test` on a fresh fixture of `backend`, then drops its PostgreSQL database, whether the
/// test passed or panicked (the panic is passed on).
pub async fn run_on<T: Fixture, F: Future<Output = ()>>(
    backend: Backend,
    test: impl FnOnce(T) -> F,
) {
    let fixture = T::spawn(backend).await;
    let pg = fixture.pg_database();
    let outcome = AssertUnwindSafe(test(fixture)).catch_unwind().await;
    if let Some(name) = pg {
        drop_pg_database(&name).await;
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// `backend_tests!(name)` turns `async fn name(app: TestApp)` (or `(db: TestDb)`) into two tests,
/// `name::postgres` and `name::sqlite`, each on a fresh fixture of that backend. Put the runtime
/// first to pick another: `backend_tests!(#[tokio::test(flavor = "multi_thread")] name)`.
macro_rules! backend_tests {
    ($($name:ident),+ $(,)?) => {
        $($crate::helpers::backend_tests!(#[tokio::test] $name);)+
    };
    (#[$test:meta] $name:ident) => {
        mod $name {
            #[$test]
            async fn postgres() {
                $crate::helpers::run_on($crate::helpers::Backend::Postgres, super::$name).await;
            }

            #[$test]
            async fn sqlite() {
                $crate::helpers::run_on($crate::helpers::Backend::Sqlite, super::$name).await;
            }
        }
    };
}
pub(crate) use backend_tests;
