//! Forecast API through the real router: forecast → cached → persisted, bad input, batch, model
//! hot swap, and a Redis that dies mid-test.

use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use kwi::cache::{Cache, DEFAULT_LOCAL_BYTES, DEFAULT_TTL};
use kwi_features::{Keyword, Platform};
use kwi_predict::Predictor;
use kwi_store::{ModelRecord, Store};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, backend_tests, post, redis_cache, send_to};

/// The sample behind the cache each backend is served with here: PostgreSQL with Redis (near
/// cache off, so every hit comes from Redis itself: the near cache has its own tests), SQLite
/// with the in-process cache.
async fn sample_app(app: TestApp) -> TestApp {
    app.load_sample().await;
    match app.backend {
        Backend::Postgres => app.with_cache(redis_cache(DEFAULT_TTL, 0).await).await,
        Backend::Sqlite => app,
    }
}

async fn wait_persisted(store: &Arc<dyn Store>, keyword: &str, at_least: i64) {
    let k = Keyword::parse(keyword).unwrap();
    for _ in 0..100 {
        if store.prediction_count(Platform::Google, &k).await.unwrap() >= at_least {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("forecast for {keyword} was not persisted");
}

const COFFEE_20: &str = "/v1/keywords/google/coffee/forecast?horizon=20&levels=80,95";

/// The built-in model is a seasonal naive: 20 weeks from the week after the data, each step's
/// intervals nested around its mean, step 1 the value 52 weeks before it.
async fn forecast_is_a_seasonal_naive_with_nested_intervals(app: TestApp) {
    let app = sample_app(app).await;
    let name = app.name;
    let res = app.get(COFFEE_20).await;
    let body = res.json();
    assert_eq!(res.status, StatusCode::OK, "{name}: {body}");
    assert_eq!(res.x_cache(), Some("miss"), "{name}");
    assert_eq!(body["model_version"], "builtin-snaive-v1");
    assert_eq!(body["data_as_of"], "2018-12-30");
    let steps = body["forecast"].as_array().unwrap();
    assert_eq!(steps.len(), 20);
    assert_eq!(steps[0]["period_start"], "2019-01-06");
    for st in steps {
        let (m, i80, i95) = (
            st["mean"].as_f64().unwrap(),
            &st["intervals"][0],
            &st["intervals"][1],
        );
        assert_eq!(
            (i80["level"].as_f64(), i95["level"].as_f64()),
            (Some(80.0), Some(95.0))
        );
        let (l80, h80, l95, h95) = (
            i80["lo"].as_f64().unwrap(),
            i80["hi"].as_f64().unwrap(),
            i95["lo"].as_f64().unwrap(),
            i95["hi"].as_f64().unwrap(),
        );
        assert!(
            0.0 <= l95 && l95 <= l80 && l80 <= m && m <= h80 && h80 <= h95,
            "{name}: {st}"
        );
    }
    // Seasonal naive: step 1 is the value 52 weeks before the first forecast week.
    let history = app
        .store
        .history(Platform::Google, &Keyword::parse("coffee").unwrap())
        .await
        .unwrap();
    assert_eq!(
        steps[0]["mean"].as_f64(),
        history[history.len() - 52].search_volume,
        "{name}"
    );
}
backend_tests!(forecast_is_a_seasonal_naive_with_nested_intervals);

async fn a_repeated_forecast_is_a_cache_hit_and_is_persisted(app: TestApp) {
    let app = sample_app(app).await;
    let name = app.name;
    let first = app.get(COFFEE_20).await;
    assert_eq!(
        (first.status, first.x_cache()),
        (StatusCode::OK, Some("miss")),
        "{name}: {first}"
    );
    let again = app.get(COFFEE_20).await;
    assert_eq!(
        (again.status, again.x_cache()),
        (StatusCode::OK, Some("hit")),
        "{name}"
    );
    assert_eq!(
        again.json(),
        first.json(),
        "{name}: a hit returns the same forecast"
    );
    wait_persisted(&app.store, "coffee", 1).await;
}
backend_tests!(a_repeated_forecast_is_a_cache_hit_and_is_persisted);

async fn bad_forecast_parameters_are_400s_naming_the_field(app: TestApp) {
    let app = sample_app(app).await;
    let name = app.name;
    for (uri, field) in [
        ("/v1/keywords/google/coffee/forecast?horizon=0", "horizon"),
        ("/v1/keywords/google/coffee/forecast?horizon=105", "horizon"),
        ("/v1/keywords/google/coffee/forecast?horizon=ten", "horizon"),
        ("/v1/keywords/google/coffee/forecast?levels=0", "levels"),
        ("/v1/keywords/google/coffee/forecast?levels=100", "levels"),
        (
            "/v1/keywords/google/coffee/forecast?levels=80,abc",
            "levels",
        ),
        ("/v1/keywords/nowhere/coffee/forecast", "platform"),
        ("/v1/keywords/google/%20/forecast", "keyword"),
    ] {
        let res = app.get(uri).await;
        let body = res.json();
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{name} {uri}: {body}");
        assert_eq!(body["error"]["field"], field, "{name} {uri}: {body}");
    }
    let res = app.get("/v1/keywords/google/never%20seen/forecast").await;
    assert_eq!(res.status, StatusCode::NOT_FOUND, "{name}: {res}");
}
backend_tests!(bad_forecast_parameters_are_400s_naming_the_field);

/// Two stored keywords (one spelled with capitals), an unknown one, and an ad-hoc series.
fn mixed_batch() -> Value {
    json!({
        "keywords": [{"platform": "google", "keyword": "Coffee"}, {"platform": "google", "keyword": "jam"},
                     {"platform": "google", "keyword": "unknown thing"}],
        "series": [{"id": "my series", "values": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]}],
        "horizon": 4, "levels": [90]
    })
}

async fn a_batch_answers_each_keyword_and_series_in_order(app: TestApp) {
    let app = sample_app(app).await;
    let name = app.name;
    let res = app.post_json("/v1/forecasts", mixed_batch()).await;
    let body = res.json();
    assert_eq!(res.status, StatusCode::OK, "{name}: {body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    assert_eq!(results[0]["keyword"], "coffee");
    assert_eq!(results[1]["forecast"].as_array().unwrap().len(), 4);
    assert_eq!(results[2]["error"]["code"], "not_found");
    assert_eq!(results[3]["keyword"], "my series");
    assert_eq!(
        results[3]["forecast"][0]["mean"], 8.0,
        "naive for a series shorter than a season"
    );
}
backend_tests!(a_batch_answers_each_keyword_and_series_in_order);

/// The served path (volumes query + regular_series) gives what training's construction (every
/// observation through `regularise`) and the same model give, step by step.
async fn a_batch_forecast_matches_the_training_construction(app: TestApp) {
    let app = sample_app(app).await;
    let name = app.name;
    let res = app.post_json("/v1/forecasts", mixed_batch()).await;
    let body = res.json();
    assert_eq!(res.status, StatusCode::OK, "{name}: {body}");
    let results = body["results"].as_array().unwrap();
    let rows = app
        .store
        .observations(Some(Platform::Google), None)
        .await
        .unwrap();
    let series = kwi_features::series::regularise(
        &rows,
        kwi_features::Frequency::Weekly,
        &Default::default(),
    );
    let jam = series.iter().find(|s| s.keyword.as_str() == "jam").unwrap();
    let expected = app
        .state
        .forecaster
        .model()
        .forecast(&[jam.values.as_slice()], 4, &[90.0])
        .unwrap();
    let served: Vec<f64> = results[1]["forecast"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["mean"].as_f64().unwrap())
        .collect();
    // (1e-12 relative: serde_json's default float parsing may be off by one ulp.)
    assert_eq!(served.len(), expected[0].mean.len(), "{name}");
    for (a, b) in served.iter().zip(&expected[0].mean) {
        assert!(
            (a - b).abs() <= 1e-12 * b.abs().max(1.0),
            "{name}: {served:?} vs {:?}",
            expected[0].mean
        );
    }
    assert_eq!(
        results[1]["data_as_of"],
        jam.period(jam.values.len() - 1).to_string(),
        "{name}"
    );
}
backend_tests!(a_batch_forecast_matches_the_training_construction);

/// A batch fills the cache the single GET reads (same key), and a keyword named twice is answered
/// twice, identically.
async fn a_batch_fills_the_cache_the_single_forecast_reads(app: TestApp) {
    let app = sample_app(app).await;
    let name = app.name;
    let twice = json!({"keywords": [{"platform": "google", "keyword": "furniture"},
                                    {"platform": "google", "keyword": "Furniture"}], "horizon": 5});
    let res = app.post_json("/v1/forecasts", twice).await;
    let b2 = res.json();
    assert_eq!(res.status, StatusCode::OK, "{name}: {b2}");
    assert_eq!(b2["results"][0], b2["results"][1], "{name}");
    assert_eq!(b2["results"][0]["forecast"].as_array().unwrap().len(), 5);
    let single = app
        .get("/v1/keywords/google/furniture/forecast?horizon=5")
        .await;
    assert_eq!(
        (single.status, single.x_cache()),
        (StatusCode::OK, Some("hit")),
        "{name}"
    );
    assert_eq!(single.json(), b2["results"][0], "{name}");
}
backend_tests!(a_batch_fills_the_cache_the_single_forecast_reads);

async fn bad_batches_are_400s_naming_the_field(app: TestApp) {
    let app = sample_app(app).await;
    let name = app.name;
    for (bad, field) in [
        ("{not json", "body"),
        (r#"{"keywords": []}"#, "keywords"),
        (
            r#"{"keywords": [{"platform": "mars", "keyword": "x"}]}"#,
            "keywords[].platform",
        ),
        (
            r#"{"series": [{"id": "a", "values": [-1.0]}]}"#,
            "series[].values",
        ),
        (
            r#"{"keywords": [{"platform": "google", "keyword": "x"}], "horizon": 500}"#,
            "horizon",
        ),
    ] {
        let res = app.post_json("/v1/forecasts", bad).await;
        let body = res.json();
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{name} {bad}: {body}");
        assert_eq!(body["error"]["field"], field, "{name} {bad}: {body}");
    }
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"platform": "google", "keyword": format!("k{i}")}))
        .collect();
    let res = app
        .post_json("/v1/forecasts", json!({"keywords": many}))
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{res}");
    let res = app.send(post("/v1/forecasts", "text/plain", "{}")).await;
    let e = res.json();
    assert_eq!(res.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{e}");
    assert_eq!(e["error"]["field"], "content-type", "{e}");
}
backend_tests!(bad_batches_are_400s_naming_the_field);

/// Metrics count the requests and cache outcomes.
async fn metrics_count_requests_and_cache_outcomes(app: TestApp) {
    let app = sample_app(app).await;
    for expected in ["miss", "hit"] {
        let res = app.get(COFFEE_20).await;
        assert_eq!(res.x_cache(), Some(expected), "{}: {res}", app.name);
    }
    let res = app.get("/metrics").await;
    assert_eq!(res.status, StatusCode::OK);
    let text = res.text();
    assert!(text.contains("kwi_http_request_duration_seconds"), "{text}");
    assert!(text.contains("kwi_cache_hits_total"));
    assert!(
        text.contains("kwi_model_info{version=\"builtin-snaive-v1\"} 1"),
        "{text}"
    );
}
backend_tests!(metrics_count_requests_and_cache_outcomes);

/// Graceful stop: dropping every state clone ends the writer after draining, and what it held is
/// stored.
async fn stopping_drains_the_prediction_writer(app: TestApp) {
    let mut app = sample_app(app).await;
    let res = app.post_json("/v1/forecasts", mixed_batch()).await;
    assert_eq!(res.status, StatusCode::OK, "{}: {res}", app.name);
    app.restart().await;
    assert!(
        app.store
            .prediction_count(Platform::Google, &Keyword::parse("jam").unwrap())
            .await
            .unwrap()
            >= 1
    );
}
backend_tests!(stopping_drains_the_prediction_writer);

async fn new_data_replaces_a_cached_forecast_after_the_data_poll(app: TestApp) {
    app.load_sample().await;
    let name = app.name;
    let state = &app.state;
    let uri = "/v1/keywords/google/coffee/forecast?horizon=4";
    let res = app.get(uri).await;
    assert_eq!(
        (res.status, res.x_cache()),
        (StatusCode::OK, Some("miss")),
        "{name}"
    );
    assert_eq!(res.json()["data_as_of"], "2018-12-30", "{name}");
    // Nothing changed: the poll keeps the held versions and the next call is a hit.
    state.forecaster.refresh_data_versions().await.unwrap();
    assert!(!state.forecaster.refresh_data_versions().await.unwrap());
    assert_eq!(app.get(uri).await.x_cache(), Some("hit"), "{name}");

    let mut values = [None; kwi_features::ingest::VALUE_COUNT];
    values[0] = Some(77.0);
    let row = kwi_features::ingest::Observation {
        platform: Platform::Google,
        keyword: Keyword::parse("coffee").unwrap(),
        period_start: chrono::NaiveDate::from_ymd_opt(2019, 1, 6).unwrap(),
        values,
        source: "test".into(),
        line: 1,
    };
    app.store.import(&[row], &|_| {}).await.unwrap();
    assert!(
        state.forecaster.refresh_data_versions().await.unwrap(),
        "{name}: the poll sees the import"
    );
    let after = app.get(uri).await;
    assert_eq!(
        (after.status, after.x_cache()),
        (StatusCode::OK, Some("miss")),
        "{name}: {after}"
    );
    assert_eq!(after.json()["data_as_of"], "2019-01-06", "{name}");
}
backend_tests!(new_data_replaces_a_cached_forecast_after_the_data_poll);

/// Unknown keywords are remembered as absent and stay 404.
async fn an_unknown_keyword_stays_404(app: TestApp) {
    app.load_sample().await;
    for _ in 0..2 {
        let res = app.get("/v1/keywords/google/no-such-kw/forecast").await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{}: {res}", app.name);
    }
}
backend_tests!(an_unknown_keyword_stays_404);

#[tokio::test]
async fn activating_a_model_swaps_it_in_without_restart() {
    let app = TestApp::sqlite().await;
    app.load_sample().await;
    let before = app.get("/v1/keywords/google/coffee/forecast").await.json();
    assert_eq!(before["model_version"], "builtin-snaive-v1");

    // A second model: the baseline re-labelled, with naive as its only member.
    let series: Vec<Vec<f64>> = vec![(0..60).map(f64::from).collect()];
    let refs: Vec<&[f64]> = series.iter().map(Vec::as_slice).collect();
    let mut p = Predictor::baseline(&refs, 52, 13);
    p.manifest.version = "test-naive-v2".into();
    p.manifest.ensemble.members = vec![kwi_predict::Member::Naive];
    let dir = tempfile::tempdir().unwrap();
    p.save(dir.path()).unwrap();
    let record = ModelRecord {
        name: "test".into(),
        version: "test-naive-v2".into(),
        kind: kwi_store::ModelKind::Forecaster,
        feature_schema_hash: p.manifest.feature_schema_hash.clone(),
        metrics: json!({}),
        artifact: dir.path().display().to_string(),
        created_at: chrono::Utc::now(),
        active: false,
    };
    app.store.register_model(&record, false).await.unwrap();
    let res = app.post_json("/v1/models/test-naive-v2/activate", "").await;
    assert_eq!(res.status, StatusCode::OK, "{res}");
    let res = app.get("/v1/keywords/google/coffee/forecast").await;
    let after = res.json();
    assert_eq!(after["model_version"], "test-naive-v2");
    assert_eq!(
        res.x_cache(),
        Some("miss"),
        "a new model never answers from the old model's cache"
    );
    let last = app
        .store
        .history(Platform::Google, &Keyword::parse("coffee").unwrap())
        .await
        .unwrap()
        .last()
        .unwrap()
        .search_volume;
    assert_eq!(
        after["forecast"][0]["mean"].as_f64(),
        last,
        "naive forecast = last value"
    );
    let models = app.get("/v1/models").await.json();
    assert_eq!(models["serving"], "test-naive-v2");
    assert!(
        models["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["version"] == "test-naive-v2" && m["active"] == true)
    );
    let text = app.get("/metrics").await.text();
    assert!(
        text.contains("kwi_model_info{version=\"test-naive-v2\"} 1"),
        "{text}"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn activating_an_unknown_model_is_404() {
    let app = TestApp::sqlite().await;
    let res = app.post_json("/v1/models/nope/activate", "").await;
    assert_eq!(res.status, StatusCode::NOT_FOUND, "{res}");
    app.cleanup().await;
}

/// A private Redis on a free port, so killing it does not disturb other tests.
fn private_redis() -> (Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server must be installed for this test (.ci/run installs it)");
    (child, port)
}

#[tokio::test]
async fn redis_dying_mid_test_never_fails_a_request() {
    let app = TestApp::sqlite().await;
    app.load_sample().await;
    let (mut child, port) = private_redis();
    let url = format!("redis://127.0.0.1:{port}");
    let mut cache = None;
    for _ in 0..50 {
        if let Ok(c) = Cache::redis(&url, DEFAULT_TTL, DEFAULT_LOCAL_BYTES).await {
            cache = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let app = app.with_cache(cache.expect("private redis started")).await;
    let res = app.get("/v1/keywords/google/jam/forecast").await;
    assert_eq!((res.status, res.x_cache()), (StatusCode::OK, Some("miss")));
    let res = app.get("/v1/keywords/google/jam/forecast").await;
    assert_eq!(res.x_cache(), Some("hit"));
    child.kill().unwrap();
    child.wait().unwrap();
    for kw in ["jam", "coffee"] {
        let res = app.get(&format!("/v1/keywords/google/{kw}/forecast")).await;
        assert_eq!(
            res.status,
            StatusCode::OK,
            "Redis down must not fail a request: {res}"
        );
    }
    let res = app.get("/readyz").await;
    let ready = res.json();
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert!(ready["cache"]["errors_since_start"].as_u64().unwrap() > 0);
    app.cleanup().await;
}

/// Concurrent misses are coalesced into batches by the batcher: every request still gets its own
/// keyword and horizon, equal to what the same keyword gets alone, and all are persisted.
async fn concurrent_misses_are_coalesced_without_mixing_answers(app: TestApp) {
    app.load_sample().await;
    let name = app.name;
    let topics = [
        "coffee",
        "jam",
        "wifi",
        "furniture",
        "novel",
        "potato",
        "lawyer",
        "tobacco",
    ];
    let mut tasks = Vec::new();
    for t in topics {
        for h in [3usize, 7, 13] {
            let st = app.state.clone();
            let key = app.key.clone();
            tasks.push(tokio::spawn(async move {
                let uri = format!("/v1/keywords/google/{t}/forecast?horizon={h}&levels=80");
                let req = crate::helpers::with_token(crate::helpers::get(&uri), &key);
                (t, h, send_to(&st, req).await)
            }));
        }
    }
    let mut answers = Vec::new();
    for task in tasks {
        let (t, h, res) = task.await.unwrap();
        let body = res.json();
        assert_eq!(res.status, StatusCode::OK, "{name}: {t} h={h}: {body}");
        assert_eq!(body["keyword"], t, "{name}");
        assert_eq!(body["horizon"], h, "{name}");
        assert_eq!(body["forecast"].as_array().unwrap().len(), h, "{name}");
        answers.push((t, h, body));
    }
    // Alone (another level, so not from the cache): the same means.
    let means = |b: &Value| -> Vec<f64> {
        b["forecast"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["mean"].as_f64().unwrap())
            .collect()
    };
    for (t, h, body) in &answers {
        let alone = app
            .get(&format!(
                "/v1/keywords/google/{t}/forecast?horizon={h}&levels=95"
            ))
            .await;
        assert_eq!(alone.x_cache(), Some("miss"), "{name}");
        assert_eq!(means(body), means(&alone.json()), "{name}: {t} h={h}");
    }
    for t in topics {
        wait_persisted(&app.store, t, 6).await;
    }
}
backend_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    concurrent_misses_are_coalesced_without_mixing_answers
);
