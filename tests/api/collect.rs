//! Collectors against a local fake of Etsy's findAllListingsActive (shaped after Etsy Open API
//! v3's documentation; no network): pagination, 429 storms, daily quota, 5xx, malformed bodies,
//! refusals, timeouts, leases taken over, and a `kwi worker` killed
//! with SIGKILL mid-job.

use std::collections::VecDeque;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, Utc};
use kwi::collect::etsy::{Etsy, EtsyConfig};
use kwi::collect::{RetryPolicy, SourceClient, Stats, Worker, WorkerOptions};
use kwi_features::{Keyword, Platform};
use kwi_store::{JobState, NewJob, Source, Store, idem_key};
use serde::Deserialize;

use crate::helpers::{TestDb, backend_tests};

/// What the fake answers to the next request (then it goes back to answering pages).
#[derive(Debug, Clone)]
pub(crate) enum Reply {
    PerSecond429 { headers: bool },
    Daily429,
    Status(u16),
    Html,
    Truncated,
    WrongTypes,
    SharedSecretRequired,
    Slow(Duration),
}

#[derive(Default)]
pub(crate) struct Fake {
    script: Mutex<VecDeque<Reply>>,
    pub requests: AtomicUsize,
    keys_seen: Mutex<Vec<String>>,
}

#[derive(Deserialize)]
struct Params {
    keywords: String,
    limit: u32,
    offset: u32,
}

/// The `count` the fake reports for a keyword: 40 per character (e.g. "tarot cards" → 440).
pub(crate) fn count_of(keyword: &str) -> u64 {
    40 * keyword.chars().count() as u64
}

fn page(p: &Params) -> serde_json::Value {
    let count = count_of(&p.keywords);
    let n = u64::from(p.limit).min(count.saturating_sub(u64::from(p.offset)));
    let results: Vec<_> = (0..n)
        .map(|i| {
            let id = u64::from(p.offset) + i;
            serde_json::json!({
                "listing_id": 1000 + id, "shop_id": id % 7, "title": format!("listing {id}"),
                "price": {"amount": 500 + 100 * (id % 11), "divisor": 100, "currency_code": "USD"},
                "num_favorers": id, "views": 0, "tags": ["a", "b"]
            })
        })
        .collect();
    serde_json::json!({ "count": count, "results": results })
}

async fn listings(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Response {
    fake.requests.fetch_add(1, Ordering::SeqCst);
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    fake.keys_seen.lock().unwrap().push(key);
    let next = fake.script.lock().unwrap().pop_front();
    let limits = [
        ("x-limit-per-second", "10"),
        ("x-remaining-this-second", "9"),
        ("x-limit-per-day", "10000"),
        ("x-remaining-today", "9000"),
    ];
    match next {
        None => (limits, axum::Json(page(&p))).into_response(),
        Some(Reply::Slow(d)) => {
            tokio::time::sleep(d).await;
            (limits, axum::Json(page(&p))).into_response()
        }
        Some(Reply::PerSecond429 { headers }) => {
            let body = r#"{"error":"Exceeded per second rate limit"}"#;
            if headers {
                (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], body).into_response()
            } else {
                (StatusCode::TOO_MANY_REQUESTS, body).into_response()
            }
        }
        Some(Reply::Daily429) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "86400")],
            r#"{"error":"Exceeded daily rate limit"}"#,
        )
            .into_response(),
        Some(Reply::Status(s)) => (
            StatusCode::from_u16(s).unwrap(),
            r#"{"error":"upstream trouble"}"#,
        )
            .into_response(),
        Some(Reply::Html) => (
            [("content-type", "text/html")],
            "<html><body>Etsy is down for maintenance</body></html>",
        )
            .into_response(),
        Some(Reply::Truncated) => {
            let full = page(&p).to_string();
            full[..full.len() / 2].to_string().into_response()
        }
        Some(Reply::WrongTypes) => {
            axum::Json(serde_json::json!({"count": "lots", "results": []})).into_response()
        }
        Some(Reply::SharedSecretRequired) => (
            StatusCode::FORBIDDEN,
            r#"{"error":"Shared secret is required in x-api-key header"}"#,
        )
            .into_response(),
    }
}

pub(crate) async fn start_fake(script: Vec<Reply>) -> (Arc<Fake>, String) {
    let fake = Arc::new(Fake::default());
    fake.script.lock().unwrap().extend(script);
    let app = axum::Router::new()
        .route(
            "/v3/application/listings/active",
            axum::routing::get(listings),
        )
        .with_state(fake.clone());
    (fake, crate::collect::serve_fake(app).await)
}

/// Serves a marketplace fake on a free loopback port; its base URL (with the trailing `/`).
pub(crate) async fn serve_fake(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

pub(crate) fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        retries: 4,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        retry_after_cap: Duration::from_millis(50),
        timeout: Duration::from_millis(500),
        job_attempts: 2,
    }
}

/// A store, a worker with one source client, and their counters.
pub(crate) struct Rig {
    pub store: Arc<dyn Store>,
    pub stats: Arc<Stats>,
    pub worker: Arc<Worker>,
    pub source: Source,
}

impl Rig {
    /// A rig whose worker runs the client `make` builds on the rig's store and counters.
    pub async fn with_client(
        db: &TestDb,
        make: impl FnOnce(Arc<dyn Store>, Arc<Stats>) -> Arc<dyn SourceClient>,
    ) -> Rig {
        let store = kwi_store::open(&db.url).await.unwrap();
        let stats = Arc::new(Stats::default());
        let client = make(store.clone(), stats.clone());
        let source = client.source();
        let options = WorkerOptions {
            name: "test-worker".into(),
            lease: Duration::from_secs(30),
            concurrency: 2,
            idle_poll: Duration::from_millis(20),
        };
        let worker = Arc::new(Worker::new(
            store.clone(),
            vec![client],
            options,
            stats.clone(),
        ));
        Rig {
            store,
            stats,
            worker,
            source,
        }
    }

    /// Enqueues the keywords and works until each job is settled (or waits beyond a minute).
    pub async fn collect(&self, keywords: &[&str]) -> Vec<kwi_store::Job> {
        let now = Utc::now();
        let jobs: Vec<NewJob> = keywords
            .iter()
            .map(|k| NewJob {
                source: self.source,
                keyword: Keyword::parse(k).unwrap(),
                period: period(),
                run_at: now,
            })
            .collect();
        self.store.enqueue_jobs(&jobs, now).await.unwrap();
        let keys: Vec<String> = jobs
            .iter()
            .map(|j| idem_key(j.source, &j.keyword, j.period))
            .collect();
        let mut out = self
            .worker
            .clone()
            .drain(&keys, Duration::from_secs(60), &|n| {
                assert!(n <= keys.len() as u64, "settled {n} of {}", keys.len())
            })
            .await
            .unwrap();
        out.sort_by(|a, b| a.keyword.as_str().cmp(b.keyword.as_str()));
        out
    }

    /// The stored listing count of a keyword on the rig's platform (at most one observation).
    pub async fn listing_count(&self, keyword: &str) -> Option<i64> {
        let platform = match self.source {
            Source::Etsy => Platform::Etsy,
            Source::Ebay => Platform::Ebay,
            Source::Amazon => Platform::Amazon,
        };
        let h = self
            .store
            .history(platform, &Keyword::parse(keyword).unwrap())
            .await
            .unwrap();
        assert!(
            h.len() <= 1,
            "one observation per keyword and period: {h:?}"
        );
        h.first().and_then(|p| p.listing_count)
    }
}

async fn new_rig(db: &TestDb, base: &str, pages: u32, per_day: i64) -> Rig {
    let config = EtsyConfig {
        base_url: base.parse().unwrap(),
        api_key: "testkey:testsecret".into(),
        per_second: 200.0,
        per_day,
        pages,
        limit: 100,
    };
    Rig::with_client(db, |store, stats| {
        Arc::new(Etsy::new(config, store, fast_policy(), stats).unwrap())
    })
    .await
}

pub(crate) fn period() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 30).unwrap()
}

async fn pages_are_followed_to_the_count_and_a_second_run_is_a_no_op(db: TestDb) {
    let (fake, url) = start_fake(vec![]).await;
    let rig = new_rig(&db, &url, 10, 10_000).await;
    // "tarot cards" → count 440: offsets 0..=400, five pages; "mug" → 120: two pages.
    let jobs = rig.collect(&["tarot cards", "mug"]).await;
    assert!(jobs.iter().all(|j| j.state == JobState::Done), "{jobs:?}");
    assert_eq!(fake.requests.load(Ordering::SeqCst), 7);
    assert_eq!(rig.listing_count("tarot cards").await, Some(440));
    assert_eq!(rig.listing_count("mug").await, Some(120));
    let h = rig
        .store
        .history(Platform::Etsy, &Keyword::parse("mug").unwrap())
        .await
        .unwrap();
    // Prices 5.00 + 1.00·(id mod 11) over ids 0..120: median 10.00.
    assert_eq!(h[0].price_median, Some(10.0));
    assert_eq!(h[0].source, "etsy-api");
    assert!(
        fake.keys_seen
            .lock()
            .unwrap()
            .iter()
            .all(|k| k == "testkey:testsecret")
    );

    // Same keywords, same period: nothing is asked or written again.
    let jobs = rig.collect(&["tarot cards", "mug"]).await;
    assert!(jobs.iter().all(|j| j.state == JobState::Done));
    assert_eq!(fake.requests.load(Ordering::SeqCst), 7);
    assert_eq!(rig.stats.snapshot().observations_written, 2);
    assert_eq!(
        rig.store.raw_responses(Source::Etsy).await.unwrap().len(),
        7
    );
}
backend_tests!(
    #[tokio::test(flavor = "multi_thread")]
    pages_are_followed_to_the_count_and_a_second_run_is_a_no_op
);

async fn transient_failures_are_retried(db: TestDb) {
    let (fake, url) = start_fake(vec![
        Reply::PerSecond429 { headers: true },
        Reply::PerSecond429 { headers: false },
        Reply::Status(503),
        Reply::Slow(Duration::from_secs(2)), // over the 500 ms timeout
    ])
    .await;
    let rig = new_rig(&db, &url, 1, 10_000).await;
    let jobs = rig.collect(&["mug"]).await;
    assert_eq!(jobs[0].state, JobState::Done, "{jobs:?}");
    let s = rig.stats.snapshot();
    assert_eq!(s.retries, 4);
    assert_eq!(s.rate_limited, 2);
    assert_eq!(fake.requests.load(Ordering::SeqCst), 5);
    assert_eq!(rig.listing_count("mug").await, Some(120));
}
backend_tests!(
    #[tokio::test(flavor = "multi_thread")]
    transient_failures_are_retried
);

async fn persistent_5xx_ends_in_the_dead_letters(db: TestDb) {
    // Two claims of five attempts each, all 500.
    let (fake, url) = start_fake(vec![Reply::Status(500); 10]).await;
    let rig = new_rig(&db, &url, 1, 10_000).await;
    let jobs = rig.collect(&["mug"]).await;
    assert_eq!(jobs[0].state, JobState::Dead, "{jobs:?}");
    assert_eq!(jobs[0].attempts, 2);
    assert_eq!(fake.requests.load(Ordering::SeqCst), 10);
    let dead = rig.store.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].error.contains("500"), "{}", dead[0].error);
    assert_eq!(rig.listing_count("mug").await, None);
}
backend_tests!(
    #[tokio::test(flavor = "multi_thread")]
    persistent_5xx_ends_in_the_dead_letters
);

async fn daily_quota_is_one_request_and_a_rescheduled_job(db: TestDb) {
    let (fake, url) = start_fake(vec![Reply::Daily429]).await;
    let rig = new_rig(&db, &url, 1, 10_000).await;
    let jobs = rig.collect(&["mug"]).await;
    assert_eq!(fake.requests.load(Ordering::SeqCst), 1);
    assert_eq!(jobs[0].state, JobState::Queued);
    let wait = jobs[0].run_at - Utc::now();
    assert!(
        wait > chrono::Duration::hours(23),
        "rescheduled for {}",
        jobs[0].run_at
    );
    assert!(
        jobs[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("daily quota")
    );

    // Our own daily budget: 2 requests a day, three keywords → the third is never sent.
    let (fake, url) = start_fake(vec![]).await;
    let db2 = TestDb::sqlite();
    let rig = new_rig(&db2, &url, 1, 2).await;
    let jobs = rig.collect(&["a1", "b2", "c3"]).await;
    assert_eq!(fake.requests.load(Ordering::SeqCst), 2);
    let states: Vec<_> = jobs.iter().map(|j| j.state).collect();
    assert_eq!(
        states.iter().filter(|s| **s == JobState::Done).count(),
        2,
        "{jobs:?}"
    );
    assert_eq!(states.iter().filter(|s| **s == JobState::Queued).count(), 1);
}
backend_tests!(
    #[tokio::test(flavor = "multi_thread")]
    daily_quota_is_one_request_and_a_rescheduled_job
);

async fn malformed_bodies_write_nothing_and_keep_a_sample(db: TestDb) {
    let (_fake, url) = start_fake(vec![
        Reply::Html,
        Reply::Truncated,
        Reply::WrongTypes,
        Reply::SharedSecretRequired,
    ])
    .await;
    let rig = new_rig(&db, &url, 1, 10_000).await;
    // One worker task, so the replies go to the keywords in queue order.
    let mut jobs = Vec::new();
    for k in ["k1", "k2", "k3", "k4"] {
        jobs.extend(rig.collect(&[k]).await);
    }
    assert!(jobs.iter().all(|j| j.state == JobState::Dead), "{jobs:?}");
    assert!(
        jobs.iter().all(|j| j.attempts == 1),
        "never retried: {jobs:?}"
    );
    for k in ["k1", "k2", "k3", "k4"] {
        assert_eq!(rig.listing_count(k).await, None);
    }
    let dead = rig.store.dead_letters(10).await.unwrap();
    let of = |k: &str| dead.iter().find(|d| d.keyword == k).unwrap().clone();
    assert!(of("k1").body_sample.unwrap().contains("<html>"));
    assert!(of("k2").error.contains("EOF"), "{}", of("k2").error);
    assert!(of("k3").error.contains("`count`"), "{}", of("k3").error);
    let k4 = of("k4");
    assert!(k4.error.contains("keystring:shared_secret"), "{}", k4.error);
    assert!(
        !k4.error.contains("testsecret"),
        "no secret in errors: {}",
        k4.error
    );
}
backend_tests!(
    #[tokio::test(flavor = "multi_thread")]
    malformed_bodies_write_nothing_and_keep_a_sample
);

async fn an_expired_lease_passes_the_job_on_and_the_first_worker_writes_nothing(db: TestDb) {
    let (_fake, url) = start_fake(vec![]).await;
    let rig = new_rig(&db, &url, 1, 10_000).await;
    let now = Utc::now();
    let kw = Keyword::parse("mug").unwrap();
    let job = NewJob {
        source: Source::Etsy,
        keyword: kw.clone(),
        period: period(),
        run_at: now,
    };
    rig.store.enqueue_jobs(&[job], now).await.unwrap();
    // A worker only claims jobs of the sources it has clients for.
    let later = now + chrono::Duration::seconds(30);
    let none = rig
        .store
        .claim_job("ebay-only", &[Source::Ebay], now, later)
        .await
        .unwrap();
    assert_eq!(none, None);
    // A worker that claimed it and died: its lease ran out a second ago.
    let ghost = rig
        .store
        .claim_job(
            "ghost",
            &[Source::Etsy],
            now,
            now - chrono::Duration::seconds(1),
        )
        .await
        .unwrap()
        .unwrap();
    let jobs = rig.collect(&["mug"]).await;
    assert_eq!(jobs[0].state, JobState::Done);
    assert_eq!(jobs[0].attempts, 2);
    // The ghost comes back and tries to finish: refused, nothing written twice.
    let late = rig
        .store
        .finish_job(ghost.id, "ghost", &[], &[], Utc::now())
        .await
        .unwrap();
    assert_eq!(late, None);
    assert_eq!(rig.listing_count("mug").await, Some(120));
}
backend_tests!(
    #[tokio::test(flavor = "multi_thread")]
    an_expired_lease_passes_the_job_on_and_the_first_worker_writes_nothing
);

async fn a_worker_killed_mid_job_loses_nothing(db: TestDb) {
    // Every page takes 2 s, so the first worker is certainly mid-request when it is killed.
    let (fake, url) = start_fake(vec![Reply::Slow(Duration::from_secs(2)); 3]).await;
    let envs = [
        ("KWI_DATABASE_URL", db.url.as_str()),
        ("KWI_ETSY_BASE_URL", url.as_str()),
        ("KWI_ETSY_API_KEY", "testkey:testsecret"),
    ];
    let store = kwi_store::open(&db.url).await.unwrap();
    let now = Utc::now();
    let job = NewJob {
        source: Source::Etsy,
        keyword: Keyword::parse("mug").unwrap(),
        period: period(),
        run_at: now,
    };
    store.enqueue_jobs(&[job], now).await.unwrap();
    let mut first = Command::new(env!("CARGO_BIN_EXE_kwi"))
        .args(["worker", "--lease-secs", "3", "--concurrency", "1"])
        .envs(envs)
        .env_remove("KWI_REDIS_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    crate::helpers::eventually(|| async {
        (fake.requests.load(Ordering::SeqCst) > 0).then_some(())
    })
    .await;
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let key = idem_key(Source::Etsy, &Keyword::parse("mug").unwrap(), period());
    assert_eq!(
        store.job(&key).await.unwrap().unwrap().state,
        JobState::Running
    );
    // A second run picks the job up once the lease runs out.
    let out = Command::new(env!("CARGO_BIN_EXE_kwi"))
        .args([
            "collect",
            "--source",
            "etsy",
            "--keywords",
            "mug",
            "--period",
            "2026-11-30",
        ])
        .envs(envs)
        .env_remove("KWI_REDIS_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 done"), "{stdout}");
    let j = store.job(&key).await.unwrap().unwrap();
    assert_eq!((j.state, j.attempts), (JobState::Done, 2));
    let h = store
        .history(Platform::Etsy, &Keyword::parse("mug").unwrap())
        .await
        .unwrap();
    assert_eq!(h.len(), 1, "written once: {h:?}");
}
backend_tests!(
    #[tokio::test(flavor = "multi_thread")]
    a_worker_killed_mid_job_loses_nothing
);

/// What the raw TCP fake does with one connection.
#[derive(Debug, Clone, Copy)]
enum Wire {
    /// Headers promising a body, half of it, then EOF.
    EofMidBody,
    /// Reads the request, then resets the connection (RST, zero linger).
    Reset,
}

/// A bare TCP server, below HTTP, for the failures an HTTP framework cannot produce: each
/// connection gets the next `Wire` of the script, then whole pages (`Connection: close`).
async fn start_raw(script: Vec<Wire>) -> (Arc<AtomicUsize>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    let connections = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let seen = connections.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            seen.fetch_add(1, Ordering::SeqCst);
            let next = script.lock().unwrap().pop_front();
            tokio::spawn(async move {
                // Read the request head only (the client keeps its side open).
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&head);
                let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
                let p: Params = serde_urlencoded::from_str(query).unwrap();
                let body = page(&p).to_string();
                let sent = match next {
                    Some(Wire::Reset) => {
                        s.set_zero_linger().unwrap();
                        return;
                    }
                    Some(Wire::EofMidBody) => body.len() / 2,
                    None => body.len(),
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&body.as_bytes()[..sent]).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (connections, url)
}

async fn resets_and_eof_mid_body_are_retried(db: TestDb) {
    let (connections, url) = start_raw(vec![Wire::EofMidBody, Wire::Reset]).await;
    let rig = new_rig(&db, &url, 1, 10_000).await;
    let jobs = rig.collect(&["mug"]).await;
    assert_eq!(jobs[0].state, JobState::Done, "{jobs:?}");
    let s = rig.stats.snapshot();
    assert_eq!((s.requests, s.retries), (3, 2), "{s:?}");
    assert!(connections.load(Ordering::SeqCst) >= 3);
    assert_eq!(rig.listing_count("mug").await, Some(120));
    // Nothing of the broken answers was kept as a page.
    assert_eq!(
        rig.store.raw_responses(Source::Etsy).await.unwrap().len(),
        1
    );
}
backend_tests!(
    #[tokio::test(flavor = "multi_thread")]
    resets_and_eof_mid_body_are_retried
);
