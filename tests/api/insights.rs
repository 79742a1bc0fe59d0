//! The insights job and what the API serves from it: `/v1/trends` and the competition, opportunity
//! and insights fields of the keyword response, on both backends.

use std::sync::Arc;

use axum::http::StatusCode;
use chrono::{Duration, NaiveDate};
use kwi_features::ingest::Observation;
use kwi_features::{Keyword, Platform};
use kwi_predict::insights::CompetitionScorer;

use crate::helpers::{TestApp, backend_tests};

/// The horizon the insights tests run with (weeks).
fn h13() -> kwi_features::Horizon {
    kwi_features::Horizon::new(13).unwrap()
}

/// 30 weeks of an Amazon keyword with search volumes and listing data (the sample has its listing
/// data only).
fn amazon_rows() -> Vec<Observation> {
    let start = NaiveDate::from_ymd_opt(2018, 6, 3).unwrap();
    (0..30)
        .map(|w| Observation {
            platform: Platform::Amazon,
            keyword: Keyword::parse("usb cables").unwrap(),
            period_start: start + Duration::weeks(w),
            values: [
                Some(1000.0 + 10.0 * w as f64),
                Some(161.0),
                Some(299.0),
                Some(199.0),
                Some(499.0),
                Some(5179.0),
                Some(4.1),
                Some(0.14),
                None,
                None,
                None,
                None,
                None,
                None,
            ],
            source: "test".into(),
            line: w as usize + 1,
        })
        .collect()
}

/// The sample plus [`amazon_rows`].
async fn with_listing_data(app: TestApp) -> TestApp {
    app.load_sample().await;
    app.store.import(&amazon_rows(), &|_| {}).await.unwrap();
    app
}

/// Runs the insights job once with the composite competition scorer.
async fn run_insights(app: &TestApp) -> kwi_predict::insights::Summary {
    kwi_predict::insights::run(
        app.store.as_ref(),
        app.state.forecaster.model(),
        CompetitionScorer::composite(),
        h13(),
        Arc::new(|_: usize, _: usize| {}),
    )
    .await
    .unwrap()
}

/// Before the job: the fields exist and are null; trends are empty, not an error.
async fn before_the_job_the_fields_are_null_and_trends_empty(app: TestApp) {
    let app = with_listing_data(app).await;
    let name = app.name;
    let res = app.get("/v1/keywords/google/coffee").await;
    let body = res.json();
    assert_eq!(res.status, StatusCode::OK, "{name}: {body}");
    for f in ["competition", "opportunity", "insights"] {
        assert!(body[f].is_null(), "{name}: {f} = {}", body[f]);
        assert!(
            body.as_object().unwrap().contains_key(f),
            "{name}: {f} missing"
        );
    }
    let res = app.get("/v1/trends").await;
    let body = res.json();
    assert_eq!(res.status, StatusCode::OK, "{name}: {body}");
    assert_eq!(body["direction"], "rising");
    assert_eq!(body["items"].as_array().unwrap().len(), 0, "{name}");
}
backend_tests!(before_the_job_the_fields_are_null_and_trends_empty);

async fn the_job_scores_every_listed_keyword_and_a_rerun_replaces(app: TestApp) {
    let app = with_listing_data(app).await;
    let name = app.name;
    let summary = run_insights(&app).await;
    assert_eq!(summary.insights, 33, "{name}: {summary}");
    // Every keyword of the built-in listing sample (100 Amazon.in categories, `amazon/usb
    // cables` among them, and Etsy `tarot`) is scored.
    assert_eq!(summary.scored, 101, "{name}: {summary}");
    // Re-running replaces, never duplicates.
    assert_eq!(run_insights(&app).await, summary, "{name}");
}
backend_tests!(the_job_scores_every_listed_keyword_and_a_rerun_replaces);

async fn trends_rank_the_movers_by_growth_in_each_direction(app: TestApp) {
    let app = with_listing_data(app).await;
    let name = app.name;
    run_insights(&app).await;
    let mut movers = 0;
    for dir in ["rising", "falling"] {
        let res = app
            .get(&format!("/v1/trends?direction={dir}&limit=100"))
            .await;
        let body = res.json();
        assert_eq!(res.status, StatusCode::OK, "{name}: {body}");
        assert_eq!(body["direction"], dir);
        let items = body["items"].as_array().unwrap();
        let growth: Vec<f64> = items
            .iter()
            .map(|i| i["growth_pct"].as_f64().unwrap())
            .collect();
        if dir == "rising" {
            assert!(
                growth.windows(2).all(|w| w[0] >= w[1]),
                "{name}: {growth:?}"
            );
        } else {
            assert!(
                growth.windows(2).all(|w| w[0] <= w[1]),
                "{name}: {growth:?}"
            );
        }
        for i in items {
            for f in [
                "platform",
                "keyword",
                "growth_pct",
                "current",
                "forecast_end",
                "horizon",
            ] {
                assert!(!i[f].is_null(), "{name}: {f} missing in {i}");
            }
            assert_eq!(i["horizon"], 13);
        }
        movers += items.len();
    }
    assert!(
        movers > 0,
        "{name}: no rising or falling keyword in the sample"
    );
}
backend_tests!(trends_rank_the_movers_by_growth_in_each_direction);

async fn trends_honour_the_limit_and_the_platform(app: TestApp) {
    let app = with_listing_data(app).await;
    let name = app.name;
    run_insights(&app).await;
    let body = app.get("/v1/trends?direction=rising&limit=1").await.json();
    assert!(body["items"].as_array().unwrap().len() <= 1, "{name}");
    let body = app
        .get("/v1/trends?platform=etsy&direction=falling")
        .await
        .json();
    assert_eq!(body["items"].as_array().unwrap().len(), 0, "{name}");
}
backend_tests!(trends_honour_the_limit_and_the_platform);

async fn bad_trends_parameters_are_400s_naming_the_field(app: TestApp) {
    let app = with_listing_data(app).await;
    let name = app.name;
    for (uri, field) in [
        ("/v1/trends?direction=up", "direction"),
        ("/v1/trends?limit=0", "limit"),
        ("/v1/trends?limit=101", "limit"),
        ("/v1/trends?limit=ten", "limit"),
        ("/v1/trends?platform=walmart", "platform"),
    ] {
        let res = app.get(uri).await;
        let body = res.json();
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{name}: {uri}: {body}");
        assert_eq!(body["error"]["field"], field, "{name}: {uri}");
    }
}
backend_tests!(bad_trends_parameters_are_400s_naming_the_field);

/// A keyword with listing data: every field, in the documented shape.
async fn a_keyword_with_listing_data_gets_every_field(app: TestApp) {
    let app = with_listing_data(app).await;
    let name = app.name;
    run_insights(&app).await;
    let res = app.get("/v1/keywords/amazon/usb%20cables").await;
    let body = res.json();
    assert_eq!(res.status, StatusCode::OK, "{name}: {body}");
    let c = &body["competition"];
    let score = c["score"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&score), "{name}: {c}");
    assert!(
        ["low", "medium", "high", "very high"].contains(&c["band"].as_str().unwrap()),
        "{name}: {c}"
    );
    assert_eq!(c["model_version"], "builtin-composite-v1");
    assert_eq!(c["synthetic"], false);
    let contributions = c["contributions"].as_array().unwrap();
    assert!(!contributions.is_empty(), "{name}: {c}");
    for k in contributions {
        assert!(k["factor"].is_string() && k["label"].is_string() && k["points"].is_f64());
    }
    assert_eq!(
        body["snapshot"]["competition"].as_f64(),
        Some(score),
        "{name}"
    );
    let o = &body["opportunity"];
    assert!(
        (0.0..=100.0).contains(&o["score"].as_f64().unwrap()),
        "{name}: {o}"
    );
    assert!(
        o["explanation"].as_str().unwrap().contains("competition"),
        "{name}: {o}"
    );
    let i = &body["insights"];
    assert!(
        ["rising", "falling", "flat"].contains(&i["direction"].as_str().unwrap()),
        "{name}: {i}"
    );
    assert!(i["growth_pct"].is_f64(), "{name}: {i}");
    for f in ["peak", "anomaly"] {
        assert!(
            i.as_object().unwrap().contains_key(f),
            "{name}: {f} missing"
        );
    }
}
backend_tests!(a_keyword_with_listing_data_gets_every_field);

/// A sample keyword (no listing data): no competition, but opportunity and insights.
async fn a_keyword_without_listing_data_gets_opportunity_but_no_competition(app: TestApp) {
    let app = with_listing_data(app).await;
    let name = app.name;
    run_insights(&app).await;
    let body = app.get("/v1/keywords/google/coffee").await.json();
    assert!(body["competition"].is_null(), "{name}");
    assert!(
        body["opportunity"]["explanation"]
            .as_str()
            .unwrap()
            .contains("competition unknown"),
        "{name}: {}",
        body["opportunity"]
    );
    assert!(body["insights"]["direction"].is_string(), "{name}");
    if let Some(p) = body["insights"]["peak"].as_object() {
        assert!(p["in_weeks"].as_i64().unwrap() >= 1, "{name}: {p:?}");
    }
}
backend_tests!(a_keyword_without_listing_data_gets_opportunity_but_no_competition);

/// Writes a competition artifact (the composite with every factor's centre moved up by one spread,
/// so it scores the same keyword lower) and registers it as the active competition model.
async fn register_competition(store: &dyn kwi_store::Store, dir: &std::path::Path, version: &str) {
    let mut model = kwi_models::competition::CompetitionModel::composite(5.0);
    for (c, s) in model.center.iter_mut().zip(&model.scale) {
        *c += s;
    }
    let manifest = kwi_models::artifact::CompetitionManifest {
        name: "test-competition".into(),
        version: version.into(),
        kind: kwi_store::ModelKind::Competition,
        feature_schema_hash: "test".into(),
        created_at: String::new(),
        params: Default::default(),
        training_data: serde_json::json!({ "synthetic": false }),
        metrics: serde_json::json!({}),
    };
    kwi_models::artifact::save_competition(dir, &manifest, &model).unwrap();
    store
        .register_model(
            &kwi_store::ModelRecord {
                name: manifest.name.clone(),
                version: version.into(),
                kind: kwi_store::ModelKind::Competition,
                feature_schema_hash: "test".into(),
                metrics: serde_json::json!({}),
                artifact: dir.display().to_string(),
                created_at: chrono::Utc::now(),
                active: true,
            },
            true,
        )
        .await
        .unwrap();
}

/// The job `kwi serve` starts: it scores with the registry's active competition model, falls back to
/// the composite when that artifact cannot be loaded, and leaves trends behind either way.
async fn startup_job_scores_with_the_active_competition_model_or_the_composite(app: TestApp) {
    let app = with_listing_data(app).await;
    let name = app.name;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    register_competition(app.store.as_ref(), &dir, "comp-test-1").await;
    let job =
        || kwi_predict::insights::spawn_job(app.store.clone(), app.state.forecaster.model(), h13());
    job().await.unwrap();
    let res = app.get("/v1/keywords/amazon/usb%20cables").await;
    let body = res.json();
    assert_eq!(res.status, StatusCode::OK, "{name}: {body}");
    assert_eq!(
        body["competition"]["model_version"], "comp-test-1",
        "{name}"
    );
    let registered = body["competition"]["score"].as_f64().unwrap();
    let trends = app
        .get("/v1/trends?direction=rising&limit=100")
        .await
        .json();
    let falling = app
        .get("/v1/trends?direction=falling&limit=100")
        .await
        .json();
    assert!(
        trends["items"].as_array().unwrap().len() + falling["items"].as_array().unwrap().len() > 0,
        "{name}: the job left no movers"
    );

    // The active artifact disappears: the job still runs, on the composite.
    std::fs::remove_dir_all(&dir).unwrap();
    job().await.unwrap();
    let body = app.get("/v1/keywords/amazon/usb%20cables").await.json();
    assert_eq!(
        body["competition"]["model_version"], "builtin-composite-v1",
        "{name}"
    );
    let composite = body["competition"]["score"].as_f64().unwrap();
    assert!(
        registered < composite,
        "{name}: registered {registered} vs composite {composite}"
    );
}
backend_tests!(startup_job_scores_with_the_active_competition_model_or_the_composite);

/// A keyword known only from listing data (no search volume): stores its one week.
async fn with_listing_only_keyword(app: TestApp) -> TestApp {
    let rows: Vec<Observation> = amazon_rows()
        .into_iter()
        .take(1)
        .map(|mut o| {
            o.keyword = Keyword::parse("hdmi cables").unwrap();
            o.values[0] = None;
            o
        })
        .collect();
    app.store.import(&rows, &|_| {}).await.unwrap();
    app
}

const HDMI_FORECAST: &str = "/v1/keywords/amazon/hdmi%20cables/forecast";

async fn a_listing_only_keyword_is_scored(app: TestApp) {
    let app = with_listing_only_keyword(app).await;
    kwi_predict::insights::spawn_job(app.store.clone(), app.state.forecaster.model(), h13())
        .await
        .unwrap();
    let res = app.get("/v1/keywords/amazon/hdmi%20cables").await;
    let body = res.json();
    assert_eq!(res.status, StatusCode::OK, "{}: {body}", app.name);
    assert!(
        body["competition"]["score"].is_f64(),
        "{}: {body}",
        app.name
    );
}
backend_tests!(a_listing_only_keyword_is_scored);

/// Its forecast is a 404 that says why, never a server error, alone or in a batch.
async fn a_listing_only_keyword_forecast_is_a_clear_404(app: TestApp) {
    let app = with_listing_only_keyword(app).await;
    let name = app.name;
    let res = app.get(HDMI_FORECAST).await;
    let body = res.json();
    assert_eq!(res.status, StatusCode::NOT_FOUND, "{name}: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no search-volume history"),
        "{name}: {body}"
    );
    let res = app
        .post_json(
            "/v1/forecasts",
            r#"{"keywords": [{"platform": "amazon", "keyword": "hdmi cables"}]}"#,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{name}");
    let body = res.json();
    assert_eq!(body["results"][0]["error"]["code"], "not_found", "{name}");
    // Both answers came from one memo entry.
    assert_eq!(app.state.forecaster.status().no_volume_known, 1, "{name}");
}
backend_tests!(a_listing_only_keyword_forecast_is_a_clear_404);

/// The 404 is remembered per data version: asked again, the same answer (from the memo), until
/// search volumes arrive: then it is forecast.
async fn a_no_volume_answer_is_remembered_until_volumes_arrive(app: TestApp) {
    let app = with_listing_only_keyword(app).await;
    let name = app.name;
    let first = app.get(HDMI_FORECAST).await;
    assert_eq!(first.status, StatusCode::NOT_FOUND, "{name}: {first}");
    assert_eq!(app.state.forecaster.status().no_volume_known, 1, "{name}");
    let again = app.get(HDMI_FORECAST).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "{name}: {again}");
    assert_eq!(
        again.json()["error"]["message"],
        first.json()["error"]["message"],
        "{name}"
    );
    let with_volume: Vec<Observation> = amazon_rows()
        .into_iter()
        .map(|mut o| {
            o.keyword = Keyword::parse("hdmi cables").unwrap();
            o
        })
        .collect();
    app.store.import(&with_volume, &|_| {}).await.unwrap();
    app.state.forecaster.refresh_data_versions().await.unwrap();
    let res = app.get(HDMI_FORECAST).await;
    let fc = res.json();
    assert_eq!(res.status, StatusCode::OK, "{name}: {fc}");
    assert_eq!(fc["forecast"].as_array().unwrap().len(), 13, "{name}");
}
backend_tests!(a_no_volume_answer_is_remembered_until_volumes_arrive);

/// `kwi serve`'s schedule: insights exist after the first run, and new data makes the next check
/// recompute them (a keyword imported later gets its outlook without a restart).
async fn insights_schedule_recomputes_after_new_data(app: TestApp) {
    app.load_sample().await;
    let name = app.name;
    let schedule = kwi_predict::insights::spawn_scheduler(
        app.store.clone(),
        app.state.forecaster.served_models(),
        h13(),
        std::time::Duration::from_millis(100),
        "test-instance".into(),
    );
    let outlook = async |uri: &str| {
        for _ in 0..200 {
            let res = app.get(uri).await;
            let body = res.json();
            if res.status == StatusCode::OK && !body["insights"].is_null() {
                return body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("no insights for {uri}");
    };
    outlook("/v1/keywords/google/coffee").await;
    let before = app.get("/v1/keywords/amazon/usb%20cables").await.json();
    assert!(
        before["insights"].is_null(),
        "{name}: listing-only keyword has no outlook yet"
    );
    app.store.import(&amazon_rows(), &|_| {}).await.unwrap();
    let after = outlook("/v1/keywords/amazon/usb%20cables").await;
    assert!(
        after["insights"]["direction"].is_string(),
        "{name}: {after}"
    );
    assert!(after["opportunity"]["score"].is_f64(), "{name}: {after}");
    schedule.abort();
}
backend_tests!(insights_schedule_recomputes_after_new_data);
