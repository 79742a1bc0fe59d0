//! The router through `tower::ServiceExt::oneshot`, on both backends and both caches.

use axum::http::StatusCode;
use kwi::cache::{DEFAULT_LOCAL_BYTES, DEFAULT_TTL};

use crate::helpers::{Backend, TestApp, backend_tests, redis_cache};

/// The sample behind the cache each backend is served with here: PostgreSQL with Redis (and the
/// default near cache in front of it), SQLite with the in-process cache.
async fn sample_app(app: TestApp) -> TestApp {
    app.load_sample().await;
    match app.backend {
        Backend::Postgres => {
            app.with_cache(redis_cache(DEFAULT_TTL, DEFAULT_LOCAL_BYTES).await)
                .await
        }
        Backend::Sqlite => app,
    }
}

async fn health_and_readiness_name_the_store_model_and_cache(app: TestApp) {
    let app = sample_app(app).await;
    let name = app.name;
    let res = app.get("/healthz").await;
    assert_eq!(
        (res.status, res.json()["status"].as_str()),
        (StatusCode::OK, Some("ok")),
        "{name}"
    );
    let res = app.get("/readyz").await;
    let body = res.json();
    assert_eq!(res.status, StatusCode::OK, "{name}: {body}");
    assert_eq!(body["status"], "ready", "{name}");
    assert_eq!(body["store"]["backend"], name, "{name}");
    assert_eq!(body["model"]["version"], "builtin-snaive-v1", "{name}");
    let role = match app.backend {
        Backend::Postgres => "near cache in front of Redis",
        Backend::Sqlite => "cache",
    };
    assert_eq!(body["cache"]["in_process"]["role"], role, "{name}: {body}");
    assert_eq!(
        body["cache"]["in_process"]["max_bytes"], DEFAULT_LOCAL_BYTES,
        "{name}: {body}"
    );
}
backend_tests!(health_and_readiness_name_the_store_model_and_cache);

/// Keywords are normalised on the way in: "Mobile%20Phone" is "mobile phone".
async fn a_keyword_is_normalised_and_served_with_its_history(app: TestApp) {
    let app = sample_app(app).await;
    let name = app.name;
    let res = app.get("/v1/keywords/google/Mobile%20Phone").await;
    let body = res.json();
    assert_eq!(res.status, StatusCode::OK, "{name}: {body}");
    assert_eq!(body["keyword"], "mobile phone");
    assert_eq!(body["history"].as_array().unwrap().len(), 679, "{name}");
    assert_eq!(body["history"][0]["period_start"], "2006-01-01", "{name}");
    assert_eq!(body["history"][0]["search_volume"], 81.0, "{name}");
    assert_eq!(
        body["snapshot"]["trend_data"].as_array().unwrap().len(),
        52,
        "{name}"
    );
}
backend_tests!(a_keyword_is_normalised_and_served_with_its_history);

async fn bad_keyword_requests_are_json_errors(app: TestApp) {
    let app = sample_app(app).await;
    let name = app.name;
    for (uri, status, field) in [
        (
            "/v1/keywords/walmart/coffee",
            StatusCode::BAD_REQUEST,
            Some("platform"),
        ),
        (
            "/v1/keywords/google/%20%20",
            StatusCode::BAD_REQUEST,
            Some("keyword"),
        ),
        (
            "/v1/keywords/google/unheard%20of",
            StatusCode::NOT_FOUND,
            None,
        ),
        ("/v1/nothing", StatusCode::NOT_FOUND, None),
    ] {
        let res = app.get(uri).await;
        let body = res.json();
        assert_eq!(res.status, status, "{name} {uri}: {body}");
        assert_eq!(
            body["error"]["field"].as_str(),
            field,
            "{name} {uri}: {body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{uri}"
        );
    }
    let long = "k".repeat(201);
    let res = app.get(&format!("/v1/keywords/etsy/{long}")).await;
    let body = res.json();
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limit is 200"),
        "{body}"
    );
}
backend_tests!(bad_keyword_requests_are_json_errors);

/// The sample plus the same keyword on a second platform, for the cross-market view.
async fn with_etsy_coffee(app: TestApp) -> TestApp {
    app.load_sample().await;
    let mut values = [None; kwi_features::ingest::VALUE_COUNT];
    values[0] = Some(42.0);
    let etsy_coffee = kwi_features::ingest::Observation {
        platform: kwi_features::Platform::Etsy,
        keyword: kwi_features::Keyword::parse("coffee").unwrap(),
        period_start: chrono::NaiveDate::from_ymd_opt(2024, 1, 7).unwrap(),
        values,
        source: "test".into(),
        line: 1,
    };
    app.store.import(&[etsy_coffee], &|_| {}).await.unwrap();
    app
}

/// Prefix matches rank before the fuzzy ones ("tobacco" contains "co").
async fn search_ranks_prefix_matches_first(app: TestApp) {
    let app = with_etsy_coffee(app).await;
    let name = app.name;
    let res = app.get("/v1/keywords/search?q=CO&limit=5").await;
    let body = res.json();
    assert_eq!(res.status, StatusCode::OK, "{name}: {body}");
    let hits = body["results"].as_array().unwrap();
    assert!(!hits.is_empty() && hits.len() <= 5, "{name}: {body}");
    assert_eq!(hits[0]["keyword"], "coffee", "{name}: {body}");
    let flags: Vec<bool> = hits
        .iter()
        .map(|h| h["prefix"].as_bool().unwrap())
        .collect();
    assert!(flags.windows(2).all(|w| w[0] >= w[1]), "{name}: {body}");
    for h in hits {
        let k = h["keyword"].as_str().unwrap();
        assert_eq!(
            h["prefix"].as_bool().unwrap(),
            k.starts_with("co"),
            "{name}: {k}"
        );
    }
}
backend_tests!(search_ranks_prefix_matches_first);

async fn search_filters_by_platform(app: TestApp) {
    let app = with_etsy_coffee(app).await;
    let body = app
        .get("/v1/keywords/search?q=coffee&platform=etsy")
        .await
        .json();
    assert_eq!(
        body["results"].as_array().unwrap().len(),
        1,
        "{}: {body}",
        app.name
    );
}
backend_tests!(search_filters_by_platform);

/// Not a prefix, but similar / contained: "insurance" finds "auto insurance", "life insurance".
async fn search_finds_keywords_that_contain_the_query(app: TestApp) {
    let app = with_etsy_coffee(app).await;
    let body = app.get("/v1/keywords/search?q=insurance").await.json();
    let found: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["keyword"].as_str().unwrap())
        .collect();
    assert!(
        found.contains(&"auto insurance") && found.contains(&"life insurance"),
        "{}: {found:?}",
        app.name
    );
}
backend_tests!(search_finds_keywords_that_contain_the_query);

/// LIKE wildcards in the query are literal.
async fn search_takes_like_wildcards_literally(app: TestApp) {
    let app = with_etsy_coffee(app).await;
    let body = app.get("/v1/keywords/search?q=%25").await.json();
    assert!(
        body["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["prefix"] == false),
        "{}: {body}",
        app.name
    );
}
backend_tests!(search_takes_like_wildcards_literally);

async fn bad_search_parameters_are_400s_naming_the_field(app: TestApp) {
    let app = with_etsy_coffee(app).await;
    for (uri, field) in [
        ("/v1/keywords/search?q=", "q"),
        ("/v1/keywords/search?q=a&limit=0", "limit"),
        ("/v1/keywords/search?q=a&platform=mars", "platform"),
    ] {
        let res = app.get(uri).await;
        assert_eq!(
            (res.status, res.json()["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{uri}"
        );
    }
}
backend_tests!(bad_search_parameters_are_400s_naming_the_field);

async fn markets_list_a_keyword_on_every_platform(app: TestApp) {
    let app = with_etsy_coffee(app).await;
    let name = app.name;
    let res = app.get("/v1/keywords/Coffee/markets").await;
    let body = res.json();
    assert_eq!(res.status, StatusCode::OK, "{name}: {body}");
    let platforms: Vec<&str> = body["markets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, vec!["etsy", "google"], "{name}");
    assert_eq!(body["markets"][0]["snapshot"]["search_volume"], 42.0);
    let res = app.get("/v1/keywords/never%20seen/markets").await;
    assert_eq!(res.status, StatusCode::NOT_FOUND, "{name}: {res}");
}
backend_tests!(markets_list_a_keyword_on_every_platform);
