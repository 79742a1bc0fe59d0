//! Forecast API through the real router: forecast → cached → persisted, bad input, batch, model
//! hot swap, and a Redis that dies mid-test.

use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use kwi::app::AppState;
use kwi::cache::{Cache, DEFAULT_LOCAL_BYTES, DEFAULT_TTL};
use kwi_features::{Keyword, Platform};
use kwi_predict::Predictor;
use kwi_store::{ModelRecord, Store};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::helpers::{Backends, in_process_state, redis_url};

async fn call(state: &AppState, req: Request<Body>) -> (StatusCode, Option<String>, Value) {
    let res = kwi::http::router(state.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let cache = res
        .headers()
        .get("x-cache")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, cache, json)
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn post(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
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

#[tokio::test]
async fn forecast_is_cached_persisted_and_validated_on_both_backends() {
    let b = Backends::new().await;
    // Near cache off: every hit below comes from Redis itself (the near cache has its own tests).
    let redis = Cache::redis(&redis_url(), DEFAULT_TTL, 0)
        .await
        .expect("Redis is required for these tests");
    for (name, store) in b.all() {
        kwi::import::load_sample(store.as_ref()).await.unwrap();
        let cache = if name == "postgres" {
            redis.clone()
        } else {
            Cache::in_process(DEFAULT_LOCAL_BYTES, DEFAULT_TTL)
        };
        let (state, writer) = AppState::build(store.clone(), cache).await.unwrap();

        let (s, c, body) = call(
            &state,
            get("/v1/keywords/google/coffee/forecast?horizon=20&levels=80,95"),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{name}: {body}");
        assert_eq!(c.as_deref(), Some("miss"), "{name}");
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
        let history = store
            .history(Platform::Google, &Keyword::parse("coffee").unwrap())
            .await
            .unwrap();
        assert_eq!(
            steps[0]["mean"].as_f64(),
            history[history.len() - 52].search_volume,
            "{name}"
        );

        let (s, c, again) = call(
            &state,
            get("/v1/keywords/google/coffee/forecast?horizon=20&levels=80,95"),
        )
        .await;
        assert_eq!((s, c.as_deref()), (StatusCode::OK, Some("hit")), "{name}");
        assert_eq!(again, body, "{name}: a hit returns the same forecast");
        wait_persisted(store, "coffee", 1).await;

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
            let (s, _, body) = call(&state, get(uri)).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{name} {uri}: {body}");
            assert_eq!(body["error"]["field"], field, "{name} {uri}: {body}");
        }
        let (s, _, _) = call(&state, get("/v1/keywords/google/never%20seen/forecast")).await;
        assert_eq!(s, StatusCode::NOT_FOUND);

        // Batch: stored keywords, an unknown one, and an ad-hoc series.
        let req = json!({
            "keywords": [{"platform": "google", "keyword": "Coffee"}, {"platform": "google", "keyword": "jam"},
                         {"platform": "google", "keyword": "unknown thing"}],
            "series": [{"id": "my series", "values": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]}],
            "horizon": 4, "levels": [90]
        });
        let (s, _, body) = call(&state, post("/v1/forecasts", &req.to_string())).await;
        assert_eq!(s, StatusCode::OK, "{name}: {body}");
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
        // The served path (volumes query + regular_series) gives what training's construction
        // (every observation through `regularise`) and the same model give, step by step.
        let rows = store
            .observations(Some(Platform::Google), None)
            .await
            .unwrap();
        let series = kwi_features::series::regularise(
            &rows,
            kwi_features::Frequency::Weekly,
            &Default::default(),
        );
        let jam = series.iter().find(|s| s.keyword.as_str() == "jam").unwrap();
        let expected = state
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
        // A batch fills the cache the single GET reads (same key), and a keyword named twice is
        // answered twice, identically.
        let twice = json!({"keywords": [{"platform": "google", "keyword": "furniture"},
                                        {"platform": "google", "keyword": "Furniture"}], "horizon": 5});
        let (s, _, b2) = call(&state, post("/v1/forecasts", &twice.to_string())).await;
        assert_eq!(s, StatusCode::OK, "{name}: {b2}");
        assert_eq!(b2["results"][0], b2["results"][1], "{name}");
        assert_eq!(b2["results"][0]["forecast"].as_array().unwrap().len(), 5);
        let (s, c, single) = call(
            &state,
            get("/v1/keywords/google/furniture/forecast?horizon=5"),
        )
        .await;
        assert_eq!((s, c.as_deref()), (StatusCode::OK, Some("hit")), "{name}");
        assert_eq!(single, b2["results"][0], "{name}");
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
            let (s, _, body) = call(&state, post("/v1/forecasts", bad)).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{name} {bad}: {body}");
            assert_eq!(body["error"]["field"], field, "{name} {bad}: {body}");
        }
        let many: Vec<Value> = (0..1001)
            .map(|i| json!({"platform": "google", "keyword": format!("k{i}")}))
            .collect();
        let (s, _, body) = call(
            &state,
            post("/v1/forecasts", &json!({"keywords": many}).to_string()),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        let wrong_type = Request::post("/v1/forecasts")
            .header("content-type", "text/plain")
            .body(Body::from("{}"))
            .unwrap();
        let (s, _, e) = call(&state, wrong_type).await;
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{e}");
        assert_eq!(e["error"]["field"], "content-type", "{e}");

        // Metrics count the requests and cache outcomes.
        let (s, _, text) = call(&state, get("/metrics")).await;
        assert_eq!(s, StatusCode::OK);
        let text = text.as_str().unwrap().to_string();
        assert!(text.contains("kwi_http_request_duration_seconds"), "{text}");
        assert!(text.contains("kwi_cache_hits_total"));
        assert!(
            text.contains("kwi_model_info{version=\"builtin-snaive-v1\"} 1"),
            "{text}"
        );

        // Graceful stop: dropping every state clone ends the writer after draining.
        drop(state);
        tokio::time::timeout(Duration::from_secs(10), writer)
            .await
            .expect("writer drains")
            .unwrap();
        assert!(
            store
                .prediction_count(Platform::Google, &Keyword::parse("jam").unwrap())
                .await
                .unwrap()
                >= 1
        );
    }
    b.cleanup().await;
}

#[tokio::test]
async fn new_data_replaces_a_cached_forecast_after_the_data_poll() {
    let b = Backends::new().await;
    for (name, store) in b.all() {
        kwi::import::load_sample(store.as_ref()).await.unwrap();
        let (state, _writer) = in_process_state(store).await;
        let uri = "/v1/keywords/google/coffee/forecast?horizon=4";
        let (s, c, before) = call(&state, get(uri)).await;
        assert_eq!((s, c.as_deref()), (StatusCode::OK, Some("miss")), "{name}");
        assert_eq!(before["data_as_of"], "2018-12-30", "{name}");
        // Nothing changed: the poll keeps the held versions and the next call is a hit.
        state.forecaster.refresh_data_versions().await.unwrap();
        assert!(!state.forecaster.refresh_data_versions().await.unwrap());
        assert_eq!(
            call(&state, get(uri)).await.1.as_deref(),
            Some("hit"),
            "{name}"
        );

        let mut values = [None; 10];
        values[0] = Some(77.0);
        let row = kwi_features::ingest::Observation {
            platform: Platform::Google,
            keyword: Keyword::parse("coffee").unwrap(),
            period_start: chrono::NaiveDate::from_ymd_opt(2019, 1, 6).unwrap(),
            values,
            source: "test".into(),
            line: 1,
        };
        store.import(&[row], &|_| {}).await.unwrap();
        assert!(
            state.forecaster.refresh_data_versions().await.unwrap(),
            "{name}: the poll sees the import"
        );
        let (s, c, after) = call(&state, get(uri)).await;
        assert_eq!(
            (s, c.as_deref()),
            (StatusCode::OK, Some("miss")),
            "{name}: {after}"
        );
        assert_eq!(after["data_as_of"], "2019-01-06", "{name}");
        // Unknown keywords are remembered as absent and stay 404.
        for _ in 0..2 {
            let (s, _, e) = call(&state, get("/v1/keywords/google/no-such-kw/forecast")).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{name}: {e}");
        }
    }
    b.cleanup().await;
}

#[tokio::test]
async fn activating_a_model_swaps_it_in_without_restart() {
    let b = Backends::new().await;
    let store = b.sqlite.clone();
    kwi::import::load_sample(store.as_ref()).await.unwrap();
    let (state, _w) = in_process_state(&store).await;
    let (_, _, before) = call(&state, get("/v1/keywords/google/coffee/forecast")).await;
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
    store.register_model(&record, false).await.unwrap();
    let (s, _, body) = call(&state, post("/v1/models/test-naive-v2/activate", "")).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (_, cache, after) = call(&state, get("/v1/keywords/google/coffee/forecast")).await;
    assert_eq!(after["model_version"], "test-naive-v2");
    assert_eq!(
        cache.as_deref(),
        Some("miss"),
        "a new model never answers from the old model's cache"
    );
    let last = store
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
    let (_, _, models) = call(&state, get("/v1/models")).await;
    assert_eq!(models["serving"], "test-naive-v2");
    assert!(
        models["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["version"] == "test-naive-v2" && m["active"] == true)
    );
    let (_, _, text) = call(&state, get("/metrics")).await;
    assert!(
        text.as_str()
            .unwrap()
            .contains("kwi_model_info{version=\"test-naive-v2\"} 1"),
        "{text}"
    );
    let (s, _, _) = call(&state, post("/v1/models/nope/activate", "")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    b.cleanup().await;
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
    let b = Backends::new().await;
    let store = b.sqlite.clone();
    kwi::import::load_sample(store.as_ref()).await.unwrap();
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
    let (state, _w) = AppState::build(store.clone(), cache.expect("private redis started"))
        .await
        .unwrap();
    let (s, c, _) = call(&state, get("/v1/keywords/google/jam/forecast")).await;
    assert_eq!((s, c.as_deref()), (StatusCode::OK, Some("miss")));
    let (_, c, _) = call(&state, get("/v1/keywords/google/jam/forecast")).await;
    assert_eq!(c.as_deref(), Some("hit"));
    child.kill().unwrap();
    child.wait().unwrap();
    for kw in ["jam", "coffee"] {
        let (s, _, body) = call(&state, get(&format!("/v1/keywords/google/{kw}/forecast"))).await;
        assert_eq!(
            s,
            StatusCode::OK,
            "Redis down must not fail a request: {body}"
        );
    }
    let (s, _, ready) = call(&state, get("/readyz")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert!(ready["cache"]["errors_since_start"].as_u64().unwrap() > 0);
    b.cleanup().await;
}

/// Concurrent misses are coalesced into batches by the batcher: every request still gets its own
/// keyword and horizon, equal to what the same keyword gets alone, and all are persisted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_are_coalesced_without_mixing_answers() {
    let b = Backends::new().await;
    for (name, store) in b.all() {
        kwi::import::load_sample(store.as_ref()).await.unwrap();
        let (state, _w) = in_process_state(store).await;
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
                let st = state.clone();
                tasks.push(tokio::spawn(async move {
                    let uri = format!("/v1/keywords/google/{t}/forecast?horizon={h}&levels=80");
                    (t, h, call(&st, get(&uri)).await)
                }));
            }
        }
        let mut answers = Vec::new();
        for task in tasks {
            let (t, h, (s, _, body)) = task.await.unwrap();
            assert_eq!(s, StatusCode::OK, "{name}: {t} h={h}: {body}");
            assert_eq!(body["keyword"], t, "{name}");
            assert_eq!(body["horizon"], h, "{name}");
            assert_eq!(body["forecast"].as_array().unwrap().len(), h, "{name}");
            answers.push((t, h, body));
        }
        // Alone (another level, so not from the cache): the same means.
        for (t, h, body) in &answers {
            let (_, c, alone) = call(
                &state,
                get(&format!(
                    "/v1/keywords/google/{t}/forecast?horizon={h}&levels=95"
                )),
            )
            .await;
            assert_eq!(c.as_deref(), Some("miss"), "{name}");
            let means = |b: &Value| -> Vec<f64> {
                b["forecast"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x["mean"].as_f64().unwrap())
                    .collect()
            };
            assert_eq!(means(body), means(&alone), "{name}: {t} h={h}");
        }
        for t in topics {
            wait_persisted(store, t, 6).await;
        }
    }
    b.cleanup().await;
}
