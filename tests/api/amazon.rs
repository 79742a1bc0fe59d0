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
use kwi::collect::amazon::{SpApi, SpApiConfig};
use kwi_store::JobState;
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

async fn spapi_rig(db: &TestDb, base: &str, refresh_token: &str) -> Rig {
    let config = SpApiConfig {
        base_url: base.parse().unwrap(),
        token_url: format!("{base}auth/o2/token").parse().unwrap(),
        client_id: "amzn1.application-oa2-client.test".into(),
        client_secret: "test-client-secret".into(),
        refresh_token: refresh_token.into(),
        marketplace: "ATVPDKIKX0DER".into(),
        per_second: 200.0,
        per_day: 1000,
    };
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
