//! Sellers' files through `kwi import` into the store, then served: a Keyword Planner export
//! (UTF-16, monthly) is forecast on the calendar-month grid, and a Brand Analytics report's rank and
//! shares are stored as their own signals, never as volumes.

use std::process::Command;

use futures::StreamExt;
use serde_json::Value;

use crate::helpers::{TestApp, backend_tests, data_file};

/// The real monthly Google Trends values of `topics` (2006-01 … 2018-12), in a Keyword Planner
/// export's shape: UTF-16LE with BOM, tabs, two title lines (the container is synthetic, no real
/// export is public; the numbers are real).
fn planner_export(topics: &[&str]) -> (Vec<u8>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(data_file("samples/gtrends_pt_monthly_topics.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let months: Vec<String> = rows
        .iter()
        .map(|r| {
            let d = chrono::NaiveDate::parse_from_str(r[0], "%Y-%m-%d").unwrap();
            format!("Searches: {}", d.format("%b %Y"))
        })
        .collect();
    let mut out = format!(
        "Keyword Stats 2019-01-04 at 10_11_32\nJanuary 1, 2006 - December 31, 2018\nKeyword\tCurrency\tAvg. monthly searches\tCompetition\tCompetition (indexed value)\tTop of page bid (low range)\tTop of page bid (high range)\t{}\n",
        months.join("\t")
    );
    let mut values = Vec::new();
    for t in topics {
        let j = header.iter().position(|h| h == t).unwrap();
        let v: Vec<f64> = rows
            .iter()
            .map(|r| (r[j].parse::<f64>().unwrap() * 100.0).round())
            .collect();
        let cells: Vec<String> = v.iter().map(f64::to_string).collect();
        out += &format!(
            "{t}\tEUR\t1000\tHigh\t71\t0.40\t1.20\t{}\n",
            cells.join("\t")
        );
        values.push(v);
    }
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(out.encode_utf16().flat_map(u16::to_le_bytes));
    (bytes, values)
}

fn import(app: &TestApp, file: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kwi"))
        .args(["import", "--quiet", file.to_str().unwrap()])
        .env("KWI_DATABASE_URL", &app.db_url)
        .env_remove("KWI_REDIS_URL")
        .output()
        .expect("run kwi");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "kwi import failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

async fn keyword_planner_export_is_served_monthly(app: TestApp) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Keyword Stats 2019-01-04 at 10_11_32.csv");
    let (bytes, values) = planner_export(&["coffee", "furniture"]);
    std::fs::write(&path, bytes).unwrap();
    let out = import(&app, &path);
    assert!(
        out.contains("inserted 312"),
        "2 keywords x 156 months: {out}"
    );
    let res = app
        .get("/v1/keywords/google/coffee/forecast?horizon=12&levels=80,95")
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    let v: Value = res.json();
    assert_eq!(v["freq"], "monthly");
    assert_eq!(v["data_as_of"], "2018-12-01");
    assert_eq!(
        v["model_version"], "builtin-snaive-monthly",
        "the weekly baseline does not answer monthly data"
    );
    let steps = v["forecast"].as_array().unwrap();
    assert_eq!(steps.len(), 12);
    let coffee = &values[0];
    let n = coffee.len();
    for (k, s) in steps.iter().enumerate() {
        assert_eq!(s["period_start"], format!("2019-{:02}-01", k + 1));
        // Seasonal naive, season 12: the same month a year earlier.
        assert_eq!(s["mean"].as_f64().unwrap(), coffee[n - 12 + k]);
        let bands = s["intervals"].as_array().unwrap();
        let (lo95, hi95) = (
            bands[1]["lo"].as_f64().unwrap(),
            bands[1]["hi"].as_f64().unwrap(),
        );
        assert!(
            lo95 < hi95,
            "step {k}: calibrated on the keyword's own history"
        );
    }
    // The snapshot carries the export's bid midpoint as CPC.
    let snap = app.get("/v1/keywords/google/furniture").await;
    assert_eq!(snap.status, 200, "{}", snap.text());
    let cpc = snap.json()["snapshot"]["cpc"].as_f64();
    assert!(
        cpc.is_some_and(|c| (c - 0.8).abs() < 1e-12),
        "{}",
        snap.text()
    );
}

async fn brand_analytics_ranks_are_stored_as_ranks(app: TestApp) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("US_Search_Terms_Weekly.csv");
    std::fs::write(
        &path,
        "Reporting Range=[\"Weekly\"],Select week=[\"Week 2 | 2021-01-10 - 2021-01-16 2021\"]\n\
Department,Search Term,Search Frequency Rank,#1 Clicked ASIN,#1 Click Share,#1 Conversion Share\n\
Amazon.com,tarot cards,\"1,204\",B000000001,24.61%,10.5%\n",
    )
    .unwrap();
    let out = import(&app, &path);
    assert!(out.contains("inserted 1"), "{out}");
    let filter = kwi_store::ExportFilter::default();
    let rows: Vec<kwi_store::ExportObservation> = app
        .store
        .export_observations(&filter)
        .map(|r| r.unwrap())
        .collect()
        .await;
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(
        (r.platform.as_str(), r.keyword.as_str()),
        ("amazon", "tarot cards")
    );
    assert_eq!(r.period_start.to_string(), "2021-01-10");
    assert_eq!(r.search_volume, None);
    assert_eq!(r.search_frequency_rank, Some(1204));
    let near = |v: Option<f64>, want: f64| v.is_some_and(|x| (x - want).abs() < 1e-12);
    assert!(
        near(r.click_share, 0.2461) && near(r.conversion_share, 0.105),
        "{:?} {:?}",
        r.click_share,
        r.conversion_share
    );
    // No volume, no forecast: a 404 that says why.
    let res = app.get("/v1/keywords/amazon/tarot%20cards/forecast").await;
    assert_eq!(res.status, 404, "{}", res.text());
}

backend_tests!(
    keyword_planner_export_is_served_monthly,
    brand_analytics_ranks_are_stored_as_ranks
);
