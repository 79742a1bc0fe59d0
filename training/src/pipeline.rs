//! Fitting: validation split, global members, ensemble selection and interval calibration.
//!
//! 1. The last `validation_windows` × `horizon` values of every series form that many consecutive
//!    validation windows (series too short for that are still forecast, but not used to choose or
//!    calibrate). Several windows make the choice and the intervals less noisy on small panels.
//! 2. The global members (Candle MLP, Linfa ridge) are trained on windows whose targets lie before
//!    the earliest validation window. They are not retrained afterwards: a global model forecasts a
//!    series from its latest window, so the same weights serve the final forecast.
//! 3. Every candidate forecasts every validation window from the data before it; the best
//!    equal-weight combination over all windows is chosen (by OWA vs Naive2, or by MASE when the
//!    validation actuals hold zeros: `selection`, see [`kwi_models::ensemble::Criterion`]), and its
//!    validation errors calibrate the intervals.
//!
//! The test part of any benchmark is never seen here.

use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use kwi_features::schema::window_schema_hash;
use kwi_features::series::Series;
use kwi_features::windows::{WindowSpec, training_windows};
use kwi_models::artifact::Manifest;
use kwi_models::conformal::Conformal;
use kwi_models::ensemble::{Member, Selection, select};
use kwi_models::{linear, mlp};
use kwi_predict::Predictor;
use serde::Serialize;

use crate::config::TrainConfig;

/// Fewest values a series needs before its validation window to take part in validation.
pub const MIN_VALIDATION_HISTORY: usize = 13;

/// Timings of the fitting steps, seconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    /// Building training windows.
    pub windows: f64,
    /// Training the MLP.
    pub mlp: f64,
    /// Fitting the linear model.
    pub linear: f64,
    /// Forecasting the validation window with every candidate.
    pub validation: f64,
}

/// What fitting produced.
pub struct Fitted {
    /// The model, ready to forecast.
    pub predictor: Predictor,
    /// Validation accuracy of every candidate and the chosen ensemble.
    pub selection: Selection,
    /// Training windows used.
    pub windows: usize,
    /// Step timings.
    pub timings: Timings,
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn bar(len: u64, what: &str) -> ProgressBar {
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{bar:30}}] {{pos}}/{{len}} ({{elapsed}}, eta {{eta}}) {{msg}}"
        ))
        .expect("static template")
        .progress_chars("=> "),
    );
    b
}

/// New model version: `fc-YYYYMMDD-HHMMSS-seed`.
pub fn new_version(seed: u64) -> String {
    format!("fc-{}-{seed}", chrono::Utc::now().format("%Y%m%d-%H%M%S"))
}

/// Fits a forecaster on `series` (see the module doc).
pub fn fit(series: &[Series], cfg: &TrainConfig) -> anyhow::Result<Fitted> {
    let h = cfg.horizon;
    let mut timings = Timings::default();
    let k = cfg.validation_windows;
    let eligible: Vec<&Series> = series
        .iter()
        .filter(|s| s.values.len() >= k * h + MIN_VALIDATION_HISTORY)
        .collect();
    if eligible.is_empty() {
        let longest = series.iter().map(|s| s.values.len()).max().unwrap_or(0);
        let fits = longest.saturating_sub(MIN_VALIDATION_HISTORY) / k;
        anyhow::bail!(
            "no series has the {} values validation needs ({k} window(s) of horizon {h} + {MIN_VALIDATION_HISTORY}); the longest has {longest}{}",
            k * h + MIN_VALIDATION_HISTORY,
            if fits >= 1 {
                format!(": --horizon {fits} or less would fit, or supply more history")
            } else {
                ": supply more history".to_string()
            }
        );
    }
    // Validation windows j = 1..=k end j-1 horizons before each series' end; their (history, actual)
    // pairs are stacked as if they were more series.
    let mut history: Vec<&[f64]> = Vec::new();
    let mut actual: Vec<&[f64]> = Vec::new();
    for j in 1..=k {
        for s in &eligible {
            let end = s.values.len() - (j - 1) * h;
            history.push(&s.values[..end - h]);
            actual.push(&s.values[end - h..end]);
        }
    }
    // Global members learn only from targets before the earliest validation window.
    let fit_history: Vec<&[f64]> = eligible
        .iter()
        .map(|s| &s.values[..s.values.len() - k * h])
        .collect();

    let t = Instant::now();
    let spec = WindowSpec {
        lookback: cfg.mlp.lookback,
        horizon: h,
    };
    let w = training_windows(
        &fit_history,
        spec,
        cfg.max_windows_per_series,
        MIN_VALIDATION_HISTORY,
    );
    anyhow::ensure!(
        !w.is_empty(),
        "no training windows could be cut from the data"
    );
    timings.windows = t.elapsed().as_secs_f64();

    let uses = |m: Member| cfg.candidates.contains(&m);
    let t = Instant::now();
    let trained_mlp = if uses(Member::Mlp) {
        let pb = bar(cfg.mlp.steps as u64, "training mlp");
        let m = mlp::train(&w.x, &w.y, w.len(), &cfg.mlp, &mut |step, loss| {
            pb.set_position(step as u64);
            if step % 50 == 0 {
                pb.set_message(format!("loss {loss:.4}"));
            }
        })
        .context("training the MLP")?;
        pb.finish_and_clear();
        Some(m)
    } else {
        None
    };
    timings.mlp = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let trained_linear = if uses(Member::Linear) {
        Some(
            linear::fit(&w.x, &w.y, w.len(), spec.lookback, h, &cfg.linear)
                .context("fitting the linear model")?,
        )
    } else {
        None
    };
    timings.linear = t.elapsed().as_secs_f64();

    // A provisional predictor with every candidate, to forecast the validation window.
    let mut manifest = Manifest {
        name: "kwi-ensemble".into(),
        version: new_version(cfg.mlp.seed),
        kind: kwi_models::artifact::ModelKind::Forecaster,
        feature_schema_hash: window_schema_hash(),
        created_at: chrono::Utc::now().to_rfc3339(),
        season: cfg.season,
        lookback: cfg.mlp.lookback,
        horizon: h,
        mlp: cfg.mlp.clone(),
        linear: cfg.linear.clone(),
        ensemble: Selection {
            members: cfg.candidates.clone(),
            weights: vec![1.0 / cfg.candidates.len() as f64; cfg.candidates.len()],
            validation: Default::default(),
            candidates: Vec::new(),
            criterion: cfg.selection,
        },
        conformal: Conformal {
            levels: Vec::new(),
            radius: Vec::new(),
        },
        training_data: serde_json::json!({
            "freq": series.first().map(|s| s.freq),
            "series": series.len(),
            "validation_series": eligible.len(),
            "validation_windows": k,
            "first_period": series.iter().map(|s| s.start).min().map(|d| d.to_string()),
            "last_period": series.iter().map(|s| s.period(s.values.len().saturating_sub(1))).max().map(|d| d.to_string()),
        }),
        metrics: serde_json::Value::Null,
    };
    let provisional = Predictor::from_parts(manifest.clone(), trained_mlp, trained_linear)?;
    let t = Instant::now();
    let pb = bar(cfg.candidates.len() as u64 + 1, "validation forecasts");
    let mut cands = Vec::new();
    for &m in &cfg.candidates {
        pb.set_message(m.as_str());
        cands.push((m, provisional.member(m, &history, h)?));
        pb.inc(1);
    }
    let reference = provisional.member(Member::Naive2, &history, h)?;
    pb.finish_and_clear();
    timings.validation = t.elapsed().as_secs_f64();
    let selection = select(
        &cands,
        &reference,
        &history,
        &actual,
        cfg.metric_season,
        cfg.max_members,
        cfg.selection,
    );
    let chosen: Vec<Vec<f64>> = (0..history.len())
        .map(|i| {
            let ms: Vec<&[f64]> = selection
                .members
                .iter()
                .map(|n| {
                    cands
                        .iter()
                        .find(|c| &c.0 == n)
                        .expect("chosen from cands")
                        .1[i]
                        .as_slice()
                })
                .collect();
            kwi_models::ensemble::combine(&ms, &selection.weights)
        })
        .collect();
    manifest.conformal = Conformal::calibrate(&history, &actual, &chosen, &Conformal::level_grid());
    manifest.ensemble = selection.clone();
    manifest.metrics = serde_json::json!({ "validation": selection.validation, "validation_candidates": selection.candidates });
    // Every trained member is kept (evaluation reports each one alone); the ensemble uses its own.
    let (_, mlp_part, linear_part) = provisional.into_parts();
    let predictor = Predictor::from_parts(manifest, mlp_part, linear_part)?;
    Ok(Fitted {
        predictor,
        selection,
        windows: w.len(),
        timings,
    })
}
