//! The router through `tower::ServiceExt::oneshot`, on both backends and both caches.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use kwi::app::AppState;
use kwi::cache::{Cache, DEFAULT_LOCAL_BYTES, DEFAULT_TTL};
use serde_json::Value;
use tower::ServiceExt;

use crate::helpers::{Backends, in_process_state, redis_url};

async fn get(state: &AppState, uri: &str) -> (StatusCode, Value) {
    let res = kwi::http::router(state.clone())
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "{uri}: body is not JSON: {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, json)
}

#[tokio::test]
async fn keyword_endpoint_health_and_errors_on_both_backends() {
    let b = Backends::new().await;
    let redis = Cache::redis(&redis_url(), DEFAULT_TTL, DEFAULT_LOCAL_BYTES)
        .await
        .unwrap_or_else(|e| panic!("Redis is required for these tests: {e}"));
    for (name, store) in b.all() {
        kwi::import::load_sample(store.as_ref()).await.unwrap();
        let cache = if name == "postgres" {
            redis.clone()
        } else {
            Cache::in_process(DEFAULT_LOCAL_BYTES, DEFAULT_TTL)
        };
        let (state, _writer) = AppState::build(store.clone(), cache).await.unwrap();

        let (s, body) = get(&state, "/healthz").await;
        assert_eq!(
            (s, body["status"].as_str()),
            (StatusCode::OK, Some("ok")),
            "{name}"
        );
        let (s, body) = get(&state, "/readyz").await;
        assert_eq!(s, StatusCode::OK, "{name}: {body}");
        assert_eq!(body["status"], "ready", "{name}");
        assert_eq!(body["store"]["backend"], name, "{name}");
        assert_eq!(body["model"]["version"], "builtin-snaive-v1", "{name}");
        let role = if name == "postgres" {
            "near cache in front of Redis"
        } else {
            "cache"
        };
        assert_eq!(body["cache"]["in_process"]["role"], role, "{name}: {body}");
        assert_eq!(
            body["cache"]["in_process"]["max_bytes"], DEFAULT_LOCAL_BYTES,
            "{name}: {body}"
        );

        // Keywords are normalised on the way in: "Mobile%20Phone" is "mobile phone".
        let (s, body) = get(&state, "/v1/keywords/google/Mobile%20Phone").await;
        assert_eq!(s, StatusCode::OK, "{name}: {body}");
        assert_eq!(body["keyword"], "mobile phone");
        assert_eq!(body["history"].as_array().unwrap().len(), 679, "{name}");
        assert_eq!(body["history"][0]["period_start"], "2006-01-01", "{name}");
        assert_eq!(body["history"][0]["search_volume"], 81.0, "{name}");
        assert_eq!(
            body["snapshot"]["trend_data"].as_array().unwrap().len(),
            52,
            "{name}"
        );

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
            let (s, body) = get(&state, uri).await;
            assert_eq!(s, status, "{name} {uri}: {body}");
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
        let (s, body) = get(&state, &format!("/v1/keywords/etsy/{long}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("limit is 200"),
            "{body}"
        );
    }
    b.cleanup().await;
}

#[tokio::test]
async fn search_and_markets_on_both_backends() {
    let b = Backends::new().await;
    for (name, store) in b.all() {
        kwi::import::load_sample(store.as_ref()).await.unwrap();
        // The same keyword on a second platform, for the cross-market view.
        let mut values = [None; 10];
        values[0] = Some(42.0);
        let etsy_coffee = kwi_features::ingest::Observation {
            platform: kwi_features::Platform::Etsy,
            keyword: kwi_features::Keyword::parse("coffee").unwrap(),
            period_start: chrono::NaiveDate::from_ymd_opt(2024, 1, 7).unwrap(),
            values,
            source: "test".into(),
            line: 1,
        };
        store.import(&[etsy_coffee], &|_| {}).await.unwrap();
        let (state, _w) = in_process_state(store).await;

        let (s, body) = get(&state, "/v1/keywords/search?q=CO&limit=5").await;
        assert_eq!(s, StatusCode::OK, "{name}: {body}");
        let hits = body["results"].as_array().unwrap();
        assert!(!hits.is_empty() && hits.len() <= 5, "{name}: {body}");
        assert_eq!(hits[0]["keyword"], "coffee", "{name}: {body}");
        // Prefix matches rank before the fuzzy ones ("tobacco" contains "co").
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
        let (_, body) = get(&state, "/v1/keywords/search?q=coffee&platform=etsy").await;
        assert_eq!(
            body["results"].as_array().unwrap().len(),
            1,
            "{name}: {body}"
        );
        // Not a prefix, but similar / contained: "insurance" finds "auto insurance", "life insurance".
        let (_, body) = get(&state, "/v1/keywords/search?q=insurance").await;
        let found: Vec<&str> = body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["keyword"].as_str().unwrap())
            .collect();
        assert!(
            found.contains(&"auto insurance") && found.contains(&"life insurance"),
            "{name}: {found:?}"
        );
        // LIKE wildcards in the query are literal.
        let (_, body) = get(&state, "/v1/keywords/search?q=%25").await;
        assert!(
            body["results"]
                .as_array()
                .unwrap()
                .iter()
                .all(|h| h["prefix"] == false),
            "{name}: {body}"
        );
        for (uri, field) in [
            ("/v1/keywords/search?q=", "q"),
            ("/v1/keywords/search?q=a&limit=0", "limit"),
            ("/v1/keywords/search?q=a&platform=mars", "platform"),
        ] {
            let (s, body) = get(&state, uri).await;
            assert_eq!(
                (s, body["error"]["field"].as_str()),
                (StatusCode::BAD_REQUEST, Some(field)),
                "{uri}"
            );
        }

        let (s, body) = get(&state, "/v1/keywords/Coffee/markets").await;
        assert_eq!(s, StatusCode::OK, "{name}: {body}");
        let platforms: Vec<&str> = body["markets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["platform"].as_str().unwrap())
            .collect();
        assert_eq!(platforms, vec!["etsy", "google"], "{name}");
        assert_eq!(body["markets"][0]["snapshot"]["search_volume"], 42.0);
        let (s, _) = get(&state, "/v1/keywords/never%20seen/markets").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
    b.cleanup().await;
}
