//! The `kwi-train` subcommands.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use kwi_features::ingest::InputFormat;
use kwi_features::series::Series;
use kwi_features::{Frequency, Platform};
use kwi_models::Forecast;
use kwi_predict::Predictor;
use kwi_store::ModelRecord;

use crate::config::TrainConfig;
use crate::data;
use crate::evaluate::{Evaluation, evaluate, markdown_table};
use crate::pipeline::{Fitted, fit};
use crate::report::{PLOT_LEGEND, sample_plots};

/// Fit, backtest, evaluate, forecast with and publish keyword forecasting models.
#[derive(Debug, Parser)]
#[command(name = "kwi-train", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fit a model and write its artifact folder (manifest, weights, report)
    Fit(FitArgs),
    /// Rolling-origin backtest: refit and score on the last N windows of every series
    Backtest(BacktestArgs),
    /// Fit on the training data and score against a test file or the held-out tail (M4 metrics)
    Evaluate(EvaluateArgs),
    /// Forecast every series of a file to CSV (id,step,mean,lo_80,hi_80,lo_95,hi_95)
    Forecast(ForecastArgs),
    /// Register an artifact folder in the models registry so running servers can load it
    Publish(PublishArgs),
    /// Fit and evaluate the competition model on listing files; write its artifact and report
    FitCompetition(crate::competition::FitCompetitionArgs),
    /// Compute and store competition scores, opportunity and trend insights for every stored keyword
    Insights(crate::competition::InsightsArgs),
    /// Queue every stored keyword, in chunks, for the workers to forecast with the active model
    Reforecast(crate::reforecast::ReforecastArgs),
}

/// Where the series come from.
#[derive(Debug, Clone, Args)]
pub struct InputArgs {
    /// Training data file (.csv, .parquet, .arrow); without it, the store is read
    #[arg(long)]
    pub train: Option<PathBuf>,
    /// Layout of --train: m4, gtrends, long (auto detects from the header)
    #[arg(long, default_value = "auto")]
    pub format: InputFormat,
    /// Platform of files that do not name one; with the store, read only this platform
    #[arg(long)]
    pub platform: Option<Platform>,
    /// m4 files: date of the first value (default 2000-01-02)
    #[arg(long)]
    pub start: Option<NaiveDate>,
    /// Period length: daily, weekly or monthly (default: what the file's layout says, e.g. monthly
    /// for a Keyword Planner export, else what the dates say, else weekly)
    #[arg(long)]
    pub freq: Option<Frequency>,
    /// Database to read observations from when --train is not given (default: the embedded SQLite file)
    #[arg(long, env = "KWI_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Directory of the embedded database and artifacts
    #[arg(long, env = "KWI_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
}

impl InputArgs {
    fn database_url(&self) -> String {
        kwi_store::url_or_embedded(self.database_url.as_deref(), &self.data_dir)
    }

    /// The series and the frequency they were put on.
    async fn load(&self) -> anyhow::Result<(Vec<Series>, Frequency)> {
        match &self.train {
            Some(p) => data::load_file(p, self.format, self.platform, self.start, self.freq),
            None => data::load_store(&self.database_url(), self.platform, self.freq).await,
        }
    }
}

/// Hyperparameter sources.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// TOML config (keys as in README's table; missing keys take defaults)
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override: forecast horizon
    #[arg(long)]
    pub horizon: Option<usize>,
    /// Override: MLP optimiser steps
    #[arg(long)]
    pub steps: Option<usize>,
    /// Override: seed
    #[arg(long)]
    pub seed: Option<u64>,
    /// Override: seasonal naive's period (default 52 for --freq weekly, 7 for daily, 12 for monthly)
    #[arg(long)]
    pub season: Option<usize>,
    /// Override: MASE lag / Naive2 season (M4 Weekly: 1)
    #[arg(long)]
    pub metric_season: Option<usize>,
    /// Override: interval levels, e.g. 80,95
    #[arg(long, value_delimiter = ',')]
    pub levels: Option<Vec<f64>>,
    /// Override: what the ensemble choice minimises on validation: auto (MASE when a validation
    /// actual is 0, else OWA), owa or mase
    #[arg(long)]
    pub selection: Option<kwi_models::ensemble::Criterion>,
}

impl ConfigArgs {
    /// The configuration: defaults, then the frequency's defaults where the TOML file sets no
    /// value (daily: season 7; monthly: season 12, horizon 12, metric season 12, lookback 36), then
    /// the file, then flags.
    fn build(&self, freq: Frequency) -> anyhow::Result<TrainConfig> {
        let (mut c, set) = match &self.config {
            Some(p) => TrainConfig::from_file(p)?,
            None => (TrainConfig::default(), toml::Table::new()),
        };
        c.for_frequency(freq, &set);
        if let Some(s) = self.season {
            c.season = s;
        }
        if let Some(h) = self.horizon {
            c.horizon = h;
        }
        if let Some(s) = self.steps {
            c.mlp.steps = s;
        }
        if let Some(s) = self.seed {
            c.mlp.seed = s;
        }
        if let Some(m) = self.metric_season {
            c.metric_season = m;
        }
        if let Some(l) = &self.levels {
            c.levels = l.clone();
        }
        if let Some(s) = self.selection {
            c.selection = s;
        }
        c.check()?;
        Ok(c)
    }
}

/// `kwi-train fit`.
#[derive(Debug, Clone, Args)]
pub struct FitArgs {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    config: ConfigArgs,
    /// Artifact folder (default: DATA_DIR/artifacts/VERSION)
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `kwi-train evaluate`.
#[derive(Debug, Clone, Args)]
pub struct EvaluateArgs {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    config: ConfigArgs,
    /// Test file matched by series id (M4 layout); without it, --holdout is used
    #[arg(long)]
    test: Option<PathBuf>,
    /// Hold out the last N periods of every series as the test part (default: the horizon)
    #[arg(long)]
    holdout: Option<usize>,
    /// Report folder (default: runs/eval-VERSION)
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `kwi-train backtest`.
#[derive(Debug, Clone, Args)]
pub struct BacktestArgs {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    config: ConfigArgs,
    /// Number of rolling origins (each one refits)
    #[arg(long, default_value_t = 3)]
    windows: usize,
    /// Drop the last N periods of every series first, so that the backtest never sees a test part
    /// kept for the final evaluation (e.g. `--holdout 13` here, `evaluate --holdout 13` at the end)
    #[arg(long, default_value_t = 0)]
    holdout: usize,
    /// Report folder (default: runs/backtest-VERSION)
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `kwi-train forecast`.
#[derive(Debug, Clone, Args)]
pub struct ForecastArgs {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    config: ConfigArgs,
    /// Use this published model version (its artifact folder under DATA_DIR/artifacts, or the
    /// registry's path) instead of fitting
    #[arg(long)]
    model: Option<String>,
    /// Drop the last N periods of every series before fitting and forecasting
    #[arg(long, default_value_t = 0)]
    holdout: usize,
    /// Output CSV
    #[arg(long)]
    out: PathBuf,
}

/// `kwi-train publish`.
#[derive(Debug, Clone, Args)]
pub struct PublishArgs {
    /// Artifact folder written by `kwi-train fit`
    #[arg(long)]
    artifact: PathBuf,
    /// Register without making it the active forecaster
    #[arg(long)]
    no_activate: bool,
    /// Database holding the registry (default: the embedded SQLite file)
    #[arg(long, env = "KWI_DATABASE_URL")]
    database_url: Option<String>,
    /// Directory of the embedded database
    #[arg(long, env = "KWI_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Fit(a) => cmd_fit(a).await,
        Command::Evaluate(a) => cmd_evaluate(a).await,
        Command::Backtest(a) => cmd_backtest(a).await,
        Command::Forecast(a) => cmd_forecast(a).await,
        Command::Publish(a) => cmd_publish(a).await,
        Command::FitCompetition(a) => crate::competition::cmd_fit_competition(a).await,
        Command::Insights(a) => crate::competition::cmd_insights(a).await,
        Command::Reforecast(a) => crate::reforecast::cmd_reforecast(a).await,
    }
}

fn fit_logged(series: &[Series], cfg: &TrainConfig) -> anyhow::Result<Fitted> {
    let t = Instant::now();
    let f = fit(series, cfg)?;
    eprintln!(
        "fitted {} on {} series ({} windows) in {:.1}s: ensemble {} chosen by validation {} (OWA {}, MASE {:.3})",
        f.predictor.manifest.version,
        series.len(),
        f.windows,
        t.elapsed().as_secs_f64(),
        kwi_models::ensemble::joined(&f.selection.members),
        f.selection.criterion,
        f.selection
            .validation
            .owa
            .map_or("-".into(), |o| format!("{o:.3}")),
        f.selection.validation.mase
    );
    Ok(f)
}

/// Fits on `train` and scores the model against the held-out `test` tails.
fn fit_and_evaluate(
    train: &[Series],
    test: &[Vec<f64>],
    cfg: &TrainConfig,
) -> anyhow::Result<(Fitted, Evaluation)> {
    let fitted = fit_logged(train, cfg)?;
    let eval = evaluate(
        &fitted.predictor,
        train,
        test,
        &cfg.levels,
        cfg.metric_season,
    )?;
    Ok((fitted, eval))
}

async fn cmd_fit(a: FitArgs) -> anyhow::Result<()> {
    let (series, freq) = a.input.load().await?;
    let cfg = a.config.build(freq)?;
    let fitted = fit_logged(&series, &cfg)?;
    let dir = a.out.unwrap_or_else(|| {
        a.input
            .data_dir
            .join("artifacts")
            .join(&fitted.predictor.manifest.version)
    });
    if std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
        bail!(
            "{} already exists and is not empty; choose another --out (an existing artifact is never overwritten)",
            dir.display()
        );
    }
    // Everything is written into a staging folder that is renamed into place at the end, so a
    // failure never leaves a half-written artifact that `publish` could pick up.
    let final_dir = dir;
    let dir = final_dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&dir);
    fitted.predictor.save(&dir)?;
    std::fs::write(dir.join("config.toml"), toml::to_string_pretty(&cfg)?)?;
    let json = serde_json::json!({
        "manifest": fitted.predictor.manifest,
        "timings_s": fitted.timings,
        "windows": fitted.windows,
    });
    std::fs::write(dir.join("report.json"), serde_json::to_vec_pretty(&json)?)?;
    let mut md = format!(
        "# Fit {}\n\n{} series, {} training windows. Ensemble: {} (weights {:?}), chosen by validation {}.\n\n## Validation (last {} periods of the training data)\n\n| model | sMAPE | MASE | OWA |\n| --- | ---: | ---: | ---: |\n",
        fitted.predictor.manifest.version,
        series.len(),
        fitted.windows,
        kwi_models::ensemble::joined(&fitted.selection.members),
        fitted.selection.weights,
        fitted.selection.criterion,
        cfg.horizon
    );
    for (name, acc) in &fitted.selection.candidates {
        md.push_str(&format!(
            "| {name} | {:.3} | {:.3} | {} |\n",
            acc.smape,
            acc.mase,
            acc.owa.map_or("-".into(), |o| format!("{o:.3}"))
        ));
    }
    let v = &fitted.selection.validation;
    md.push_str(&format!(
        "| **ensemble** | {:.3} | {:.3} | {} |\n\nTimings (s): {:?}\n",
        v.smape,
        v.mase,
        v.owa.map_or("-".into(), |o| format!("{o:.3}")),
        fitted.timings
    ));
    let hist: Vec<&[f64]> = series.iter().map(|s| s.values.as_slice()).collect();
    let forecasts = fitted.predictor.forecast(&hist, cfg.horizon, &cfg.levels)?;
    let plots = sample_plots(&dir, &series, &forecasts, None, 4)?;
    append_plots(&mut md, &plots);
    std::fs::write(dir.join("report.md"), md)?;
    if final_dir.exists() {
        std::fs::remove_dir(&final_dir)
            .with_context(|| format!("cannot replace empty folder {}", final_dir.display()))?;
    }
    std::fs::rename(&dir, &final_dir)
        .with_context(|| format!("cannot move the artifact into {}", final_dir.display()))?;
    println!("{}", final_dir.display());
    Ok(())
}

fn append_plots(md: &mut String, plots: &[(PathBuf, String)]) {
    md.push_str(&format!("\n## Sample forecasts\n\n{PLOT_LEGEND}\n\n"));
    for (file, label) in plots {
        md.push_str(&format!(
            "**{label}**\n\n![{label}]({})\n\n",
            file.display()
        ));
    }
}

async fn cmd_evaluate(a: EvaluateArgs) -> anyhow::Result<()> {
    let (all, freq) = a.input.load().await?;
    let cfg = a.config.build(freq)?;
    let (train, test) = match (&a.test, a.holdout) {
        (Some(t), _) => {
            let test = data::load_m4_test(t, &all)?;
            (all, test)
        }
        (None, n) => data::holdout(&all, n.unwrap_or(cfg.horizon), cfg.horizon + 13)?,
    };
    let t = Instant::now();
    let (fitted, eval) = fit_and_evaluate(&train, &test, &cfg)?;
    let secs = t.elapsed().as_secs_f64();
    let table = markdown_table(&eval);
    println!("{table}\nfit + forecast: {secs:.1}s");
    let dir = a.out.unwrap_or_else(|| {
        PathBuf::from("runs").join(format!("eval-{}", fitted.predictor.manifest.version))
    });
    write_eval_report(&dir, &fitted, &eval, &train, &test, secs, &table)?;
    eprintln!("report: {}", dir.join("report.md").display());
    Ok(())
}

fn write_eval_report(
    dir: &Path,
    fitted: &Fitted,
    eval: &Evaluation,
    train: &[Series],
    test: &[Vec<f64>],
    secs: f64,
    table: &str,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let json = serde_json::json!({
        "manifest": fitted.predictor.manifest,
        "evaluation": eval,
        "fit_and_forecast_s": secs,
        "timings_s": fitted.timings,
    });
    std::fs::write(dir.join("report.json"), serde_json::to_vec_pretty(&json)?)?;
    let mut md = format!(
        "# Evaluation {}\n\nEnsemble chosen on validation (by {}): {}.\n\n{table}\nFit + forecast: {secs:.1}s\n",
        fitted.predictor.manifest.version,
        fitted.selection.criterion,
        kwi_models::ensemble::joined(&fitted.selection.members)
    );
    for (name, mut frame) in crate::evaluate::report_frames(eval, train, test)? {
        kwi_features::export::write_parquet(&mut frame, &dir.join(format!("{name}.parquet")))?;
        kwi_features::export::write_ipc(&mut frame, &dir.join(format!("{name}.arrow")))?;
    }
    let plots = sample_plots(dir, train, &eval.forecasts, Some(test), 6)?;
    append_plots(&mut md, &plots);
    std::fs::write(dir.join("report.md"), md)?;
    Ok(())
}

async fn cmd_backtest(a: BacktestArgs) -> anyhow::Result<()> {
    if a.windows == 0 {
        bail!("--windows must be at least 1");
    }
    let (mut all, freq) = a.input.load().await?;
    let cfg = a.config.build(freq)?;
    if a.holdout > 0 {
        all = data::holdout(&all, a.holdout, 2)?.0;
    }
    let h = cfg.horizon;
    let mut summaries = Vec::new();
    // Per model, its (sMAPE, MASE, OWA) at every origin, for the closing mean table.
    type Scores = Vec<(f64, f64, Option<f64>)>;
    let mut by_model: Vec<(String, Scores)> = Vec::new();
    for w in (1..=a.windows).rev() {
        // Origin w: drop the last (w-1)·H periods, then hold out the next H.
        let (cut, _) = data::holdout(&all, (w - 1) * h, 2 * h + 13)?;
        let (train, test) = data::holdout(&cut, h, h + 13)?;
        let origin = w * h + a.holdout;
        eprintln!(
            "window {} of {}: origin {origin} periods before the end",
            a.windows - w + 1,
            a.windows,
        );
        let (fitted, eval) = fit_and_evaluate(&train, &test, &cfg)?;
        println!(
            "## origin -{origin} (ensemble {}, chosen by validation {})\n\n{}",
            kwi_models::ensemble::joined(&fitted.selection.members),
            fitted.selection.criterion,
            markdown_table(&eval)
        );
        for r in &eval.rows {
            let at = match by_model.iter().position(|(m, _)| *m == r.model) {
                Some(i) => i,
                None => {
                    by_model.push((r.model.clone(), Vec::new()));
                    by_model.len() - 1
                }
            };
            by_model[at]
                .1
                .push((r.accuracy.smape, r.accuracy.mase, r.accuracy.owa));
        }
        summaries.push(serde_json::json!({
            "origin_from_end": origin,
            "ensemble": fitted.selection,
            "evaluation": eval,
        }));
    }
    let mut table = format!(
        "## mean over the {} origins\n\n| model | sMAPE | MASE | OWA |\n| --- | ---: | ---: | ---: |\n",
        a.windows
    );
    for (model, v) in &by_model {
        let n = v.len() as f64;
        let owa: Option<Vec<f64>> = v.iter().map(|x| x.2).collect();
        table.push_str(&format!(
            "| {model} | {:.3} | {:.3} | {} |\n",
            v.iter().map(|x| x.0).sum::<f64>() / n,
            v.iter().map(|x| x.1).sum::<f64>() / n,
            owa.map_or("-".into(), |o| format!("{:.3}", o.iter().sum::<f64>() / n)),
        ));
    }
    println!("{table}");
    let dir = a.out.unwrap_or_else(|| {
        PathBuf::from("runs").join(format!(
            "backtest-{}",
            crate::pipeline::new_version(cfg.mlp.seed)
        ))
    });
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_vec_pretty(&summaries)?,
    )?;
    eprintln!("report: {}", dir.join("report.json").display());
    Ok(())
}

fn level_name(l: f64) -> String {
    if l.fract() == 0.0 {
        format!("{l:.0}")
    } else {
        format!("{l}")
    }
}

/// Writes `id,step,mean,lo_L,hi_L...` rows.
pub fn write_forecast_csv(
    path: &Path,
    series: &[Series],
    forecasts: &[Forecast],
    levels: &[f64],
) -> anyhow::Result<()> {
    let tmp = path.with_extension("csv.partial");
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?,
    );
    let mut header = String::from("id,step,mean");
    for l in levels {
        header.push_str(&format!(",lo_{0},hi_{0}", level_name(*l)));
    }
    writeln!(f, "{header}")?;
    for (s, fc) in series.iter().zip(forecasts) {
        let id = if s.label.contains([',', '"']) {
            format!("\"{}\"", s.label.replace('"', "\"\""))
        } else {
            s.label.clone()
        };
        for k in 0..fc.mean.len() {
            let mut line = format!("{id},{},{}", k + 1, fc.mean[k]);
            for l in levels {
                let iv = fc.interval(*l).context("interval level not calibrated")?;
                line.push_str(&format!(",{},{}", iv.lo[k], iv.hi[k]));
            }
            writeln!(f, "{line}")?;
        }
    }
    f.flush()?;
    drop(f);
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

async fn cmd_forecast(a: ForecastArgs) -> anyhow::Result<()> {
    let (all, freq) = a.input.load().await?;
    let cfg = a.config.build(freq)?;
    let series = if a.holdout > 0 {
        data::holdout(&all, a.holdout, 2)?.0
    } else {
        all
    };
    let t = Instant::now();
    let predictor = match &a.model {
        Some(v) => {
            let dir = a.input.data_dir.join("artifacts").join(v);
            let dir = if dir.exists() {
                dir
            } else {
                let store = kwi_store::connect(&a.input.database_url()).await?;
                store.migrate().await?;
                let rec = store
                    .models()
                    .await?
                    .into_iter()
                    .find(|m| &m.version == v)
                    .with_context(|| {
                        format!(
                            "model {v} is neither in {} nor in the registry",
                            a.input.data_dir.join("artifacts").display()
                        )
                    })?;
                PathBuf::from(rec.artifact)
            };
            Predictor::load(&dir)
                .with_context(|| format!("cannot load model from {}", dir.display()))?
        }
        None => fit_logged(&series, &cfg)?.predictor,
    };
    let hist: Vec<&[f64]> = series.iter().map(|s| s.values.as_slice()).collect();
    let forecasts = predictor.forecast(&hist, cfg.horizon, &cfg.levels)?;
    write_forecast_csv(&a.out, &series, &forecasts, &cfg.levels)?;
    eprintln!(
        "wrote {} rows for {} series to {} in {:.1}s (model {})",
        series.len() * cfg.horizon,
        series.len(),
        a.out.display(),
        t.elapsed().as_secs_f64(),
        predictor.manifest.version
    );
    Ok(())
}

async fn cmd_publish(a: PublishArgs) -> anyhow::Result<()> {
    let url = kwi_store::url_or_embedded(a.database_url.as_deref(), &a.data_dir);
    publish_artifact(&url, &a.artifact, !a.no_activate).await
}

/// Registers an artifact folder (a forecaster from `fit`, or a competition model from
/// `fit-competition`: each has its own manifest) in the model registry, as the active model of its
/// kind when `activate`; the stored path is the folder's canonical path.
pub async fn publish_artifact(url: &str, dir: &Path, activate: bool) -> anyhow::Result<()> {
    let (name, version, kind, hash, metrics) = match kwi_models::artifact::load_competition(dir) {
        Ok((m, _)) => (m.name, m.version, m.kind, m.feature_schema_hash, m.metrics),
        Err(_) => {
            let m = Predictor::load(dir)
                .with_context(|| format!("{} is not a loadable artifact", dir.display()))?
                .manifest;
            (m.name, m.version, m.kind, m.feature_schema_hash, m.metrics)
        }
    };
    let record = ModelRecord {
        name,
        version,
        kind,
        feature_schema_hash: hash,
        metrics,
        artifact: std::fs::canonicalize(dir)
            .with_context(|| format!("cannot resolve {}", dir.display()))?
            .display()
            .to_string(),
        created_at: chrono::Utc::now(),
        active: activate,
    };
    let store = kwi_store::open(url).await?;
    let existing = store
        .models()
        .await?
        .into_iter()
        .find(|m| m.version == record.version);
    if let Some(m) = existing {
        anyhow::ensure!(
            m.artifact == record.artifact,
            "version {} is already registered with another artifact folder ({}); \
             versions are unique: refit to get a new version",
            m.version,
            m.artifact
        );
        if record.active && !m.active {
            store.activate_model(&m.version).await?;
            println!(
                "{} model {} was already registered; now active",
                m.kind, m.version
            );
        } else {
            println!(
                "{} model {} is already registered{}; nothing to do",
                m.kind,
                m.version,
                if m.active { " and active" } else { "" }
            );
        }
        return Ok(());
    }
    store
        .register_model(&record, record.active)
        .await
        .with_context(|| format!("cannot register {}", record.version))?;
    println!(
        "published {} model {}{}",
        record.kind,
        record.version,
        if record.active { " (active)" } else { "" }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(config: Option<PathBuf>, season: Option<usize>) -> ConfigArgs {
        ConfigArgs {
            config,
            horizon: None,
            steps: None,
            seed: None,
            season,
            metric_season: None,
            levels: None,
            selection: None,
        }
    }

    #[test]
    fn daily_data_defaults_to_a_day_of_week_season_unless_set() {
        assert_eq!(
            args(None, None).build(Frequency::Weekly).unwrap().season,
            52
        );
        assert_eq!(args(None, None).build(Frequency::Daily).unwrap().season, 7);
        assert_eq!(
            args(None, Some(30)).build(Frequency::Daily).unwrap().season,
            30
        );
        let dir = tempfile::tempdir().unwrap();
        let with = dir.path().join("with.toml");
        std::fs::write(&with, "season = 14\n").unwrap();
        let without = dir.path().join("without.toml");
        std::fs::write(&without, "horizon = 8\n").unwrap();
        let daily = |p: &PathBuf| args(Some(p.clone()), None).build(Frequency::Daily).unwrap();
        assert_eq!(daily(&with).season, 14);
        assert_eq!((daily(&without).season, daily(&without).horizon), (7, 8));
        let monthly =
            |p: Option<&PathBuf>| args(p.cloned(), None).build(Frequency::Monthly).unwrap();
        let m = monthly(None);
        assert_eq!(
            (m.season, m.horizon, m.metric_season, m.mlp.lookback),
            (12, 12, 12, 36)
        );
        let m = monthly(Some(&without));
        assert_eq!((m.season, m.horizon), (12, 8));
        let lookback = dir.path().join("lookback.toml");
        std::fs::write(&lookback, "[mlp]\nlookback = 24\n").unwrap();
        assert_eq!(monthly(Some(&lookback)).mlp.lookback, 24);
    }
}
