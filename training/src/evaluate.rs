//! Scoring forecasts against held-out actuals: M4 metrics per member and for the ensemble, interval
//! coverage and MSIS.

use kwi_features::series::Series;
use kwi_models::Forecast;
use kwi_models::metrics::{Accuracy, accuracy, coverage, msis};
use kwi_predict::{Member, Predictor};
use serde::Serialize;

/// One line of the accuracy table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Model (member name or `ensemble`).
    pub model: String,
    /// Point accuracy.
    pub accuracy: Accuracy,
    /// Share of actuals inside each interval, by level (ensemble only).
    pub coverage: Vec<(f64, f64)>,
    /// MSIS of the 95 % interval (ensemble only).
    pub msis95: Option<f64>,
}

/// Evaluation of a fitted model on held-out data.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// Series scored.
    pub series: usize,
    /// Horizon.
    pub horizon: usize,
    /// MASE lag used.
    pub metric_season: usize,
    /// Rows: members alone, then the ensemble.
    pub rows: Vec<Row>,
    /// The ensemble's forecasts (for plots and CSV).
    #[serde(skip)]
    pub forecasts: Vec<Forecast>,
    /// `(series index, model, sMAPE, MASE)` for every series and model (the report tables).
    #[serde(skip)]
    pub per_series: Vec<(usize, String, f64, f64)>,
}

fn per_series_rows(
    model: &str,
    hist: &[&[f64]],
    act: &[&[f64]],
    f: &[Vec<f64>],
    m: usize,
    out: &mut Vec<(usize, String, f64, f64)>,
) {
    for i in 0..hist.len().min(act.len()).min(f.len()) {
        let a = accuracy(&hist[i..=i], &act[i..=i], &f[i..=i], m);
        out.push((i, model.to_string(), a.smape, a.mase));
    }
}

/// Forecasts `test[i].len()` steps for every series and scores every available member and the
/// ensemble against `test`.
pub fn evaluate(
    predictor: &Predictor,
    train: &[Series],
    test: &[Vec<f64>],
    levels: &[f64],
    metric_season: usize,
) -> anyhow::Result<Evaluation> {
    let h = test.iter().map(Vec::len).max().unwrap_or(0);
    let hist: Vec<&[f64]> = train.iter().map(|s| s.values.as_slice()).collect();
    let act: Vec<&[f64]> = test.iter().map(Vec::as_slice).collect();
    let reference = predictor.member(Member::Naive2, &hist, h)?;
    let base = accuracy(&hist, &act, &reference, metric_season);
    let mut rows = Vec::new();
    let mut per_series = Vec::new();
    for m in Member::ALL {
        let name = m.as_str();
        let Ok(f) = predictor.member(m, &hist, h) else {
            continue;
        };
        per_series_rows(name, &hist, &act, &f, metric_season, &mut per_series);
        rows.push(Row {
            model: name.to_string(),
            accuracy: accuracy(&hist, &act, &f, metric_season).with_owa(&base),
            coverage: Vec::new(),
            msis95: None,
        });
    }
    let forecasts = predictor.forecast(&hist, h, levels)?;
    let means: Vec<Vec<f64>> = forecasts.iter().map(|f| f.mean.clone()).collect();
    let cov = levels
        .iter()
        .map(|lvl| {
            let (mut inside, mut n) = (0.0, 0usize);
            for (f, a) in forecasts.iter().zip(&act) {
                if let Some(iv) = f.interval(*lvl) {
                    inside += coverage(a, &iv.lo, &iv.hi) * a.len() as f64;
                    n += a.len();
                }
            }
            (*lvl, if n == 0 { f64::NAN } else { inside / n as f64 })
        })
        .collect();
    let msis95 = forecasts
        .iter()
        .zip(&act)
        .zip(&hist)
        .map(|((f, a), h)| {
            f.interval(95.0)
                .map(|iv| msis(h, a, &iv.lo, &iv.hi, 0.05, metric_season))
        })
        .collect::<Option<Vec<f64>>>()
        .map(|v| v.iter().sum::<f64>() / v.len().max(1) as f64);
    per_series_rows(
        "ensemble",
        &hist,
        &act,
        &means,
        metric_season,
        &mut per_series,
    );
    rows.push(Row {
        model: "ensemble".into(),
        accuracy: accuracy(&hist, &act, &means, metric_season).with_owa(&base),
        coverage: cov,
        msis95,
    });
    Ok(Evaluation {
        series: train.len(),
        horizon: h,
        metric_season,
        rows,
        forecasts,
        per_series,
    })
}

/// The run's tables as frames, for `metrics`, `series_metrics` and `forecasts` `.parquet`/`.arrow`
/// files (what notebooks read): one row per model; per series and model; per series and step.
pub fn report_frames(
    eval: &Evaluation,
    train: &[Series],
    test: &[Vec<f64>],
) -> anyhow::Result<Vec<(&'static str, polars::prelude::DataFrame)>> {
    use polars::prelude::*;
    let level = |row: &Row, l: f64| {
        row.coverage
            .iter()
            .find(|(lv, _)| *lv == l)
            .map(|(_, c)| *c)
    };
    let metrics = df!(
        "model" => eval.rows.iter().map(|r| r.model.clone()).collect::<Vec<_>>(),
        "smape" => eval.rows.iter().map(|r| r.accuracy.smape).collect::<Vec<_>>(),
        "mase" => eval.rows.iter().map(|r| r.accuracy.mase).collect::<Vec<_>>(),
        "owa" => eval.rows.iter().map(|r| r.accuracy.owa).collect::<Vec<_>>(),
        "coverage_80" => eval.rows.iter().map(|r| level(r, 80.0)).collect::<Vec<_>>(),
        "coverage_95" => eval.rows.iter().map(|r| level(r, 95.0)).collect::<Vec<_>>(),
        "msis95" => eval.rows.iter().map(|r| r.msis95).collect::<Vec<_>>(),
        "series" => eval.rows.iter().map(|r| r.accuracy.series as u32).collect::<Vec<_>>(),
    )?;
    let per = &eval.per_series;
    let series_metrics = df!(
        "series" => per.iter().map(|r| train[r.0].label.clone()).collect::<Vec<_>>(),
        "model" => per.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
        "smape" => per.iter().map(|r| r.2).collect::<Vec<_>>(),
        "mase" => per.iter().map(|r| r.3).collect::<Vec<_>>(),
    )?;
    let (mut label, mut step, mut mean, mut actual) = (vec![], vec![], vec![], vec![]);
    let mut bands: [Vec<Option<f64>>; 4] = Default::default();
    for (i, f) in eval.forecasts.iter().enumerate() {
        for (j, m) in f.mean.iter().enumerate() {
            label.push(train[i].label.clone());
            step.push(j as u32 + 1);
            mean.push(*m);
            actual.push(test.get(i).and_then(|t| t.get(j)).copied());
            for (k, (lv, hi)) in [(80.0, false), (80.0, true), (95.0, false), (95.0, true)]
                .into_iter()
                .enumerate()
            {
                bands[k].push(
                    f.interval(lv)
                        .map(|iv| if hi { iv.hi[j] } else { iv.lo[j] }),
                );
            }
        }
    }
    let [lo80, hi80, lo95, hi95] = bands;
    let forecasts = df!(
        "series" => label, "step" => step, "mean" => mean,
        "lo_80" => lo80, "hi_80" => hi80, "lo_95" => lo95, "hi_95" => hi95,
        "actual" => actual,
    )?;
    Ok(vec![
        ("metrics", metrics),
        ("series_metrics", series_metrics),
        ("forecasts", forecasts),
    ])
}

/// The table as Markdown.
pub fn markdown_table(e: &Evaluation) -> String {
    let mut s = format!(
        "{} series, horizon {}, MASE lag m = {}\n\n| model | sMAPE | MASE | OWA | coverage | MSIS 95 |\n| --- | ---: | ---: | ---: | --- | ---: |\n",
        e.series, e.horizon, e.metric_season
    );
    for r in &e.rows {
        let cov = r
            .coverage
            .iter()
            .map(|(l, c)| format!("{l}%: {:.1}%", c * 100.0))
            .collect::<Vec<_>>()
            .join(", ");
        s.push_str(&format!(
            "| {} | {:.3} | {:.3} | {} | {} | {} |\n",
            r.model,
            r.accuracy.smape,
            r.accuracy.mase,
            r.accuracy.owa.map_or("-".into(), |o| format!("{o:.3}")),
            if cov.is_empty() { "-".into() } else { cov },
            r.msis95.map_or("-".into(), |m| format!("{m:.3}")),
        ));
    }
    s
}
