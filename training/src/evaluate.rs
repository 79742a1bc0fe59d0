//! Scoring forecasts against held-out actuals: M4 metrics per member and for the ensemble, interval
//! coverage and MSIS.

use kwi::forecast::Predictor;
use kwi_features::series::Series;
use kwi_models::metrics::{Accuracy, accuracy, coverage, msis};
use kwi_models::Forecast;
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
    let reference = predictor.member("naive2", &hist, h)?;
    let base = accuracy(&hist, &act, &reference, metric_season);
    let mut rows = Vec::new();
    for name in kwi::forecast::MEMBERS {
        let Ok(f) = predictor.member(name, &hist, h) else { continue };
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
        .map(|((f, a), h)| f.interval(95.0).map(|iv| msis(h, a, &iv.lo, &iv.hi, 0.05, metric_season)))
        .collect::<Option<Vec<f64>>>()
        .map(|v| v.iter().sum::<f64>() / v.len().max(1) as f64);
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
    })
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
