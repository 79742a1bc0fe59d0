//! The TimeGPT-compatible endpoints, with bodies shaped exactly as the `nixtla` SDK 0.9 sends them
//! (`.ci/nixtla` drives the real SDK against a live server).

use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};

use crate::helpers::{TestApp, anonymous, data_file};

/// The first `n` real Google Trends topics of a wide file (weekly or the monthly panel).
fn topics(file: &str, n: usize) -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(data_file(file)).unwrap();
    let mut lines = text.lines();
    lines.next();
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').skip(1).map(|c| c.parse().unwrap()).collect())
        .collect();
    (0..n)
        .map(|j| rows.iter().map(|r| r[j]).collect())
        .collect()
}

fn body(series: &[Vec<f64>], h: usize, freq: &str, level: Value) -> Value {
    let y: Vec<f64> = series.iter().flatten().copied().collect();
    let sizes: Vec<usize> = series.iter().map(Vec::len).collect();
    json!({
        "series": {"y": y, "sizes": sizes, "X": null, "X_future": null,
                   "start_datetime": vec!["2006-01-01"; series.len()]},
        "model": "timegpt-2.1", "h": h, "freq": freq, "clean_ex_first": true, "level": level,
        "finetune_steps": 0, "finetune_depth": 1, "finetune_loss": "default",
        "finetuned_model_id": null, "feature_contributions": false, "multivariate": false
    })
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[tokio::test]
async fn forecast_answers_what_the_sdk_parses() {
    let app = TestApp::sqlite().await;
    let params = app.get("/model_params?model=timegpt-2.1&freq=W-SUN").await;
    assert_eq!(params.status, 200, "{}", params.text());
    assert!(params.json()["detail"]["input_size"].as_u64().unwrap() >= 500);
    let weekly = topics("samples/gtrends_pt_weekly_topics.csv", 2);
    let res = app
        .post_json("/v2/forecast", body(&weekly, 13, "W-SUN", json!([80, 95])))
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let v = res.json();
    let mean = floats(&v["mean"]);
    assert_eq!(mean.len(), 2 * 13);
    assert!(v["weights_x"].is_null() && v.get("intervals").is_some());
    let iv = v["intervals"].as_object().unwrap();
    let mut keys: Vec<&str> = iv.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["hi-80", "hi-95", "lo-80", "lo-95"]);
    let (lo95, lo80, hi80, hi95) = (
        floats(&iv["lo-95"]),
        floats(&iv["lo-80"]),
        floats(&iv["hi-80"]),
        floats(&iv["hi-95"]),
    );
    for k in 0..26 {
        assert!(
            lo95[k] <= lo80[k] && lo80[k] <= mean[k] && mean[k] <= hi80[k] && hi80[k] <= hi95[k],
            "step {k}"
        );
    }
    // The weekly request is answered by the served model.
    assert_eq!(
        res.header("x-kwi-model"),
        Some(app.state.forecaster.model().manifest.version.as_str())
    );
    // Without levels, intervals are null (the key is still there).
    let res = app
        .post_json("/v2/forecast", body(&weekly, 4, "W", Value::Null))
        .await;
    assert_eq!(res.status, 200);
    assert!(res.json()["intervals"].is_null());
    // Quantiles arrive as levels with duplicates and 0.
    let res = app
        .post_json(
            "/v2/forecast",
            body(&weekly, 4, "W-SUN", json!([80, 0, 80])),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let v = res.json();
    assert_eq!(floats(&v["intervals"]["lo-0"]), floats(&v["mean"]));
}

#[tokio::test]
async fn monthly_series_get_a_monthly_seasonal_baseline() {
    let app = TestApp::sqlite().await;
    let monthly = topics("samples/gtrends_pt_monthly_topics.csv", 3);
    let res = app
        .post_json("/v2/forecast", body(&monthly, 12, "MS", json!([80, 95])))
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.header("x-kwi-model"), Some("builtin-snaive-monthly"));
    let mean = floats(&res.json()["mean"]);
    for (i, s) in monthly.iter().enumerate() {
        let n = s.len();
        // Seasonal naive with season 12: the same month a year earlier.
        assert_eq!(&mean[i * 12..(i + 1) * 12], &s[n - 12..], "series {i}");
    }
    let iv = res.json()["intervals"].clone();
    let (lo, hi) = (floats(&iv["lo-95"]), floats(&iv["hi-95"]));
    assert!(
        lo.iter().zip(&hi).all(|(l, h)| h > l),
        "calibrated bands have width"
    );
}

#[tokio::test]
async fn cross_validation_windows_index_the_request() {
    let app = TestApp::sqlite().await;
    let monthly = topics("samples/gtrends_pt_monthly_topics.csv", 2);
    let mut b = body(&monthly, 6, "MS", json!([80]));
    b["n_windows"] = json!(2);
    b["step_size"] = json!(6);
    b["refit"] = json!(true);
    b["hist_exog"] = Value::Null;
    b["series"].as_object_mut().unwrap().remove("X_future");
    let res = app.post_json("/v2/cross_validation", &b).await;
    assert_eq!(res.status, 200, "{}", res.text());
    let v = res.json();
    let n = monthly[0].len();
    assert_eq!(v["sizes"], json!([12, 12]));
    let idxs: Vec<usize> = v["idxs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    // Series 0: windows cut at n − 12 and n − 6; series 1 starts at offset n.
    let expect: Vec<usize> = (n - 12..n).chain(2 * n - 12..2 * n).collect();
    assert_eq!(idxs, expect);
    let mean = floats(&v["mean"]);
    // Window 0 of series 0 forecasts from the first n − 12 values: seasonal naive repeats
    // months n − 24 .. n − 18.
    assert_eq!(&mean[..6], &monthly[0][n - 24..n - 18]);
    assert_eq!(floats(&v["intervals"]["lo-80"]).len(), 24);
    // Too short for its windows.
    b["n_windows"] = json!(40);
    let res = app.post_json("/v2/cross_validation", &b).await;
    assert_eq!(res.status, 400);
    assert!(res.text().contains("need at least"), "{}", res.text());
}

#[tokio::test]
async fn zstd_bodies_are_decoded() {
    let app = TestApp::sqlite().await;
    let weekly = topics("samples/gtrends_pt_weekly_topics.csv", 32);
    let plain = body(&weekly, 13, "W-SUN", json!([95])).to_string();
    let packed = zstd::encode_all(plain.as_bytes(), 1).unwrap();
    let req = Request::post("/v2/forecast")
        .header("content-type", "application/json")
        .header("content-encoding", "zstd")
        .body(Body::from(packed))
        .unwrap();
    let zipped = app.send(req).await;
    assert_eq!(zipped.status, 200, "{}", zipped.text());
    let direct = app.post_json("/v2/forecast", &plain).await;
    assert_eq!(zipped.json(), direct.json());
    assert_eq!(floats(&zipped.json()["mean"]).len(), 32 * 13);
}

#[tokio::test]
async fn bad_requests_say_what_is_wrong() {
    let app = TestApp::sqlite().await;
    let weekly = topics("samples/gtrends_pt_weekly_topics.csv", 2);
    let ok = body(&weekly, 13, "W-SUN", json!([80]));
    let cases: Vec<(Value, &str)> = vec![
        (
            {
                let mut b = ok.clone();
                b["series"]["sizes"] = json!([10, 10]);
                b
            },
            "add up to 20",
        ),
        (
            {
                let mut b = ok.clone();
                b["freq"] = json!("h");
                b
            },
            "frequency `h` is not supported",
        ),
        (
            {
                let mut b = ok.clone();
                b["series"]["X"] = json!([[1.0]]);
                b
            },
            "exogenous",
        ),
        (
            {
                let mut b = ok.clone();
                b["finetune_steps"] = json!(10);
                b
            },
            "fine-tuning",
        ),
        (
            {
                let mut b = ok.clone();
                b["h"] = json!(0);
                b
            },
            "\"h\"",
        ),
        (
            {
                let mut b = ok.clone();
                b["level"] = json!([100]);
                b
            },
            "outside [0, 100)",
        ),
        (
            {
                let mut b = ok.clone();
                b["series"]["y"][678] = Value::Null;
                b
            },
            "ends with a missing value",
        ),
        (
            {
                let mut b = ok.clone();
                b["series"]["y"][3] = json!(-2.5);
                b
            },
            "not a search volume",
        ),
        (
            json!({"series": {"y": [1.0]}, "h": 1, "freq": "W"}),
            "sizes",
        ),
    ];
    for (b, expect) in cases {
        let res = app.post_json("/v2/forecast", &b).await;
        assert_eq!(res.status, 400, "{expect}: {}", res.text());
        assert!(res.text().contains(expect), "{expect}: {}", res.text());
    }
    // A null inside a series is interpolated, not refused.
    let mut b = ok.clone();
    b["series"]["y"][5] = Value::Null;
    assert_eq!(app.post_json("/v2/forecast", &b).await.status, 200);
    let res = app
        .send(anonymous(crate::helpers::post(
            "/v2/forecast",
            "application/json",
            ok.to_string(),
        )))
        .await;
    assert_eq!(res.status, 401);
}
