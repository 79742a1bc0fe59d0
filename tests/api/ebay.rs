//! The eBay collector against a local fake of the Browse API's item_summary/search and the OAuth
//! client-credentials token endpoint (shaped after eBay's public documentation; no network):
//! pagination, one token shared and refreshed once on a 401, the daily limit (errorId 2001) and
//! refused client credentials.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::Utc;
use kwi::collect::ebay::{Ebay, EbayConfig};
use kwi_features::{Keyword, Platform};
use kwi_store::{JobState, Source};
use serde::Deserialize;

use crate::collect::{Rig, fast_policy};
use crate::helpers::{TestDb, backend_tests};

const CLIENT_ID: &str = "test-app-id";
const CLIENT_SECRET: &str = "test-cert-secret";

#[derive(Debug, Clone)]
enum Reply {
    /// 401 "Invalid access token", whatever the token.
    Unauthorized,
    /// 429 with errorId 2001.
    DailyLimit,
}

#[derive(Default)]
struct Fake {
    script: Mutex<VecDeque<Reply>>,
    searches: AtomicUsize,
    tokens_issued: AtomicUsize,
    valid: Mutex<HashSet<String>>,
    filters: Mutex<Vec<String>>,
    marketplaces: Mutex<Vec<String>>,
}

#[derive(Deserialize)]
struct Params {
    q: String,
    limit: u32,
    offset: u32,
    filter: Option<String>,
}

/// The fake's `total` for a keyword: 100 per character ("drone" → 500).
fn total_of(q: &str) -> u64 {
    100 * q.chars().count() as u64
}

async fn token(State(fake): State<Arc<Fake>>, headers: HeaderMap, body: String) -> Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let form: Vec<(String, String)> = serde_urlencoded::from_str(&body).unwrap_or_default();
    let has = |k: &str, v: &str| form.iter().any(|(a, b)| a == k && b == v);
    if auth != expected {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"error": "invalid_client", "error_description": "client authentication failed"})),
        )
            .into_response();
    }
    if !has("grant_type", "client_credentials")
        || !has("scope", "https://api.ebay.com/oauth/api_scope")
    {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({"error": "invalid_request", "error_description": "request is missing a required parameter or malformed"})),
        )
            .into_response();
    }
    let n = fake.tokens_issued.fetch_add(1, Ordering::SeqCst) + 1;
    let t = format!("v^1.1#i^1#tok{n}");
    fake.valid.lock().unwrap().insert(t.clone());
    axum::Json(serde_json::json!({
        "access_token": t, "expires_in": 7200, "token_type": "Application Access Token"
    }))
    .into_response()
}

async fn search(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Response {
    fake.searches.fetch_add(1, Ordering::SeqCst);
    fake.filters
        .lock()
        .unwrap()
        .push(p.filter.clone().unwrap_or_default());
    fake.marketplaces.lock().unwrap().push(
        headers
            .get("x-ebay-c-marketplace-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
    );
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string();
    let unauthorized = || {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"errors": [{"errorId": 1001, "domain": "OAuth", "category": "REQUEST", "message": "Invalid access token", "longMessage": "Invalid access token. Check the value of the Authorization HTTP request header."}]})),
        )
            .into_response()
    };
    match fake.script.lock().unwrap().pop_front() {
        Some(Reply::Unauthorized) => return unauthorized(),
        Some(Reply::DailyLimit) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                axum::Json(serde_json::json!({"errors": [{"errorId": 2001, "domain": "ACCESS", "category": "REQUEST", "message": "Too many requests. The request limit has been reached for the resource."}]})),
            )
                .into_response();
        }
        None => {}
    }
    if !fake.valid.lock().unwrap().contains(&bearer) {
        return unauthorized();
    }
    let total = total_of(&p.q);
    let n = u64::from(p.limit).min(total.saturating_sub(u64::from(p.offset)));
    let items: Vec<_> = (0..n)
        .map(|i| {
            let id = u64::from(p.offset) + i;
            serde_json::json!({
                "itemId": format!("v1|{id}|0"), "title": format!("item {id}"),
                "price": {"value": format!("{}.00", 5 + id % 11), "currency": "USD"},
                "seller": {"username": format!("seller{}", id % 9), "feedbackPercentage": "99.2", "feedbackScore": 120},
                "buyingOptions": ["FIXED_PRICE"], "condition": "New"
            })
        })
        .collect();
    let mut body = serde_json::json!({
        "href": "…", "total": total, "limit": p.limit, "offset": p.offset
    });
    if !items.is_empty() {
        body["itemSummaries"] = serde_json::Value::Array(items);
    }
    axum::Json(body).into_response()
}

async fn start_fake(script: Vec<Reply>) -> (Arc<Fake>, String) {
    let fake = Arc::new(Fake::default());
    fake.script.lock().unwrap().extend(script);
    let app = axum::Router::new()
        .route("/identity/v1/oauth2/token", axum::routing::post(token))
        .route(
            "/buy/browse/v1/item_summary/search",
            axum::routing::get(search),
        )
        .with_state(fake.clone());
    (fake, crate::collect::serve_fake(app).await)
}

async fn ebay_rig(db: &TestDb, base: &str, secret: &str) -> Rig {
    let config = EbayConfig {
        base_url: base.parse().unwrap(),
        client_id: CLIENT_ID.into(),
        client_secret: secret.into(),
        marketplace: "EBAY_US".into(),
        buying_options: "FIXED_PRICE|AUCTION".into(),
        per_second: 200.0,
        per_day: 5000,
        pages: 10,
        limit: 200,
    };
    Rig::with_client(db, |store, stats| {
        Arc::new(Ebay::new(config, store, fast_policy(), stats).unwrap())
    })
    .await
}

async fn ebay_pages_share_one_token_and_count_every_buying_option(db: TestDb) {
    let (fake, url) = start_fake(vec![]).await;
    let rig = ebay_rig(&db, &url, CLIENT_SECRET).await;
    // "drone" → total 500: offsets 0, 200, 400; "mug" → 300: offsets 0, 200.
    let jobs = rig.collect(&["drone", "mug"]).await;
    assert!(jobs.iter().all(|j| j.state == JobState::Done), "{jobs:?}");
    assert_eq!(fake.searches.load(Ordering::SeqCst), 5);
    assert_eq!(
        fake.tokens_issued.load(Ordering::SeqCst),
        1,
        "one token, cached"
    );
    assert_eq!(rig.listing_count("drone").await, Some(500));
    assert_eq!(rig.listing_count("mug").await, Some(300));
    let h = rig
        .store
        .history(Platform::Ebay, &Keyword::parse("mug").unwrap())
        .await
        .unwrap();
    // Prices "5.00" + 1·(id mod 11) over ids 0..300: median 10.
    assert_eq!(h[0].price_median, Some(10.0));
    assert_eq!(h[0].source, "ebay-api");
    assert!(
        fake.filters
            .lock()
            .unwrap()
            .iter()
            .all(|f| f == "buyingOptions:{FIXED_PRICE|AUCTION}"),
        "{:?}",
        fake.filters.lock().unwrap()
    );
    assert!(
        fake.marketplaces
            .lock()
            .unwrap()
            .iter()
            .all(|m| m == "EBAY_US")
    );
    // The token endpoint is not counted against the Browse budget.
    let used = rig
        .store
        .budget_used(
            Source::Ebay,
            &kwi::collect::credential_id(CLIENT_ID),
            Utc::now().date_naive(),
        )
        .await
        .unwrap();
    assert_eq!(used, 5);
}
backend_tests!(
    #[tokio::test(flavor = "multi_thread")]
    ebay_pages_share_one_token_and_count_every_buying_option
);

async fn a_401_refreshes_the_token_once(db: TestDb) {
    // One 401: a new token, the page asked again, the job done.
    let (fake, url) = start_fake(vec![Reply::Unauthorized]).await;
    let rig = ebay_rig(&db, &url, CLIENT_SECRET).await;
    let jobs = rig.collect(&["mug"]).await;
    assert_eq!(jobs[0].state, JobState::Done, "{jobs:?}");
    assert_eq!(fake.tokens_issued.load(Ordering::SeqCst), 2);
    assert_eq!(fake.searches.load(Ordering::SeqCst), 3); // 401, then pages at 0 and 200
    assert_eq!(rig.listing_count("mug").await, Some(300));

    // A 401 to the fresh token too: refused for good after exactly one refresh.
    let (fake, url) = start_fake(vec![Reply::Unauthorized, Reply::Unauthorized]).await;
    let db2 = TestDb::sqlite();
    let rig = ebay_rig(&db2, &url, CLIENT_SECRET).await;
    let jobs = rig.collect(&["mug"]).await;
    assert_eq!(jobs[0].state, JobState::Dead, "{jobs:?}");
    assert_eq!(jobs[0].attempts, 1, "a refusal is not retried");
    assert_eq!(fake.tokens_issued.load(Ordering::SeqCst), 2);
    assert_eq!(fake.searches.load(Ordering::SeqCst), 2);
    assert!(
        jobs[0].last_error.as_deref().unwrap().contains("401"),
        "{jobs:?}"
    );
}
backend_tests!(
    #[tokio::test(flavor = "multi_thread")]
    a_401_refreshes_the_token_once
);

async fn the_daily_limit_is_one_request_and_a_rescheduled_job(db: TestDb) {
    let (fake, url) = start_fake(vec![Reply::DailyLimit]).await;
    let rig = ebay_rig(&db, &url, CLIENT_SECRET).await;
    let jobs = rig.collect(&["mug"]).await;
    assert_eq!(fake.searches.load(Ordering::SeqCst), 1);
    assert_eq!(jobs[0].state, JobState::Queued, "{jobs:?}");
    assert!(
        jobs[0].run_at - Utc::now() > chrono::Duration::hours(23),
        "rescheduled for {}",
        jobs[0].run_at
    );
    assert_eq!(rig.listing_count("mug").await, None);
}
backend_tests!(
    #[tokio::test(flavor = "multi_thread")]
    the_daily_limit_is_one_request_and_a_rescheduled_job
);

async fn refused_client_credentials_name_the_setting_not_the_secret(db: TestDb) {
    let (fake, url) = start_fake(vec![]).await;
    let rig = ebay_rig(&db, &url, "wrong-cert-secret").await;
    let jobs = rig.collect(&["mug"]).await;
    assert_eq!(jobs[0].state, JobState::Dead, "{jobs:?}");
    assert_eq!(fake.searches.load(Ordering::SeqCst), 0);
    let dead = rig.store.dead_letters(10).await.unwrap();
    let e = &dead[0].error;
    assert!(
        e.contains("KWI_EBAY_CLIENT_SECRET") && e.contains("invalid_client"),
        "{e}"
    );
    assert!(!e.contains("wrong-cert-secret"), "no secret in errors: {e}");
}
backend_tests!(
    #[tokio::test(flavor = "multi_thread")]
    refused_client_credentials_name_the_setting_not_the_secret
);
