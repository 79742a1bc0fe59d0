//! The Amazon SP-API collector against a local fake of Catalog Items `searchCatalogItems` and the
//! Login with Amazon token endpoint (shaped after Amazon's public documentation; no network):
//! the count, the per-second 429 (`QuotaExceeded`) retried at the rate the API reports, an expired
//! token refreshed once, a refused refresh token.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use kwi::collect::amazon::{SpApi, SpApiConfig};
use kwi::collect::search_terms::{REPORT, ReportOptions};
use kwi_store::{JobState, Source};
use serde::Deserialize;

use crate::collect::{Rig, fast_policy};
use crate::helpers::{TestDb, backend_tests};

const REFRESH_TOKEN: &str = "Atzr|test-refresh-token";

#[derive(Debug, Clone)]
enum Reply {
    QuotaExceeded,
    Expired,
}

#[derive(Default)]
struct Fake {
    script: Mutex<VecDeque<Reply>>,
    searches: AtomicUsize,
    tokens_issued: AtomicUsize,
    valid: Mutex<HashSet<String>>,
    marketplaces: Mutex<Vec<String>>,
}

#[derive(Deserialize)]
struct Params {
    keywords: String,
    #[serde(rename = "marketplaceIds")]
    marketplace_ids: String,
}

async fn token(State(fake): State<Arc<Fake>>, body: String) -> Response {
    let form: Vec<(String, String)> = serde_urlencoded::from_str(&body).unwrap_or_default();
    let get = |k: &str| form.iter().find(|(a, _)| a == k).map(|(_, b)| b.as_str());
    if get("grant_type") != Some("refresh_token")
        || get("client_id") != Some("amzn1.application-oa2-client.test")
        || get("client_secret") != Some("test-client-secret")
    {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"error": "invalid_client", "error_description": "Client authentication failed"})),
        )
            .into_response();
    }
    if get("refresh_token") != Some(REFRESH_TOKEN) {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({"error": "invalid_grant", "error_description": "The request has an invalid grant parameter : refresh_token"})),
        )
            .into_response();
    }
    let n = fake.tokens_issued.fetch_add(1, Ordering::SeqCst) + 1;
    let t = format!("Atza|access-{n}");
    fake.valid.lock().unwrap().insert(t.clone());
    axum::Json(serde_json::json!({
        "access_token": t, "refresh_token": REFRESH_TOKEN, "token_type": "bearer", "expires_in": 3600
    }))
    .into_response()
}

async fn search(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Response {
    fake.searches.fetch_add(1, Ordering::SeqCst);
    fake.marketplaces
        .lock()
        .unwrap()
        .push(p.marketplace_ids.clone());
    let token = headers
        .get("x-amz-access-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let denied = |details: &str| {
        (
            StatusCode::FORBIDDEN,
            axum::Json(serde_json::json!({"errors": [{"code": "Unauthorized", "message": "Access to requested resource is denied.", "details": details}]})),
        )
            .into_response()
    };
    match fake.script.lock().unwrap().pop_front() {
        Some(Reply::QuotaExceeded) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("x-amzn-ratelimit-limit", "1.0")],
                axum::Json(serde_json::json!({"errors": [{"code": "QuotaExceeded", "message": "You exceeded your quota for the requested resource.", "details": ""}]})),
            )
                .into_response();
        }
        Some(Reply::Expired) => return denied("The access token you provided has expired."),
        None => {}
    }
    if !fake.valid.lock().unwrap().contains(&token) {
        return denied("The access token you provided is revoked, malformed or invalid.");
    }
    let n = 250 * p.keywords.chars().count() as u64;
    (
        [("x-amzn-ratelimit-limit", "2.0")],
        axum::Json(serde_json::json!({
            "numberOfResults": n,
            "pagination": {"nextToken": "next"},
            "refinements": {"brands": [{"numberOfResults": n, "brandName": "Acme"}], "classifications": []},
            "items": [{"asin": "B07N4M94X4", "summaries": [{"marketplaceId": p.marketplace_ids, "itemName": p.keywords, "brand": "Acme"}]}]
        })),
    )
        .into_response()
}

async fn start_fake(script: Vec<Reply>) -> (Arc<Fake>, String) {
    let fake = Arc::new(Fake::default());
    fake.script.lock().unwrap().extend(script);
    let app = axum::Router::new()
        .route("/auth/o2/token", axum::routing::post(token))
        .route("/catalog/2022-04-01/items", axum::routing::get(search))
        .with_state(fake.clone());
    (fake, crate::collect::serve_fake(app).await)
}

/// The SP-API settings the fakes expect, at `base`.
fn spapi_config(base: &str, refresh_token: &str, reports: ReportOptions) -> SpApiConfig {
    SpApiConfig {
        base_url: base.parse().unwrap(),
        token_url: format!("{base}auth/o2/token").parse().unwrap(),
        client_id: "amzn1.application-oa2-client.test".into(),
        client_secret: "test-client-secret".into(),
        refresh_token: refresh_token.into(),
        marketplace: "ATVPDKIKX0DER".into(),
        per_second: 200.0,
        per_day: 1000,
        reports,
    }
}

async fn spapi_rig(db: &TestDb, base: &str, refresh_token: &str) -> Rig {
    let config = spapi_config(base, refresh_token, ReportOptions::default());
    Rig::with_client(db, |store, stats| {
        Arc::new(SpApi::new(config, store, fast_policy(), stats).unwrap())
    })
    .await
}

async fn catalog_counts_are_collected_with_one_token(db: TestDb) {
    let (fake, url) = start_fake(vec![Reply::QuotaExceeded]).await;
    let rig = spapi_rig(&db, &url, REFRESH_TOKEN).await;
    let jobs = rig.collect(&["tarot cards", "mug"]).await;
    assert!(jobs.iter().all(|j| j.state == JobState::Done), "{jobs:?}");
    // One 429 retried, then one search per keyword; one token for both.
    assert_eq!(fake.searches.load(Ordering::SeqCst), 3);
    assert_eq!(rig.stats.snapshot().rate_limited, 1);
    assert_eq!(fake.tokens_issued.load(Ordering::SeqCst), 1);
    assert_eq!(rig.listing_count("tarot cards").await, Some(2750));
    assert_eq!(rig.listing_count("mug").await, Some(750));
    assert!(
        fake.marketplaces
            .lock()
            .unwrap()
            .iter()
            .all(|m| m == "ATVPDKIKX0DER")
    );
}
backend_tests!(
    #[tokio::test(flavor = "multi_thread")]
    catalog_counts_are_collected_with_one_token
);

async fn an_expired_token_is_refreshed_once(db: TestDb) {
    let (fake, url) = start_fake(vec![Reply::Expired]).await;
    let rig = spapi_rig(&db, &url, REFRESH_TOKEN).await;
    let jobs = rig.collect(&["mug"]).await;
    assert_eq!(jobs[0].state, JobState::Done, "{jobs:?}");
    assert_eq!(fake.tokens_issued.load(Ordering::SeqCst), 2);
    assert_eq!(fake.searches.load(Ordering::SeqCst), 2);

    // Refused again with the fresh token: dead after exactly one refresh.
    let (fake, url) = start_fake(vec![Reply::Expired, Reply::Expired]).await;
    let db2 = TestDb::sqlite();
    let rig = spapi_rig(&db2, &url, REFRESH_TOKEN).await;
    let jobs = rig.collect(&["mug"]).await;
    assert_eq!(jobs[0].state, JobState::Dead, "{jobs:?}");
    assert_eq!(fake.tokens_issued.load(Ordering::SeqCst), 2);
    assert!(
        jobs[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("Catalog Items"),
        "{jobs:?}"
    );
}
backend_tests!(
    #[tokio::test(flavor = "multi_thread")]
    an_expired_token_is_refreshed_once
);

async fn a_refused_refresh_token_names_the_setting_not_the_token(db: TestDb) {
    let (fake, url) = start_fake(vec![]).await;
    let rig = spapi_rig(&db, &url, "Atzr|revoked").await;
    let jobs = rig.collect(&["mug"]).await;
    assert_eq!(jobs[0].state, JobState::Dead, "{jobs:?}");
    assert_eq!(fake.searches.load(Ordering::SeqCst), 0);
    let e = jobs[0].last_error.clone().unwrap();
    assert!(
        e.contains("KWI_SPAPI_REFRESH_TOKEN") && e.contains("invalid_grant"),
        "{e}"
    );
    assert!(
        !e.contains("Atzr|revoked") && !e.contains("test-client-secret"),
        "{e}"
    );
}
backend_tests!(
    #[tokio::test(flavor = "multi_thread")]
    a_refused_refresh_token_names_the_setting_not_the_token
);

/// What the report fake answers to getReport, in turn (then `DONE`).
#[derive(Default)]
struct Reports {
    statuses: Mutex<VecDeque<&'static str>>,
    /// The week the document says it is for (default: the week asked).
    document_week: Mutex<Option<String>>,
    creates: Mutex<Vec<serde_json::Value>>,
    polls: AtomicUsize,
    documents: AtomicUsize,
    downloads: AtomicUsize,
    base: Mutex<String>,
}

/// The rows of the document: the Amazon.in category keywords of the sample (real category
/// names), with made-up ranks and shares; labelled so in the test that reads them.
const TERMS: [(&str, u64, f64, f64); 4] = [
    ("tarot cards", 1204, 0.2461, 0.105),
    ("tarot cards", 1204, 0.1, 0.05),
    ("usb cables", 87, 0.31, 0.2),
    ("smart watches", 15, 0.12, 0.03),
];

fn authorised(fake: &Fake, headers: &HeaderMap) -> bool {
    let token = headers
        .get("x-amz-access-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    fake.valid.lock().unwrap().contains(token)
}

async fn create_report(
    State((fake, reports)): State<(Arc<Fake>, Arc<Reports>)>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<serde_json::Value>,
) -> Response {
    if !authorised(&fake, &headers) {
        return StatusCode::FORBIDDEN.into_response();
    }
    let week = body["dataStartTime"]
        .as_str()
        .unwrap_or("")
        .get(..10)
        .unwrap_or("")
        .to_string();
    reports.document_week.lock().unwrap().get_or_insert(week);
    reports.creates.lock().unwrap().push(body);
    (
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({"reportId": "50039018789"})),
    )
        .into_response()
}

async fn get_report(
    State((fake, reports)): State<(Arc<Fake>, Arc<Reports>)>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    if !authorised(&fake, &headers) {
        return StatusCode::FORBIDDEN.into_response();
    }
    reports.polls.fetch_add(1, Ordering::SeqCst);
    let status = reports
        .statuses
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or("DONE");
    let mut answer = serde_json::json!({
        "reportId": id, "reportType": "GET_BRAND_ANALYTICS_SEARCH_TERMS_REPORT",
        "processingStatus": status, "marketplaceIds": ["ATVPDKIKX0DER"],
        "createdTime": "2026-11-30T10:00:00Z"
    });
    if status == "DONE" {
        answer["reportDocumentId"] = "amzn1.spdoc.1.4.na.test".into();
    }
    axum::Json(answer).into_response()
}

async fn get_document(
    State((fake, reports)): State<(Arc<Fake>, Arc<Reports>)>,
    headers: HeaderMap,
) -> Response {
    if !authorised(&fake, &headers) {
        return StatusCode::FORBIDDEN.into_response();
    }
    reports.documents.fetch_add(1, Ordering::SeqCst);
    let base = reports.base.lock().unwrap().clone();
    axum::Json(serde_json::json!({
        "reportDocumentId": "amzn1.spdoc.1.4.na.test",
        "url": format!("{base}download/doc.json.gz?X-Amz-Signature=presigned-secret"),
        "compressionAlgorithm": "GZIP"
    }))
    .into_response()
}

async fn download(
    State((_, reports)): State<(Arc<Fake>, Arc<Reports>)>,
    headers: HeaderMap,
) -> Response {
    use std::io::Write;
    reports.downloads.fetch_add(1, Ordering::SeqCst);
    // A pre-signed URL carries its own authorisation: a token sent along is a leak.
    assert!(headers.get("x-amz-access-token").is_none());
    let week = reports
        .document_week
        .lock()
        .unwrap()
        .clone()
        .unwrap_or_default();
    let rows: Vec<serde_json::Value> = TERMS
        .iter()
        .map(|(t, rank, click, conv)| {
            serde_json::json!({
                "departmentName": "Amazon.com", "searchTerm": t, "searchFrequencyRank": rank,
                "clickedAsin": "B000000001", "clickedItemName": "item", "clickShareRank": 1,
                "clickShare": click, "conversionShare": conv
            })
        })
        .collect();
    let doc = serde_json::json!({
        "reportSpecification": {"reportType": "GET_BRAND_ANALYTICS_SEARCH_TERMS_REPORT",
            "reportOptions": {"reportPeriod": "WEEK"}, "dataStartTime": week,
            "dataEndTime": "2026-11-28", "marketplaceIds": ["ATVPDKIKX0DER"]},
        "dataByDepartmentAndSearchTerm": rows
    });
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(doc.to_string().as_bytes()).unwrap();
    gz.finish().unwrap().into_response()
}

async fn start_reports_fake(statuses: Vec<&'static str>) -> (Arc<Fake>, Arc<Reports>, String) {
    let fake = Arc::new(Fake::default());
    let reports = Arc::new(Reports::default());
    reports.statuses.lock().unwrap().extend(statuses);
    let app = axum::Router::new()
        .route("/auth/o2/token", axum::routing::post(token))
        .with_state(fake.clone());
    let api = axum::Router::new()
        .route(
            "/reports/2021-06-30/reports",
            axum::routing::post(create_report),
        )
        .route(
            "/reports/2021-06-30/reports/{id}",
            axum::routing::get(get_report),
        )
        .route(
            "/reports/2021-06-30/documents/{id}",
            axum::routing::get(get_document),
        )
        .route("/download/doc.json.gz", axum::routing::get(download))
        .with_state((fake.clone(), reports.clone()));
    let url = crate::collect::serve_fake(app.merge(api)).await;
    *reports.base.lock().unwrap() = url.clone();
    (fake, reports, url)
}

async fn report_rig(db: &TestDb, base: &str) -> Rig {
    let config = spapi_config(
        base,
        REFRESH_TOKEN,
        ReportOptions {
            poll: std::time::Duration::from_millis(20),
            timeout: std::time::Duration::from_secs(20),
            max_bytes: 1 << 20,
        },
    );
    Rig::with_client(db, |store, stats| {
        Arc::new(SpApi::new(config, store, fast_policy(), stats).unwrap())
    })
    .await
}

fn week() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
}

async fn run_report(rig: &Rig) -> kwi_store::Job {
    let key = rig
        .store
        .enqueue_report(Source::Amazon, REPORT, week(), chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(key, "amazon-report:search-terms:2026-11-22");
    let jobs = rig
        .worker
        .clone()
        .drain(&[key], std::time::Duration::from_secs(60), &|_| {})
        .await
        .unwrap();
    jobs.into_iter().next().unwrap()
}

/// The Brand Analytics Search Terms report (fake document: real category keywords of the sample
/// with made-up ranks and shares): created, polled until DONE, its document fetched and
/// downloaded (gzip, no token sent to the pre-signed URL), stored as ranks and shares (no
/// volume), kept without the pre-signature, and re-readable by replay.
async fn search_terms_report_is_created_polled_downloaded_and_stored(db: TestDb) {
    let (fake, reports, url) = start_reports_fake(vec!["IN_QUEUE", "IN_PROGRESS"]).await;
    let rig = report_rig(&db, &url).await;
    let job = run_report(&rig).await;
    assert_eq!(job.state, JobState::Done, "{job:?}");
    let creates = reports.creates.lock().unwrap().clone();
    assert_eq!(creates.len(), 1);
    assert_eq!(
        creates[0]["reportType"],
        "GET_BRAND_ANALYTICS_SEARCH_TERMS_REPORT"
    );
    assert_eq!(creates[0]["reportOptions"]["reportPeriod"], "WEEK");
    assert_eq!(creates[0]["marketplaceIds"][0], "ATVPDKIKX0DER");
    assert_eq!(creates[0]["dataStartTime"], "2026-11-22T00:00:00Z");
    assert_eq!(creates[0]["dataEndTime"], "2026-11-28T23:59:59Z");
    assert_eq!(reports.polls.load(Ordering::SeqCst), 3);
    assert_eq!(reports.documents.load(Ordering::SeqCst), 1);
    assert_eq!(reports.downloads.load(Ordering::SeqCst), 1);
    assert_eq!(fake.tokens_issued.load(Ordering::SeqCst), 1);

    let rows: Vec<kwi_store::ExportObservation> = rig
        .store
        .export_observations(&kwi_store::ExportFilter::default())
        .map(|r| r.unwrap())
        .collect()
        .await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    let tarot = rows.iter().find(|r| r.keyword == "tarot cards").unwrap();
    assert_eq!(
        (
            tarot.platform.as_str(),
            tarot.period_start,
            tarot.search_frequency_rank
        ),
        ("amazon", week(), Some(1204))
    );
    assert_eq!(tarot.search_volume, None);
    assert!(
        (tarot.click_share.unwrap() - 0.3461).abs() < 1e-9,
        "{tarot:?}"
    );
    assert!((tarot.conversion_share.unwrap() - 0.155).abs() < 1e-9);
    assert_eq!(tarot.source, "amazon-brand-analytics");

    let kept = rig.store.raw_responses(Source::Amazon).await.unwrap();
    assert!(
        kept.iter()
            .any(|k| k.raw.url.ends_with("/download/doc.json.gz")),
        "{:?}",
        kept.iter().map(|k| &k.raw.url).collect::<Vec<_>>()
    );
    assert!(kept.iter().all(|k| !k.raw.url.contains("presigned-secret")));
    // Replay reads the kept document again.
    let bodies: Vec<Vec<u8>> = kept
        .iter()
        .filter(|k| k.raw.status == 200)
        .map(|k| zstd::decode_all(&k.raw.body_zstd[..]).unwrap())
        .collect();
    let client = SpApi::new(
        spapi_config(&url, REFRESH_TOKEN, ReportOptions::default()),
        rig.store.clone(),
        fast_policy(),
        rig.stats.clone(),
    )
    .unwrap();
    let again = kwi::collect::SourceClient::reparse(&client, &job, &bodies).unwrap();
    assert_eq!(again.len(), 3);

    // The same week again: already done, nothing asked of Amazon.
    let job = run_report(&rig).await;
    assert_eq!(job.state, JobState::Done);
    assert_eq!(reports.creates.lock().unwrap().len(), 1);
}
backend_tests!(
    #[tokio::test(flavor = "multi_thread")]
    search_terms_report_is_created_polled_downloaded_and_stored
);

/// A report Amazon cancels (no data for the week) and a document for another week than asked
/// are dead letters that say so; nothing is written.
async fn cancelled_reports_and_wrong_documents_are_dead_letters(db: TestDb) {
    let (_fake, reports, url) = start_reports_fake(vec!["IN_PROGRESS", "CANCELLED"]).await;
    let rig = report_rig(&db, &url).await;
    let job = run_report(&rig).await;
    assert_eq!(job.state, JobState::Dead, "{job:?}");
    let e = job.last_error.unwrap();
    assert!(
        e.contains("cancelled report 50039018789") && e.contains("2026-11-22"),
        "{e}"
    );
    assert_eq!(reports.downloads.load(Ordering::SeqCst), 0);

    let db2 = TestDb::sqlite();
    let (_fake, reports, url) = start_reports_fake(vec![]).await;
    *reports.document_week.lock().unwrap() = Some("2026-11-15".into());
    let rig = report_rig(&db2, &url).await;
    let job = run_report(&rig).await;
    assert_eq!(job.state, JobState::Dead, "{job:?}");
    let dead = rig.store.dead_letters(5).await.unwrap();
    assert!(
        dead[0].error.contains("week of 2026-11-15") && dead[0].error.contains("2026-11-22"),
        "{dead:?}"
    );
    let n = rig
        .store
        .export_observations(&kwi_store::ExportFilter::default())
        .count()
        .await;
    assert_eq!(n, 0);
}
backend_tests!(
    #[tokio::test(flavor = "multi_thread")]
    cancelled_reports_and_wrong_documents_are_dead_letters
);

/// `kwi collect --report search-terms` refuses a week that does not start on a Sunday, and a
/// source without the report, before touching the store.
#[test]
fn the_report_command_checks_its_week_and_source() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kwi"))
            .args(args)
            .env("KWI_DATABASE_URL", "sqlite:/nonexistent/dir/kwi.db")
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let e = run(&[
        "collect",
        "--source",
        "amazon",
        "--report",
        "search-terms",
        "--period",
        "2026-11-23",
    ]);
    assert!(
        e.contains("2026-11-23 is a Monday") && e.contains("2026-11-22"),
        "{e}"
    );
    let e = run(&["collect", "--source", "etsy", "--report", "search-terms"]);
    assert!(e.contains("pass --source amazon"), "{e}");
}
