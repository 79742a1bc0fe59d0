//! `kwi backup` / `kwi restore` on the embedded default: a backup taken while the store is in use
//! restores into a store that serves the same forecasts; nothing is overwritten or deleted; a
//! PostgreSQL URL is refused with its tools named.

use std::process::Command;

use axum::http::StatusCode;
use kwi::app::AppState;
use kwi::cache::{Cache, DEFAULT_LOCAL_BYTES, DEFAULT_TTL};

use crate::helpers::{TestApp, TestDb, send_to, test_auth};

const FORECAST: &str = "/v1/keywords/google/coffee/forecast?horizon=13&levels=80,95";

fn kwi(url: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kwi"));
    c.env("KWI_DATABASE_URL", url)
        .env_remove("KWI_REDIS_URL")
        .env("RUST_LOG", "warn");
    c
}

/// A service on `store` with its own in-process cache, authentication off.
async fn fresh_service(store: std::sync::Arc<dyn kwi_store::Store>) -> AppState {
    let auth = kwi::auth::AuthConfig {
        enabled: false,
        ..test_auth()
    };
    let cache = Cache::in_process(DEFAULT_LOCAL_BYTES, DEFAULT_TTL);
    AppState::build_with(store, cache, auth).await.unwrap().0
}

fn run(c: &mut Command) -> (bool, String, String) {
    let out = c.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_restores_into_a_store_that_serves_the_same_forecasts() {
    let app = TestApp::sqlite().await;
    app.load_sample().await;
    // A service started on the loaded store (the baseline model is calibrated on the data there
    // at start-up), with a cache of its own, is what the restored one must match.
    let original = fresh_service(app.store.clone()).await;
    let before = send_to(&original, crate::helpers::get(FORECAST)).await;
    assert_eq!(before.status, StatusCode::OK, "{before}");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("backups/kwi.db");

    // Taken while the service holds the store open.
    let (ok, stdout, stderr) = run(kwi(&app.db_url).args(["backup", "--out"]).arg(&out));
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("integrity ok"), "{stdout}");
    assert!(!dir.path().join("backups/kwi.db.partial").exists());
    // Never over an existing file.
    let (ok, _, stderr) = run(kwi(&app.db_url).args(["backup", "--out"]).arg(&out));
    assert!(!ok && stderr.contains("never overwrites"), "{stderr}");

    // Restore into an empty place, then over it only with --force, keeping the old file.
    let target = dir.path().join("restored/kwi.db");
    let url = format!("sqlite:{}", target.display());
    let (ok, stdout, stderr) = run(kwi(&url).args(["restore", "--from"]).arg(&out));
    assert!(ok, "{stdout}{stderr}");
    let (ok, _, stderr) = run(kwi(&url).args(["restore", "--from"]).arg(&out));
    assert!(!ok && stderr.contains("--force"), "{stderr}");
    let (ok, stdout, stderr) = run(kwi(&url).args(["restore", "--force", "--from"]).arg(&out));
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("kept as"), "{stdout}");
    let kept = std::fs::read_dir(dir.path().join("restored"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".before-restore-") && !n.ends_with("-wal") && !n.ends_with("-shm"))
        .count();
    assert_eq!(kept, 1);

    // A fresh service on the restored file answers the same forecast.
    let restored = fresh_service(kwi_store::open(&url).await.unwrap()).await;
    let after = send_to(&restored, crate::helpers::get(FORECAST)).await;
    assert_eq!(after.status, StatusCode::OK, "{after}");
    assert_eq!(after.json()["forecast"], before.json()["forecast"]);
    assert_eq!(before.json()["forecast"].as_array().map(Vec::len), Some(13));

    // A broken file is refused before anything is replaced.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"not a database").unwrap();
    let (ok, _, stderr) = run(kwi(&url).args(["restore", "--force", "--from"]).arg(&junk));
    assert!(
        !ok && stderr.contains("not a readable kwi backup"),
        "{stderr}"
    );
    assert!(target.exists());
    app.cleanup().await;
}

#[tokio::test]
async fn postgres_is_pointed_at_pg_dump() {
    let db = TestDb::postgres().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pg.db");
    let (ok, _, stderr) = run(kwi(&db.url).args(["backup", "--out"]).arg(&out));
    assert!(!ok && stderr.contains("pg_dump"), "{stderr}");
    assert!(!out.exists());
    let (ok, _, stderr) = run(kwi(&db.url).args(["restore", "--from"]).arg(&out));
    assert!(!ok && stderr.contains("pg_restore"), "{stderr}");
    db.cleanup().await;
}
