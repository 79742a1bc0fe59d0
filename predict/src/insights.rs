//! Competition scores, opportunity and trend insights for every stored keyword, computed in one
//! pass and stored in one transaction (`competition_scores`, `keyword_insights`), so the API and
//! dashboards read them cheaply. Run by `kwi-train insights` and, in the background, by `kwi serve`
//! at start-up. Forecasts come from the same [`Predictor`] the server serves (no second forecasting
//! path); competition from the active competition model in the registry, or the documented
//! composite fallback.
//!
//! Definitions (H = horizon, weekly periods):
//! - `current`: mean of the last 4 periods; `forecast_end`: the forecast mean at step H;
//!   `growth_pct = 100·(forecast_end − current) / current`.
//! - `direction`: `rising` when the **lower** 80 % bound at step H is above `current`, `falling`
//!   when the **upper** 80 % bound is below it, else `flat`: growth that stays inside the interval is
//!   noise.
//! - `peak`: the highest forecast step within max(H, 52) weeks, reported when it is at least 5 %
//!   above both `current` and the last forecast step (a hump, not a monotone rise).
//! - `anomaly`: the latest actual lies outside the 95 % band of a one-step forecast made without it.
//! - `opportunity` = ½·(50 + clamp(growth_pct, −50, 50)) + ½·(100 − competition), competition
//!   counted as 50 when the keyword has no listing data (the explanation says so).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use kwi_features::ingest::Observation;
use kwi_features::series::{Series, regularise_each};
use kwi_features::{Horizon, Keyword, Platform};
use kwi_models::artifact::load_competition;
use kwi_models::competition::{CompetitionInput, CompetitionModel, ListingStats};
use serde_json::json;

use kwi_store::{CompetitionRow, ExportFilter, ExportObservation, InsightRow, ModelKind, Store};

use crate::Predictor;

/// Version reported for scores from the composite fallback.
pub const COMPOSITE_VERSION: &str = "builtin-composite-v1";
/// Interval level that growth must clear to count as a direction.
pub const DIRECTION_LEVEL: f64 = 80.0;
/// Interval level of the anomaly check.
pub const ANOMALY_LEVEL: f64 = 95.0;
/// Shortest series that gets insights (4 periods of "current" plus a one-step backtest).
pub const MIN_PERIODS: usize = 8;
/// Series forecast per batch (progress is reported between batches).
const BATCH: usize = 256;

/// The competition scorer in use: a published model or the composite fallback.
#[derive(Debug, Clone)]
pub struct CompetitionScorer {
    /// Model version (`builtin-composite-v1` for the fallback).
    pub version: String,
    /// The model.
    pub model: CompetitionModel,
    /// Whether it was trained on generated data.
    pub synthetic: bool,
}

impl CompetitionScorer {
    /// The documented composite fallback (no training data).
    pub fn composite() -> Self {
        Self {
            version: COMPOSITE_VERSION.into(),
            model: CompetitionModel::composite(5.0),
            synthetic: false,
        }
    }

    /// Loads a competition artifact folder.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let (m, model) = load_competition(dir)?;
        Ok(Self {
            synthetic: m.training_data["synthetic"].as_bool().unwrap_or(false),
            version: m.version,
            model,
        })
    }

    /// The active competition model of the registry, or the composite (logged) when none is active
    /// or it cannot be loaded.
    pub async fn active(store: &dyn Store) -> anyhow::Result<Self> {
        let active = store
            .models()
            .await?
            .into_iter()
            .find(|m| m.active && m.kind == ModelKind::Competition);
        if let Some(m) = active {
            match Self::load(Path::new(&m.artifact)) {
                Ok(s) => return Ok(s),
                Err(e) => {
                    tracing::error!(version = %m.version, error = %e, "active competition model cannot be loaded; using the composite")
                }
            }
        }
        Ok(Self::composite())
    }
}

/// The competition inputs a stored observation carries (`review_count_median` stands in for the
/// top-10 median), through the mapping training uses ([`ListingStats`]).
pub fn competition_input(o: &ExportObservation) -> CompetitionInput {
    let listings = o.listing_count.map(|c| c as f64);
    ListingStats {
        listing_count: listings,
        listings_per_demand: ListingStats::per_demand(listings, o.search_volume),
        top10_review_median: o.review_count_median,
        top10_review_share: o.top10_review_share,
        top10_rating_mean: o.rating_mean,
        price_p25: o.price_p25,
        price_median: o.price_median,
        price_p75: o.price_p75,
        sponsored_share: o.sponsored_share,
        cpc: o.cpc,
    }
    .into()
}

/// What the store holds for the computation.
#[derive(Debug, Default)]
pub struct Gathered {
    /// Regular series of every keyword with search volumes.
    pub series: Vec<Series>,
    /// The latest observation with listing data, per keyword.
    pub competition: BTreeMap<(Platform, Keyword), CompetitionInput>,
}

/// Reads every observation (streamed) into series and the latest competition inputs.
pub async fn gather(store: &dyn Store) -> anyhow::Result<Gathered> {
    let filter = ExportFilter::default();
    let mut rows = store.export_observations(&filter);
    let mut obs = Vec::new();
    let mut competition = BTreeMap::new();
    while let Some(r) = rows.next().await {
        let r = r?;
        let platform: Platform = r.platform.parse()?;
        let keyword = Keyword::parse(&r.keyword)?;
        let input = competition_input(&r);
        if !input.is_empty() {
            // Rows arrive by period: the last one with listing data wins.
            competition.insert((platform, keyword.clone()), input);
        }
        if r.search_volume.is_some() {
            let mut values = [None; kwi_features::ingest::VALUE_COUNT];
            values[0] = r.search_volume;
            obs.push(Observation {
                platform,
                keyword,
                period_start: r.period_start,
                values,
                source: r.source,
                line: 0,
            });
        }
    }
    let series = tokio::task::spawn_blocking(move || regularise_each(&obs)).await?;
    Ok(Gathered {
        series,
        competition,
    })
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Everything computed, ready to store.
#[derive(Debug, Default)]
pub struct Computed {
    /// One per keyword with listing data.
    pub scores: Vec<CompetitionRow>,
    /// One per keyword with at least [`MIN_PERIODS`] periods.
    pub insights: Vec<InsightRow>,
}

/// Computes scores and insights (CPU-bound: call from a blocking thread). `progress(done, total)`
/// is called after every batch of series.
pub fn compute(
    predictor: &Predictor,
    scorer: &CompetitionScorer,
    data: &Gathered,
    horizon: Horizon,
    progress: &dyn Fn(usize, usize),
) -> anyhow::Result<Computed> {
    let horizon = horizon.get();
    let mut out = Computed::default();
    let mut comp_scores: BTreeMap<(Platform, Keyword), (f64, String)> = BTreeMap::new();
    for ((p, k), input) in &data.competition {
        let s = scorer.model.score(input);
        comp_scores.insert((*p, k.clone()), (s.score, s.band.clone()));
        out.scores.push(CompetitionRow {
            platform: *p,
            keyword: k.clone(),
            score: round2(s.score),
            band: s.band,
            contributions: serde_json::to_value(
                s.contributions
                    .iter()
                    .map(|c| json!({"factor": c.factor, "label": c.label, "points": round2(c.points)}))
                    .collect::<Vec<_>>(),
            )?,
            model_version: scorer.version.clone(),
            synthetic: scorer.synthetic,
        });
    }
    let eligible: Vec<&Series> = data
        .series
        .iter()
        .filter(|s| s.values.len() >= MIN_PERIODS)
        .collect();
    let long = horizon.max(52);
    let total = eligible.len();
    for (b, chunk) in eligible.chunks(BATCH).enumerate() {
        let cut: Vec<Series> = chunk
            .iter()
            .map(|s| {
                let mut c = (*s).clone();
                c.values.pop();
                c.observed.pop();
                c
            })
            .collect();
        let cut_refs: Vec<&Series> = cut.iter().collect();
        // Keywords at another frequency than the model's get their own baseline (`forecast_any`).
        let fc = predictor.forecast_any(chunk, long, &[DIRECTION_LEVEL, ANOMALY_LEVEL])?;
        let one = predictor.forecast_any(&cut_refs, 1, &[ANOMALY_LEVEL])?;
        for ((s, (f, version)), (o, _)) in chunk.iter().zip(&fc).zip(&one) {
            let competition = comp_scores.get(&(s.platform, s.keyword.clone()));
            out.insights
                .push(insight(s, f, o, horizon, competition, version));
        }
        progress((b * BATCH + chunk.len()).min(total), total);
    }
    Ok(out)
}

fn insight(
    s: &Series,
    f: &kwi_models::Forecast,
    one_step: &kwi_models::Forecast,
    horizon: usize,
    competition: Option<&(f64, String)>,
    version: &str,
) -> InsightRow {
    let n = s.values.len();
    let current = mean(&s.values[n - 4..]);
    let end = f.mean[horizon - 1];
    let iv = f.interval(DIRECTION_LEVEL).expect("level requested");
    let direction = if iv.lo[horizon - 1] > current {
        "rising"
    } else if iv.hi[horizon - 1] < current {
        "falling"
    } else {
        "flat"
    };
    let growth_pct = if current > 1e-9 {
        100.0 * (end - current) / current
    } else {
        0.0
    };
    let weeks_per_step = s.freq.mean_days() / 7.0;
    let (k, &top) = f
        .mean
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
        .expect("non-empty forecast");
    let last = *f.mean.last().expect("non-empty forecast");
    let peak = (top >= 1.05 * current && top >= 1.05 * last && current > 1e-9).then(|| {
        json!({
            "in_weeks": ((k + 1) as f64 * weeks_per_step).round() as i64,
            "value": round2(top),
            "date": s.period(n + k),
        })
    });
    let band95 = one_step.interval(ANOMALY_LEVEL).expect("level requested");
    let actual = s.values[n - 1];
    let (lo, hi) = (band95.lo[0], band95.hi[0]);
    let anomaly = (s.observed[n - 1] && (actual < lo || actual > hi)).then(|| {
        json!({
            "date": s.period(n - 1),
            "actual": round2(actual),
            "lower": round2(lo),
            "upper": round2(hi),
        })
    });
    let (opportunity, explanation) = opportunity(growth_pct, direction, horizon, competition);
    InsightRow {
        platform: s.platform,
        keyword: s.keyword.clone(),
        direction: direction.into(),
        growth_pct: round2(growth_pct),
        current: round2(current),
        forecast_end: round2(end),
        horizon: horizon as i32,
        peak,
        anomaly,
        opportunity: Some(round2(opportunity)),
        opportunity_explanation: Some(explanation),
        model_version: version.into(),
    }
}

/// Opportunity 0..=100 and its one-line explanation (see the module docs).
pub fn opportunity(
    growth_pct: f64,
    direction: &str,
    horizon: usize,
    competition: Option<&(f64, String)>,
) -> (f64, String) {
    let demand = 50.0 + growth_pct.clamp(-50.0, 50.0);
    let (c, comp_text) = match competition {
        Some((score, band)) => (*score, format!("competition {score:.0}/100 ({band})")),
        None => (
            50.0,
            "competition unknown (no listing data), counted as 50".to_string(),
        ),
    };
    let score = (0.5 * demand + 0.5 * (100.0 - c)).clamp(0.0, 100.0);
    (
        score,
        format!("demand {growth_pct:+.0}% over {horizon} weeks ({direction}); {comp_text}"),
    )
}

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Keywords with a competition score.
    pub scored: usize,
    /// Keywords with insights.
    pub insights: usize,
    /// Of those, rising / falling.
    pub rising: usize,
    /// Falling.
    pub falling: usize,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} keywords with insights ({} rising, {} falling), {} with a competition score",
            self.insights, self.rising, self.falling, self.scored
        )
    }
}

/// Gathers, computes (on a blocking thread) and stores in one transaction. `progress(done, total)`
/// reports forecast batches.
pub async fn run(
    store: &dyn Store,
    predictor: Arc<Predictor>,
    scorer: CompetitionScorer,
    horizon: Horizon,
    progress: Arc<dyn Fn(usize, usize) + Send + Sync>,
) -> anyhow::Result<Summary> {
    let data = gather(store).await?;
    let computed = tokio::task::spawn_blocking(move || {
        compute(&predictor, &scorer, &data, horizon, &*progress)
    })
    .await??;
    store
        .replace_insights(&computed.scores, &computed.insights)
        .await?;
    let count = |d: &str| {
        computed
            .insights
            .iter()
            .filter(|i| i.direction == d)
            .count()
    };
    Ok(Summary {
        scored: computed.scores.len(),
        insights: computed.insights.len(),
        rising: count("rising"),
        falling: count("falling"),
    })
}

/// One run of the insights job in the background (what [`spawn_scheduler`] runs each time):
/// computes and stores insights off the request path, logging progress.
pub fn spawn_job(
    store: Arc<dyn Store>,
    predictor: Arc<Predictor>,
    horizon: Horizon,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        run_logged(store, predictor, horizon).await;
    })
}

/// One logged run; whether it stored its results.
async fn run_logged(store: Arc<dyn Store>, predictor: Arc<Predictor>, horizon: Horizon) -> bool {
    let t = Instant::now();
    let scorer = match CompetitionScorer::active(store.as_ref()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "insights job: cannot read the registry");
            return false;
        }
    };
    tracing::info!(forecaster = %predictor.manifest.version, competition = %scorer.version, "insights job started");
    let progress: Arc<dyn Fn(usize, usize) + Send + Sync> =
        Arc::new(|done: usize, total: usize| {
            tracing::info!(done, total, "insights job: series forecast");
        });
    match run(store.as_ref(), predictor, scorer, horizon, progress).await {
        Ok(s) => {
            tracing::info!(%s, secs = t.elapsed().as_secs_f64(), "insights job finished");
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "insights job failed");
            false
        }
    }
}

/// What stored insights were computed from: the store's newest data change, the served forecaster
/// and the active competition model.
#[derive(Debug, Clone, PartialEq)]
struct Inputs {
    data: Option<i64>,
    forecaster: String,
    competition: Option<String>,
}

async fn current_inputs(store: &dyn Store, forecaster: &str) -> anyhow::Result<Inputs> {
    Ok(Inputs {
        data: store
            .latest_data_change()
            .await?
            .map(|t| t.timestamp_micros()),
        forecaster: forecaster.to_string(),
        competition: store
            .models()
            .await?
            .into_iter()
            .find(|m| m.active && m.kind == ModelKind::Competition)
            .map(|m| m.version),
    })
}

/// Longest wait between two renewals of the insights lease.
pub const LEASE_TICK: std::time::Duration = std::time::Duration::from_secs(20);

/// The server's insights schedule (`served` gives the forecaster being served now): runs the job at
/// once, then every `every` checks (one indexed query and a registry read) whether new data, a
/// newly served forecaster or a newly activated competition model arrived since the last
/// successful run, and re-runs it if so; a failed run is retried at the next check. Only the
/// instance holding the store's
/// [`kwi_store::INSIGHTS_LEASE`] runs it (`holder` names this one; the lease lasts three
/// [`LEASE_TICK`]s, or three periods when `every` is shorter, and is renewed at each tick and
/// while a run lasts), so several servers on one store compute insights once; when the holder
/// dies, another takes over once its lease has run out (within a minute by default).
pub fn spawn_scheduler(
    store: Arc<dyn Store>,
    served: impl Fn() -> Arc<Predictor> + Send + 'static,
    horizon: Horizon,
    every: std::time::Duration,
    holder: String,
) -> tokio::task::JoinHandle<()> {
    // The lease is renewed more often than the job is checked (at most every LEASE_TICK), so
    // another instance takes over within three ticks of this one dying, not three check periods.
    let beat = every.min(LEASE_TICK);
    let ttl = beat
        .saturating_mul(3)
        .max(std::time::Duration::from_secs(1));
    let lead = {
        let store = store.clone();
        let holder = holder.clone();
        move || {
            let (store, holder) = (store.clone(), holder.clone());
            async move {
                let now = chrono::Utc::now();
                let until =
                    now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(1));
                store
                    .lead(kwi_store::INSIGHTS_LEASE, &holder, now, until)
                    .await
            }
        }
    };
    tokio::spawn(async move {
        let mut last: Option<Inputs> = None;
        let mut checked: Option<tokio::time::Instant> = None;
        let mut tick = tokio::time::interval(beat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match lead().await {
                Ok(true) => {}
                Ok(false) => {
                    // Another instance computes them; check at once on taking over (it may
                    // have died mid-run).
                    last = None;
                    checked = None;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "insights schedule: cannot read the store");
                    continue;
                }
            }
            if checked.is_some_and(|t| t.elapsed() < every) {
                continue;
            }
            checked = Some(tokio::time::Instant::now());
            let predictor = served();
            let inputs = match current_inputs(store.as_ref(), &predictor.manifest.version).await {
                Ok(i) => i,
                Err(e) => {
                    tracing::warn!(error = %e, "insights schedule: cannot read the store");
                    continue;
                }
            };
            if last.as_ref() == Some(&inputs) {
                continue;
            }
            if last.is_some() {
                tracing::info!("insights schedule: data or models changed; recomputing");
            }
            let run = run_logged(store.clone(), predictor, horizon);
            tokio::pin!(run);
            let ok = loop {
                tokio::select! {
                    ok = &mut run => break ok,
                    () = tokio::time::sleep(ttl / 3) => {
                        if let Err(e) = lead().await {
                            tracing::warn!(error = %e, "insights schedule: cannot renew its lease");
                        }
                    }
                }
            };
            if ok {
                last = Some(inputs);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kwi_models::competition::band;

    #[test]
    fn opportunity_rises_with_growth_and_falls_with_competition() {
        let low = (20.0, "low".to_string());
        let high = (90.0, "very high".to_string());
        let (a, text) = opportunity(20.0, "rising", 13, Some(&low));
        let (b, _) = opportunity(20.0, "rising", 13, Some(&high));
        let (c, _) = opportunity(-20.0, "falling", 13, Some(&low));
        assert!(a > b && a > c, "{a} {b} {c}");
        assert_eq!(
            text,
            "demand +20% over 13 weeks (rising); competition 20/100 (low)"
        );
        let (u, text) = opportunity(0.0, "flat", 13, None);
        assert_eq!(u, 50.0);
        assert!(text.contains("competition unknown"));
        // ½·(50 + 20) + ½·(100 − 20) = 75: the lower edge of the top band.
        assert_eq!(a, 75.0);
        assert_eq!(band(a), "very high");
        assert_eq!(band(74.9), "high");
    }
}
