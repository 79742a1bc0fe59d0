//! Arrow IPC / Parquet exports through the real router and the `kwi export` binary, both backends:
//! what comes out is what is stored.

use std::process::Command;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Date32Type, Float64Type, Int32Type};
use arrow::record_batch::RecordBatch;
use axum::http::StatusCode;
use kwi_features::{Keyword, Platform};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::helpers::{TestApp, backend_tests};

fn read_arrow(bytes: &[u8]) -> Vec<RecordBatch> {
    arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes.to_vec()), None)
        .expect("an Arrow IPC stream")
        .collect::<Result<_, _>>()
        .unwrap()
}

fn read_parquet(bytes: &[u8]) -> Vec<RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes.to_vec()))
        .expect("a Parquet file")
        .build()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

/// `(keyword, period_start as days since 1970, search_volume)` of every exported observation.
fn obs(batches: &[RecordBatch]) -> Vec<(String, i32, Option<f64>)> {
    let mut out = Vec::new();
    for b in batches {
        let k = b.column_by_name("keyword").unwrap().as_string::<i32>();
        let d = b
            .column_by_name("period_start")
            .unwrap()
            .as_primitive::<Date32Type>();
        let v = b
            .column_by_name("search_volume")
            .unwrap()
            .as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            out.push((
                k.value(i).to_string(),
                d.value(i),
                (!v.is_null(i)).then(|| v.value(i)),
            ));
        }
    }
    out
}

/// The sample's weekly history of Google `coffee`.
async fn coffee_history(app: &TestApp) -> Vec<kwi_store::HistoryPoint> {
    app.store
        .history(Platform::Google, &Keyword::parse("coffee").unwrap())
        .await
        .unwrap()
}

async fn observations_export_as_an_arrow_stream_of_what_is_stored(app: TestApp) {
    app.load_sample().await;
    let name = app.name;
    let coffee = coffee_history(&app).await;
    let res = app
        .get("/v1/export/observations?platform=google&keywords=coffee,furniture")
        .await;
    assert_eq!(res.status, StatusCode::OK, "{name}: {res}");
    assert_eq!(res.content_type(), "application/vnd.apache.arrow.stream");
    let batches = read_arrow(&res.body);
    let got = obs(&batches);
    assert_eq!(
        got.len(),
        2 * coffee.len(),
        "{name}: both keywords, every week"
    );
    let coffee_rows: Vec<_> = got.iter().filter(|r| r.0 == "coffee").collect();
    assert_eq!(coffee_rows.len(), coffee.len());
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    for (row, h) in coffee_rows.iter().zip(&coffee) {
        assert_eq!(row.1, (h.period_start - epoch).num_days() as i32, "{name}");
        assert_eq!(row.2, h.search_volume, "{name}");
    }
}
backend_tests!(observations_export_as_an_arrow_stream_of_what_is_stored);

async fn a_keyword_named_twice_is_exported_once(app: TestApp) {
    app.load_sample().await;
    let coffee = coffee_history(&app).await;
    let res = app
        .get("/v1/export/observations?keywords=coffee,coffee")
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}: {res}", app.name);
    assert_eq!(
        obs(&read_arrow(&res.body)).len(),
        coffee.len(),
        "{}",
        app.name
    );
}
backend_tests!(a_keyword_named_twice_is_exported_once);

/// A date range, as Parquet (asked for in the query).
async fn a_date_range_exports_as_parquet(app: TestApp) {
    app.load_sample().await;
    let coffee = coffee_history(&app).await;
    let res = app
        .get("/v1/export/observations?keywords=coffee&from=2018-01-01&to=2018-12-31&format=parquet")
        .await;
    assert_eq!(
        (res.status, res.content_type()),
        (StatusCode::OK, "application/vnd.apache.parquet"),
        "{res}"
    );
    let in_2018 = coffee
        .iter()
        .filter(|h| h.period_start.format("%Y").to_string() == "2018")
        .count();
    assert_eq!(rows(&read_parquet(&res.body)), in_2018, "{}", app.name);
}
backend_tests!(a_date_range_exports_as_parquet);

/// A `from` after `to` is an empty range (the description cannot forbid it).
async fn from_after_to_is_an_empty_range(app: TestApp) {
    app.load_sample().await;
    let res = app
        .get("/v1/export/observations?keywords=coffee&from=2019-01-01&to=2018-01-01")
        .await;
    assert_eq!(
        (res.status, rows(&read_arrow(&res.body))),
        (StatusCode::OK, 0),
        "{}",
        app.name
    );
}
backend_tests!(from_after_to_is_an_empty_range);

async fn an_unfiltered_export_has_every_observation(app: TestApp) {
    app.load_sample().await;
    let all = rows(&read_arrow(&app.get("/v1/export/observations").await.body));
    assert_eq!(
        all as i64,
        app.store.observation_count().await.unwrap(),
        "{}",
        app.name
    );
}
backend_tests!(an_unfiltered_export_has_every_observation);

/// Compute one forecast, let the writer drain, export it step by step.
async fn predictions_export_one_row_per_forecast_step(mut app: TestApp) {
    app.load_sample().await;
    let name = app.name;
    let fc = app
        .get("/v1/keywords/google/coffee/forecast?horizon=6")
        .await
        .json();
    app.restart().await;
    let res = app.get("/v1/export/predictions?keywords=coffee").await;
    assert_eq!(res.status, StatusCode::OK, "{name}: {res}");
    let batches = read_arrow(&res.body);
    assert_eq!(rows(&batches), 6, "{name}: one row per step");
    let b0 = &batches[0];
    let step = b0
        .column_by_name("step")
        .unwrap()
        .as_primitive::<Int32Type>();
    let mean = b0
        .column_by_name("mean")
        .unwrap()
        .as_primitive::<Float64Type>();
    let lo95 = b0
        .column_by_name("lo_95")
        .unwrap()
        .as_primitive::<Float64Type>();
    for i in 0..6 {
        assert_eq!(step.value(i), i as i32 + 1);
        assert_eq!(
            Some(mean.value(i)),
            fc["forecast"][i]["mean"].as_f64(),
            "{name}"
        );
        assert_eq!(
            Some(lo95.value(i)),
            fc["forecast"][i]["intervals"][1]["lo"].as_f64(),
            "{name}"
        );
    }
}
backend_tests!(predictions_export_one_row_per_forecast_step);

/// Bad filters are 400s naming the parameter.
async fn bad_export_filters_are_400s_naming_the_parameter(app: TestApp) {
    app.load_sample().await;
    for (uri, field) in [
        ("/v1/export/observations?format=xml", "format"),
        ("/v1/export/observations?platform=myspace", "platform"),
        ("/v1/export/observations?from=2018-13-01", "from"),
        ("/v1/export/observations?from=2018-1-5", "from"),
        ("/v1/export/observations?platform=%20", "platform"),
        ("/v1/export/observations?keywords=coffee,%20", "keywords"),
        ("/v1/export/predictions?to=yesterday", "to"),
    ] {
        let res = app.get(uri).await;
        let e = res.json();
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{uri}: {e}");
        assert_eq!(e["error"]["field"], field, "{uri}: {e}");
    }
}
backend_tests!(bad_export_filters_are_400s_naming_the_parameter);

/// `kwi export` writes the same rows to a file, atomically, and refuses to overwrite.
async fn kwi_export_writes_a_file_atomically_and_never_overwrites(app: TestApp) {
    app.load_sample().await;
    let name = app.name;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("obs.parquet");
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_kwi"))
            .args(["export", "observations", "--out", out.to_str().unwrap()])
            .args(["--keywords", "coffee", "--platform", "google"])
            .args(extra)
            .env("KWI_DATABASE_URL", &app.db_url)
            .env_remove("KWI_REDIS_URL")
            .output()
            .unwrap()
    };
    let o = run(&[]);
    assert!(
        o.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("exported 679 observation rows"));
    let got = read_parquet(&std::fs::read(&out).unwrap());
    assert_eq!(rows(&got), 679, "{name}");
    let again = run(&[]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("--force"),
        "{name}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no stray temp files"
    );
}
backend_tests!(kwi_export_writes_a_file_atomically_and_never_overwrites);
