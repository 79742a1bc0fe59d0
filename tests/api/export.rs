//! Arrow IPC / Parquet exports through the real router and the `kwi export` binary, both backends:
//! what comes out is what is stored.

use std::process::Command;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Date32Type, Float64Type, Int32Type};
use arrow::record_batch::RecordBatch;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use kwi::app::AppState;
use kwi_features::{Keyword, Platform};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tower::ServiceExt;

use crate::helpers::{Backends, in_process_state};

async fn get(state: &AppState, uri: &str) -> (StatusCode, String, Vec<u8>) {
    crate::helpers::send(state, Request::get(uri).body(Body::empty()).unwrap()).await
}

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

#[tokio::test]
async fn exports_stream_what_is_stored_as_arrow_and_parquet_on_both_backends() {
    let b = Backends::new().await;
    for (name, store) in b.all() {
        kwi::import::load_sample(store.as_ref()).await.unwrap();
        let (state, writer) = in_process_state(store).await;
        let coffee = store
            .history(Platform::Google, &Keyword::parse("coffee").unwrap())
            .await
            .unwrap();

        let (s, ct, body) = get(
            &state,
            "/v1/export/observations?platform=google&keywords=coffee,furniture",
        )
        .await;
        assert_eq!(
            s,
            StatusCode::OK,
            "{name}: {}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(ct, "application/vnd.apache.arrow.stream");
        let batches = read_arrow(&body);
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

        // A keyword named twice is exported once.
        let (s, _, twice) = get(&state, "/v1/export/observations?keywords=coffee,coffee").await;
        assert_eq!(s, StatusCode::OK, "{name}");
        assert_eq!(obs(&read_arrow(&twice)).len(), coffee.len(), "{name}");

        // Date range, Parquet via the query and via Accept.
        let (s, ct, pq) = get(
            &state,
            "/v1/export/observations?keywords=coffee&from=2018-01-01&to=2018-12-31&format=parquet",
        )
        .await;
        assert_eq!(
            (s, ct.as_str()),
            (StatusCode::OK, "application/vnd.apache.parquet")
        );
        let in_2018 = coffee
            .iter()
            .filter(|h| h.period_start.format("%Y").to_string() == "2018")
            .count();
        assert_eq!(rows(&read_parquet(&pq)), in_2018, "{name}");
        // A `from` after `to` is an empty range (the description cannot forbid it).
        let (s, _, none) = get(
            &state,
            "/v1/export/observations?keywords=coffee&from=2019-01-01&to=2018-01-01",
        )
        .await;
        assert_eq!((s, rows(&read_arrow(&none))), (StatusCode::OK, 0), "{name}");
        let all = rows(&read_arrow(&get(&state, "/v1/export/observations").await.2));
        assert_eq!(
            all as i64,
            store.observation_count().await.unwrap(),
            "{name}"
        );

        // Predictions: compute one forecast, wait for the writer, export it step by step.
        let res = kwi::http::router(state.clone())
            .oneshot(
                Request::get("/v1/keywords/google/coffee/forecast?horizon=6")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let fc: serde_json::Value =
            serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
        drop(state);
        writer.await.unwrap();
        let (state, _w) = in_process_state(store).await;
        let (s, _, body) = get(&state, "/v1/export/predictions?keywords=coffee").await;
        assert_eq!(s, StatusCode::OK, "{name}");
        let batches = read_arrow(&body);
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

        // Bad filters are 400s naming the parameter.
        for (uri, field) in [
            ("/v1/export/observations?format=xml", "format"),
            ("/v1/export/observations?platform=myspace", "platform"),
            ("/v1/export/observations?from=2018-13-01", "from"),
            ("/v1/export/observations?from=2018-1-5", "from"),
            ("/v1/export/observations?platform=%20", "platform"),
            ("/v1/export/observations?keywords=coffee,%20", "keywords"),
            ("/v1/export/predictions?to=yesterday", "to"),
        ] {
            let (s, _, body) = get(&state, uri).await;
            let e: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}: {e}");
            assert_eq!(e["error"]["field"], field, "{uri}: {e}");
        }
    }

    // `kwi export` writes the same rows to a file, atomically, and refuses to overwrite.
    for (name, url) in b.urls() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("obs.parquet");
        let run = |extra: &[&str]| {
            Command::new(env!("CARGO_BIN_EXE_kwi"))
                .args(["export", "observations", "--out", out.to_str().unwrap()])
                .args(["--keywords", "coffee", "--platform", "google"])
                .args(extra)
                .env("KWI_DATABASE_URL", url)
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
    b.cleanup().await;
}
