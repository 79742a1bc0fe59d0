//! Watched keywords: `/v1/watchlist` per user, the scheduler queuing each period once (catching up
//! after downtime), `/v1/collector/status`, and the whole scheduler → queue → collector → store flow
//! in `kwi serve --worker` against the local Etsy fake.

use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{NaiveDate, Utc};
use kwi_features::{Keyword, Platform};
use kwi_store::{JobState, Source, idem_key};
use serde_json::json;

use crate::collect::{count_of, start_fake};
use crate::helpers::{PlanName, Role, TestApp, TestDb, backend_tests, with_token};

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

async fn delete_as(app: &TestApp, uri: &str, token: &str) -> StatusCode {
    let req = Request::delete(uri).body(Body::empty()).unwrap();
    app.send(with_token(req, token)).await.status
}

/// One scheduler pass as if on `today`.
async fn schedule(app: &TestApp, today: &str) -> u64 {
    app.store
        .schedule_watches(day(today), Utc::now())
        .await
        .unwrap()
}

async fn job_state(app: &TestApp, source: Source, keyword: &str, period: &str) -> Option<JobState> {
    let key = idem_key(source, &Keyword::parse(keyword).unwrap(), day(period));
    app.store.job(&key).await.unwrap().map(|j| j.state)
}

async fn watch_lists_are_per_user_and_each_period_is_queued_once(app: TestApp) {
    let name = app.name;
    let (_, alice) = app
        .user("alice@kwi.test", Role::Customer, PlanName::Pro)
        .await;
    let res = app
        .post_as(
            "/v1/watchlist",
            &alice,
            json!({"source": "etsy", "keyword": "  Tarot   Cards ", "cadence": "weekly"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{name}: {res}");
    let tarot = res.json();
    assert_eq!(tarot["created"], true);
    assert_eq!(tarot["keyword"], "tarot cards");
    assert_eq!(tarot["cadence"], "weekly");
    assert_eq!(tarot["last_period"], json!(null));
    let res = app
        .post_as(
            "/v1/watchlist",
            &alice,
            json!({"source": "ebay", "keyword": "mug"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{name}: {res}");
    assert_eq!(res.json()["cadence"], "weekly", "weekly by default");
    for bad in [
        json!({"source": "walmart", "keyword": "mug"}),
        json!({"source": "etsy", "keyword": "   "}),
        json!({"source": "etsy", "keyword": "mug", "cadence": "hourly"}),
        json!({"source": "etsy"}),
    ] {
        let res = app.post_as("/v1/watchlist", &alice, &bad).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{name}: {bad}: {res}");
    }
    // The admin has a list of its own, and cannot delete Alice's watch.
    assert_eq!(app.get("/v1/watchlist").await.json(), json!([]));
    let tarot_uri = format!("/v1/watchlist/{}", tarot["id"].as_str().unwrap());
    assert_eq!(
        delete_as(&app, &tarot_uri, &app.key).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get_as("/v1/watchlist", &alice)
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Status is for admins; nothing is queued yet.
    assert_eq!(
        app.get_as("/v1/collector/status", &alice).await.status,
        StatusCode::FORBIDDEN
    );
    let st = app.get("/v1/collector/status").await.json();
    assert_eq!(st["queue_depth"], 0, "{name}: {st}");
    let etsy = st["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"] == "etsy")
        .unwrap()
        .clone();
    assert_eq!(etsy["daily_limit"], 10_000);
    assert_eq!(etsy["quota_left"], 10_000);

    // The scheduler on Wednesday 2026-12-02: both weekly watches, for Monday 11-30; once.
    assert_eq!(schedule(&app, "2026-12-02").await, 2);
    assert_eq!(schedule(&app, "2026-12-02").await, 0);
    assert_eq!(
        job_state(&app, Source::Etsy, "tarot cards", "2026-11-30").await,
        Some(JobState::Queued)
    );
    assert_eq!(
        job_state(&app, Source::Ebay, "mug", "2026-11-30").await,
        Some(JobState::Queued)
    );
    assert_eq!(schedule(&app, "2026-12-06").await, 0, "same week");

    // Daily from now on (same watch, 200): queued for the day, then each new day.
    let res = app
        .post_as(
            "/v1/watchlist",
            &alice,
            json!({"source": "etsy", "keyword": "tarot cards", "cadence": "daily"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{name}: {res}");
    assert_eq!(res.json()["id"], tarot["id"]);
    assert_eq!(res.json()["created"], false);
    assert_eq!(res.json()["cadence"], "daily");
    assert_eq!(schedule(&app, "2026-12-02").await, 1);
    assert_eq!(schedule(&app, "2026-12-03").await, 1);
    assert_eq!(
        job_state(&app, Source::Etsy, "tarot cards", "2026-12-03").await,
        Some(JobState::Queued)
    );

    // Down for almost three weeks: the current periods are queued, once each.
    assert_eq!(schedule(&app, "2026-12-22").await, 2);
    assert_eq!(
        job_state(&app, Source::Etsy, "tarot cards", "2026-12-22").await,
        Some(JobState::Queued)
    );
    assert_eq!(
        job_state(&app, Source::Ebay, "mug", "2026-12-21").await,
        Some(JobState::Queued)
    );
    assert_eq!(
        job_state(&app, Source::Etsy, "tarot cards", "2026-12-10").await,
        None
    );
    let st = app.get("/v1/collector/status").await.json();
    assert_eq!(st["queue_depth"], 6, "{name}: {st}");

    let listed = app.get_as("/v1/watchlist", &alice).await.json();
    let t = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["source"] == "etsy")
        .unwrap()
        .clone();
    assert_eq!(t["last_period"], "2026-12-22");
    assert_eq!(
        delete_as(&app, &tarot_uri, &alice).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        delete_as(&app, &tarot_uri, &alice).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get_as("/v1/watchlist", &alice)
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Alice's queued collections stay; a deleted watch only stops new ones.
    assert_eq!(schedule(&app, "2026-12-23").await, 0);
}
backend_tests!(watch_lists_are_per_user_and_each_period_is_queued_once);

fn kwi(db: &TestDb) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kwi"));
    c.env("KWI_DATABASE_URL", &db.url)
        .env_remove("KWI_REDIS_URL")
        .env("RUST_LOG", "warn");
    c
}

/// The whole flow in one process: `kwi watch add`, then `kwi serve --worker` whose scheduler
/// queues the watched keywords and whose worker collects them from the Etsy fake into the store.
async fn serve_with_worker_collects_watched_keywords(db: TestDb) {
    let (fake, url) = start_fake(vec![]).await;
    let out = kwi(&db)
        .args([
            "users",
            "create",
            "--email",
            "owner@kwi.test",
            "--role",
            "admin",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = kwi(&db)
        .args([
            "watch",
            "add",
            "--source",
            "etsy",
            "--keywords",
            "mug,tarot cards",
            "--cadence",
            "daily",
            "--user",
            "owner@kwi.test",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("2 keyword(s) watched daily"), "{stdout}");
    let mut server = kwi(&db)
        .args([
            "serve",
            "--worker",
            "--no-sample",
            "--listen",
            "127.0.0.1:0",
            "--schedule-secs",
            "1",
        ])
        .env("KWI_ETSY_BASE_URL", &url)
        .env("KWI_ETSY_API_KEY", "testkey:testsecret")
        .env("KWI_ETSY_PER_SECOND", "50")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let store = kwi_store::open(&db.url).await.unwrap();
    let today = Utc::now().date_naive();
    let mut counts = (None, None);
    for _ in 0..240 {
        let count = |k: &'static str| {
            let store = store.clone();
            async move {
                let h = store
                    .history(Platform::Etsy, &Keyword::parse(k).unwrap())
                    .await
                    .unwrap();
                h.first().map(|p| (p.period_start, p.listing_count))
            }
        };
        counts = (count("mug").await, count("tarot cards").await);
        if counts.0.is_some() && counts.1.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(
        counts.0,
        Some((today, Some(count_of("mug") as i64))),
        "{counts:?}"
    );
    assert_eq!(
        counts.1,
        Some((today, Some(count_of("tarot cards") as i64))),
        "{counts:?}"
    );
    // One page per keyword (KWI_ETSY_PAGES defaults to 1).
    assert_eq!(fake.requests.load(Ordering::SeqCst), 2);
    let out = kwi(&db).args(["watch", "list"]).output().unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains(&format!("tarot cards\tdaily\t{today}")),
        "{listed}"
    );
}
backend_tests!(
    #[tokio::test(flavor = "multi_thread")]
    serve_with_worker_collects_watched_keywords
);

/// Without any credentials `kwi serve --worker` starts anyway (scheduler and re-forecasting; the
/// collections wait for a worker that has them) and answers. `kwi worker` alike:
/// `reforecast::kwi_worker_without_credentials_works_reforecast_chunks`.
async fn without_credentials_the_server_with_a_worker_starts(db: TestDb) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = kwi(&db)
        .args([
            "serve",
            "--worker",
            "--no-sample",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env_remove("KWI_ETSY_API_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut ready = false;
    for _ in 0..240 {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await
            && r.status().is_success()
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(
        ready,
        "kwi serve --worker without credentials did not become ready"
    );
}
backend_tests!(
    #[tokio::test(flavor = "multi_thread")]
    without_credentials_the_server_with_a_worker_starts
);
