//! Shared test fixtures: fresh databases per test, paths to the reference data.

use std::path::PathBuf;
use std::sync::Arc;

use kwi::app::AppState;
use kwi::cache::{Cache, DEFAULT_LOCAL_BYTES, DEFAULT_TTL};
use kwi_store::{PgStore, SqliteStore, Store};
use sqlx::Connection;

/// Admin URL of the test PostgreSQL server.
pub fn pg_admin_url() -> String {
    std::env::var("KWI_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// URL of the test Redis server.
pub fn redis_url() -> String {
    std::env::var("KWI_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
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

/// The service over `store` with the default in-process cache (hold the returned persistence
/// writer's handle for the test's length).
pub async fn in_process_state(store: &Arc<dyn Store>) -> (AppState, tokio::task::JoinHandle<()>) {
    AppState::build(
        store.clone(),
        Cache::in_process(DEFAULT_LOCAL_BYTES, DEFAULT_TTL),
    )
    .await
    .unwrap()
}

/// A fresh, migrated PostgreSQL database; dropped by [`TestDb::cleanup`].
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn new() -> Self {
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
        let url = format!("{base}/{name}");
        Self { name, url }
    }

    pub async fn cleanup(self) {
        let mut conn = sqlx::PgConnection::connect(&pg_admin_url()).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut conn)
        .await
        .expect("drop test database");
    }
}

/// Both backends, migrated and empty: `(label, store, url, guard)`.
pub struct Backends {
    pub sqlite: Arc<dyn Store>,
    pub pg: Arc<dyn Store>,
    pub pg_db: TestDb,
    pub sqlite_url: String,
    _dir: tempfile::TempDir,
}

impl Backends {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kwi.db");
        let sqlite: Arc<dyn Store> =
            Arc::new(SqliteStore::open(path.to_str().unwrap()).await.unwrap());
        sqlite.migrate().await.unwrap();
        let pg_db = TestDb::new().await;
        let pg: Arc<dyn Store> = Arc::new(PgStore::connect(&pg_db.url).await.unwrap());
        pg.migrate().await.unwrap();
        Self {
            sqlite,
            pg,
            pg_db,
            sqlite_url: format!("sqlite:{}", path.display()),
            _dir: dir,
        }
    }

    /// `[("sqlite", url), ("postgres", url)]`.
    pub fn urls(&self) -> [(&'static str, &str); 2] {
        [("sqlite", &self.sqlite_url), ("postgres", &self.pg_db.url)]
    }

    /// `[("sqlite", store), ("postgres", store)]`.
    pub fn all(&self) -> [(&'static str, &Arc<dyn Store>); 2] {
        [("sqlite", &self.sqlite), ("postgres", &self.pg)]
    }

    pub async fn cleanup(self) {
        self.pg_db.cleanup().await;
    }
}

/// Sends one request through a fresh router; returns status, content type and body.
pub async fn send(
    state: &kwi::app::AppState,
    req: axum::http::Request<axum::body::Body>,
) -> (axum::http::StatusCode, String, Vec<u8>) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let res = kwi::http::router(state.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (
        status,
        ct,
        res.into_body().collect().await.unwrap().to_bytes().to_vec(),
    )
}
