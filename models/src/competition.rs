//! Competition score: how hard it is to win a keyword, 0–100, with the contribution of each factor.
//!
//! ## Model
//! Each [`Factor`] is transformed so that larger always means *harder* (`ln(1+x)` for counts and
//! money, the negated relative price IQR for dispersion), centred on the training median and divided
//! by a robust spread (`z`, clipped to ±[`CompetitionParams::clip`]). Missing values sit at the
//! centre (`z = 0`: no evidence either way, no points). The raw score is `Σ wⱼ·zⱼ` with **every
//! `wⱼ ≥ 0`**; the 0–100 score is the raw score's percentile in the training distribution (or, for
//! the composite, in a normal reference), a non-decreasing map. So the score can never go down when a
//! "harder" input goes up: monotonicity holds by construction, and the tests check it as properties.
//!
//! Weights are learned, when a label exists, by a **sign-constrained ridge regression** of the
//! standardised label on the `z`s: the ridge normal equations are solved with linfa-linalg's Cholesky
//! solver on an active set, dropping the most negative coefficient and re-solving until none is
//! negative (a Lawson–Hanson style active-set loop; deterministic, no randomness). linfa-linear and
//! linfa-elasticnet have no sign constraints (and linfa's fitted models do not serialise), hence the
//! hand-rolled loop. Factors that have no variation in the training data (e.g. no CPC, no demand) get
//! the documented prior weight (the mean learned weight) and prior centre/spread, so keywords that do
//! carry them are still scored in the right direction; the manifest records which weights are
//! `learned`, `prior` or `composite`.
//!
//! Without a label, [`CompetitionModel::composite`] (or [`fit`] with `labels = None`) is the
//! documented fallback: all weights 1, percentiles from the normal reference `Φ(raw / ‖w‖)`.
//!
//! Contributions: `pointsⱼ = (score − baseline) · wⱼzⱼ / raw`, where `baseline` is the score of a
//! keyword at the centre of every factor (raw = 0). They sum to `score − baseline` exactly.
//!
//! | Name | Default | Purpose | Range |
//! | --- | --- | --- | --- |
//! | `penalty` | 1.0 | ridge strength λ on standardised data (per row) | (0, 100] |
//! | `clip` | 5.0 | `z` values are clipped to ±clip (robust to outliers) | [1, 50] |
//! | `test_fraction` | 0.3 | held-out share for evaluation ([`split`]) | (0, 0.9] |
//! | `seed` | 42 | seed of the held-out split | any |

use linfa_linalg::cholesky::SolveC;
use ndarray::{Array1, Array2};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// One factor of the competition score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Factor {
    /// Stable name (API `factor`).
    pub name: &'static str,
    /// Human label (API `label`).
    pub label: &'static str,
    /// Centre used when the training data never has the factor (transformed scale).
    pub prior_center: f64,
    /// Spread used when the training data has no variation in it (transformed scale).
    pub prior_scale: f64,
}

/// The factors, in input order. Transformed so that larger = harder (see [`transform`]).
pub const FACTORS: [Factor; 8] = [
    Factor {
        name: "listings_per_demand",
        label: "listings per search",
        prior_center: std::f64::consts::LN_2, // one listing per search
        prior_scale: 1.0,
    },
    Factor {
        name: "listing_count",
        label: "competing listings",
        prior_center: 4.6, // ~100 listings
        prior_scale: 1.0,
    },
    Factor {
        name: "top10_review_median",
        label: "reviews of the top results",
        prior_center: 4.6, // ~100 reviews
        prior_scale: 1.5,
    },
    Factor {
        name: "top10_review_share",
        label: "top-10 review concentration",
        prior_center: 0.3,
        prior_scale: 0.2,
    },
    Factor {
        name: "top10_rating_mean",
        label: "rating of the top results",
        prior_center: 4.2,
        prior_scale: 0.3,
    },
    Factor {
        name: "price_dispersion",
        label: "price uniformity (low price dispersion)",
        prior_center: -0.8,
        prior_scale: 0.5,
    },
    Factor {
        name: "sponsored_share",
        label: "sponsored results",
        prior_center: 0.2,
        prior_scale: 0.15,
    },
    Factor {
        name: "cpc",
        label: "cost per click",
        prior_center: 0.4, // ~0.5 per click
        prior_scale: 0.5,
    },
];

/// Number of factors.
pub const N_FACTORS: usize = FACTORS.len();

/// Organic listing features of one (platform, keyword), raw (untransformed) values; `None` =
/// unknown. Fields follow [`FACTORS`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompetitionInput {
    /// Listings returned per unit of search volume.
    pub listings_per_demand: Option<f64>,
    /// Listings returned.
    pub listing_count: Option<f64>,
    /// Median review count of the 10 best-ranked listings.
    pub top10_review_median: Option<f64>,
    /// Share of all reviews held by the 10 best-ranked listings (0..=1).
    pub top10_review_share: Option<f64>,
    /// Mean rating of the 10 best-ranked listings (0..=5).
    pub top10_rating_mean: Option<f64>,
    /// Relative price dispersion: (p75 − p25) / median.
    pub price_dispersion: Option<f64>,
    /// Share of sponsored results (0..=1).
    pub sponsored_share: Option<f64>,
    /// Mean cost per click.
    pub cpc: Option<f64>,
}

impl CompetitionInput {
    /// Raw values in [`FACTORS`] order.
    pub fn values(&self) -> [Option<f64>; N_FACTORS] {
        [
            self.listings_per_demand,
            self.listing_count,
            self.top10_review_median,
            self.top10_review_share,
            self.top10_rating_mean,
            self.price_dispersion,
            self.sponsored_share,
            self.cpc,
        ]
    }

    /// True when no factor is known.
    pub fn is_empty(&self) -> bool {
        self.values().iter().all(Option::is_none)
    }
}

/// Listing statistics of one (platform, keyword, period) as the feature layer computes them and the
/// store keeps them: the one mapping to [`CompetitionInput`], shared by training (from the Polars
/// competition frame) and the insights job (from stored observations), so the two cannot drift.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ListingStats {
    /// Listings returned.
    pub listing_count: Option<f64>,
    /// Listings per unit of search volume ([`ListingStats::per_demand`]).
    pub listings_per_demand: Option<f64>,
    /// Median review count of the 10 best-ranked listings.
    pub top10_review_median: Option<f64>,
    /// Share of all reviews held by the 10 best-ranked listings.
    pub top10_review_share: Option<f64>,
    /// Mean rating of the 10 best-ranked listings.
    pub top10_rating_mean: Option<f64>,
    /// Price quartiles and median.
    pub price_p25: Option<f64>,
    /// Median price.
    pub price_median: Option<f64>,
    /// Upper price quartile.
    pub price_p75: Option<f64>,
    /// Share of sponsored results.
    pub sponsored_share: Option<f64>,
    /// Mean cost per click.
    pub cpc: Option<f64>,
}

impl ListingStats {
    /// `listing_count / search_volume`, unknown without a volume or when it is 0 (the feature
    /// layer's `listings_per_demand`).
    pub fn per_demand(listing_count: Option<f64>, search_volume: Option<f64>) -> Option<f64> {
        match (listing_count, search_volume) {
            (Some(l), Some(v)) if v > 0.0 => Some(l / v),
            _ => None,
        }
    }
}

impl From<ListingStats> for CompetitionInput {
    fn from(s: ListingStats) -> Self {
        CompetitionInput {
            listings_per_demand: s.listings_per_demand,
            listing_count: s.listing_count,
            top10_review_median: s.top10_review_median,
            top10_review_share: s.top10_review_share,
            top10_rating_mean: s.top10_rating_mean,
            price_dispersion: match (s.price_p25, s.price_p75, s.price_median) {
                (Some(a), Some(b), Some(m)) if m > 0.0 => Some((b - a).max(0.0) / m),
                _ => None,
            },
            sponsored_share: s.sponsored_share,
            cpc: s.cpc,
        }
    }
}

/// Maps a raw factor value to its "harder is larger" scale (non-decreasing in the harder
/// direction); non-finite values are treated as missing.
pub fn transform(factor: usize, v: f64) -> Option<f64> {
    if !v.is_finite() {
        return None;
    }
    Some(match FACTORS[factor].name {
        "listings_per_demand" | "listing_count" | "top10_review_median" | "cpc" => {
            v.max(0.0).ln_1p()
        }
        "price_dispersion" => -v.max(0.0),
        _ => v,
    })
}

/// Hyperparameters (see the module table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CompetitionParams {
    /// Ridge penalty λ (standardised data, per row).
    pub penalty: f64,
    /// `z` clip.
    pub clip: f64,
    /// Held-out share.
    pub test_fraction: f64,
    /// Split seed.
    pub seed: u64,
}

impl Default for CompetitionParams {
    fn default() -> Self {
        Self {
            penalty: 1.0,
            clip: 5.0,
            test_fraction: 0.3,
            seed: 42,
        }
    }
}

impl CompetitionParams {
    /// Validates every field against its documented range.
    pub fn check(&self) -> Result<()> {
        let bad = |name, reason: &str| {
            Err(ModelError::Param {
                name,
                reason: reason.into(),
            })
        };
        if !(self.penalty > 0.0 && self.penalty <= 100.0) {
            return bad("penalty", "must be in (0, 100]");
        }
        if !(1.0..=50.0).contains(&self.clip) {
            return bad("clip", "must be in [1, 50]");
        }
        if !(self.test_fraction > 0.0 && self.test_fraction <= 0.9) {
            return bad("test_fraction", "must be in (0, 0.9]");
        }
        Ok(())
    }
}

/// How raw scores become percentiles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reference {
    /// Piecewise-linear empirical CDF through the sorted training raw scores.
    Empirical {
        /// Sorted raw scores of the training rows.
        sorted: Vec<f64>,
    },
    /// `Φ(raw / sigma)` (composite fallback, no training distribution).
    Normal {
        /// Spread of the raw score.
        sigma: f64,
    },
}

impl Reference {
    /// Percentile 0..=100 of `raw`; non-decreasing in `raw`.
    pub fn percentile(&self, raw: f64) -> f64 {
        match self {
            Reference::Normal { sigma } => 100.0 * normal_cdf(raw / sigma.max(1e-12)),
            Reference::Empirical { sorted } => {
                let n = sorted.len();
                if n == 0 {
                    return 50.0;
                }
                if n == 1 {
                    return if raw < sorted[0] {
                        0.0
                    } else if raw > sorted[0] {
                        100.0
                    } else {
                        50.0
                    };
                }
                if raw <= sorted[0] {
                    return if raw < sorted[0] {
                        0.0
                    } else {
                        mid_rank(sorted, 0, n)
                    };
                }
                if raw >= sorted[n - 1] {
                    return if raw > sorted[n - 1] {
                        100.0
                    } else {
                        mid_rank(sorted, n - 1, n)
                    };
                }
                // First index with sorted[i] > raw; raw lies in [sorted[i-1], sorted[i]).
                let i = sorted.partition_point(|&v| v <= raw);
                let (a, b) = (sorted[i - 1], sorted[i]);
                let (pa, pb) = (mid_rank(sorted, i - 1, n), mid_rank(sorted, i, n));
                if raw == a {
                    return pa;
                }
                pa + (pb - pa) * (raw - a) / (b - a)
            }
        }
    }
}

/// Percentile of the tie group containing `sorted[i]`: the mean of its positions, scaled to 0..=100.
fn mid_rank(sorted: &[f64], i: usize, n: usize) -> f64 {
    let v = sorted[i];
    let lo = sorted.partition_point(|&x| x < v);
    let hi = sorted.partition_point(|&x| x <= v) - 1;
    100.0 * ((lo + hi) as f64 / 2.0) / (n - 1) as f64
}

/// Standard normal CDF (Abramowitz–Stegun 7.1.26 erf, |error| < 1.5e-7), non-decreasing.
pub fn normal_cdf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs() / std::f64::consts::SQRT_2);
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-(x * x) / 2.0).exp();
    if x >= 0.0 {
        0.5 * (1.0 + y)
    } else {
        0.5 * (1.0 - y)
    }
}

/// Score band.
pub fn band(score: f64) -> &'static str {
    if score < 25.0 {
        "low"
    } else if score < 50.0 {
        "medium"
    } else if score < 75.0 {
        "high"
    } else {
        "very high"
    }
}

/// The band names, lowest first.
pub const BANDS: [&str; 4] = ["low", "medium", "high", "very high"];

/// A factor's share of a score, in points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    /// Factor name.
    pub factor: String,
    /// Human label.
    pub label: String,
    /// Points (positive: makes the keyword harder).
    pub points: f64,
}

/// A scored keyword.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// 0..=100.
    pub score: f64,
    /// `low`, `medium`, `high` or `very high`.
    pub band: String,
    /// Score of a keyword at the centre of every factor.
    pub baseline: f64,
    /// Per known factor, largest magnitude first; they sum to `score − baseline`.
    pub contributions: Vec<Contribution>,
}

/// A fitted competition model (serialised as `competition.json` in its artifact).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompetitionModel {
    /// Factor names, [`FACTORS`] order.
    pub factors: Vec<String>,
    /// Centre per factor (transformed scale).
    pub center: Vec<f64>,
    /// Spread per factor (transformed scale).
    pub scale: Vec<f64>,
    /// Non-negative weight per factor.
    pub weights: Vec<f64>,
    /// Where each weight comes from: `learned`, `prior` or `composite`.
    pub weight_source: Vec<String>,
    /// Percentile reference.
    pub reference: Reference,
    /// `z` clip.
    pub clip: f64,
    /// Name of the label learned against (None: composite fallback).
    pub label: Option<String>,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (i, f) = (pos.floor() as usize, pos.fract());
    if i + 1 < sorted.len() {
        sorted[i] + f * (sorted[i + 1] - sorted[i])
    } else {
        sorted[i]
    }
}

/// Centre and spread per factor from the transformed training values; `varies[j]` tells whether the
/// data has enough variation to learn a weight.
fn standardisation(rows: &[[Option<f64>; N_FACTORS]]) -> (Vec<f64>, Vec<f64>, Vec<bool>) {
    let mut center = Vec::with_capacity(N_FACTORS);
    let mut scale = Vec::with_capacity(N_FACTORS);
    let mut varies = Vec::with_capacity(N_FACTORS);
    for (j, f) in FACTORS.iter().enumerate() {
        let mut v: Vec<f64> = rows.iter().filter_map(|r| r[j]).collect();
        if v.len() < 3 {
            center.push(f.prior_center);
            scale.push(f.prior_scale);
            varies.push(false);
            continue;
        }
        let c = median(&mut v);
        // Robust spread: IQR/1.349 (= σ for a normal), falling back to the standard deviation.
        let iqr = (quantile(&v, 0.75) - quantile(&v, 0.25)) / 1.349;
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt();
        let s = if iqr > 1e-9 { iqr } else { sd };
        if s > 1e-9 {
            center.push(c);
            scale.push(s);
            varies.push(true);
        } else {
            center.push(f.prior_center);
            scale.push(f.prior_scale);
            varies.push(false);
        }
    }
    (center, scale, varies)
}

fn transformed(x: &CompetitionInput) -> [Option<f64>; N_FACTORS] {
    let mut out = [None; N_FACTORS];
    for (j, v) in x.values().iter().enumerate() {
        out[j] = v.and_then(|v| transform(j, v));
    }
    out
}

/// Ridge with non-negative coefficients on the columns in `active` (see the module docs).
fn nonneg_ridge(
    z: &Array2<f64>,
    y: &Array1<f64>,
    penalty: f64,
    active: &mut Vec<usize>,
) -> Result<Vec<f64>> {
    let n = z.nrows() as f64;
    let mut w = vec![0.0; z.ncols()];
    while !active.is_empty() {
        let k = active.len();
        let mut zs = Array2::<f64>::zeros((z.nrows(), k));
        for (c, &j) in active.iter().enumerate() {
            zs.column_mut(c).assign(&z.column(j));
        }
        let mut gram = zs.t().dot(&zs);
        for c in 0..k {
            gram[[c, c]] += penalty * n;
        }
        let rhs = zs.t().dot(y).insert_axis(ndarray::Axis(1));
        let sol: Array2<f64> = gram
            .solvec(&rhs)
            .map_err(|e| ModelError::Linfa(format!("ridge solve failed: {e}")))?;
        let (worst, min) =
            sol.column(0)
                .iter()
                .enumerate()
                .fold(
                    (0, f64::INFINITY),
                    |acc, (c, &v)| if v < acc.1 { (c, v) } else { acc },
                );
        if min < 0.0 {
            active.remove(worst);
            continue;
        }
        w.iter_mut().for_each(|x| *x = 0.0);
        for (c, &j) in active.iter().enumerate() {
            w[j] = sol[[c, 0]];
        }
        break;
    }
    Ok(w)
}

/// Fits the model on `inputs` (one per keyword). With `labels` (same length, `None` = unlabelled
/// row), weights are learned against the standardised label on the labelled rows; without, or when
/// nothing can be learned, it is the documented composite. The percentile reference is every input
/// row's raw score. Deterministic: the same inputs give bit-identical models.
pub fn fit(
    inputs: &[CompetitionInput],
    labels: Option<&[Option<f64>]>,
    params: &CompetitionParams,
    label_name: Option<&str>,
) -> Result<CompetitionModel> {
    params.check()?;
    if inputs.is_empty() {
        return Err(ModelError::Input(
            "no keyword to fit the competition model on".into(),
        ));
    }
    if let Some(l) = labels
        && l.len() != inputs.len()
    {
        return Err(ModelError::Input(format!(
            "{} labels for {} inputs",
            l.len(),
            inputs.len()
        )));
    }
    let rows: Vec<[Option<f64>; N_FACTORS]> = inputs.iter().map(transformed).collect();
    let (center, scale, varies) = standardisation(&rows);
    let z_of = |r: &[Option<f64>; N_FACTORS], j: usize| {
        r[j].map_or(0.0, |v| {
            ((v - center[j]) / scale[j]).clamp(-params.clip, params.clip)
        })
    };
    let labelled: Vec<(usize, f64)> = labels
        .map(|l| {
            l.iter()
                .enumerate()
                .filter_map(|(i, v)| v.filter(|v| v.is_finite()).map(|v| (i, v)))
                .collect()
        })
        .unwrap_or_default();
    let mut weights = vec![1.0; N_FACTORS];
    let mut source = vec!["composite".to_string(); N_FACTORS];
    let mut learned_label = None;
    if labelled.len() >= 5 {
        let mut z = Array2::<f64>::zeros((labelled.len(), N_FACTORS));
        let mut y = Array1::<f64>::zeros(labelled.len());
        for (r, &(i, v)) in labelled.iter().enumerate() {
            for j in 0..N_FACTORS {
                z[[r, j]] = z_of(&rows[i], j);
            }
            y[r] = v;
        }
        // Centre the columns (unpenalised intercept) and standardise the label.
        let zm = z.mean_axis(ndarray::Axis(0)).expect("non-empty");
        let z = &z - &zm;
        let ym = y.mean().unwrap_or(0.0);
        let ysd = (y.iter().map(|v| (v - ym).powi(2)).sum::<f64>() / labelled.len() as f64).sqrt();
        if ysd > 1e-12 {
            let y = y.mapv(|v| (v - ym) / ysd);
            let mut active: Vec<usize> = (0..N_FACTORS).filter(|&j| varies[j]).collect();
            let w = nonneg_ridge(&z, &y, params.penalty, &mut active)?;
            let positive: Vec<f64> = w.iter().copied().filter(|v| *v > 0.0).collect();
            if !positive.is_empty() {
                let prior = positive.iter().sum::<f64>() / positive.len() as f64;
                for j in 0..N_FACTORS {
                    if varies[j] {
                        weights[j] = w[j];
                        source[j] = "learned".into();
                    } else {
                        weights[j] = prior;
                        source[j] = "prior".into();
                    }
                }
                learned_label = Some(label_name.unwrap_or("label").to_string());
            }
        }
    }
    let mut model = CompetitionModel {
        factors: FACTORS.iter().map(|f| f.name.to_string()).collect(),
        center,
        scale,
        weights,
        weight_source: source,
        reference: Reference::Normal { sigma: 1.0 },
        clip: params.clip,
        label: learned_label,
    };
    let mut sorted: Vec<f64> = inputs.iter().map(|x| model.raw(x)).collect();
    sorted.sort_by(f64::total_cmp);
    model.reference = if model.label.is_some() {
        Reference::Empirical { sorted }
    } else {
        Reference::Normal {
            sigma: model.weights.iter().map(|w| w * w).sum::<f64>().sqrt(),
        }
    };
    Ok(model)
}

impl CompetitionModel {
    /// The documented fallback without any data: weight 1 per factor, prior centres and spreads,
    /// normal reference.
    pub fn composite(clip: f64) -> Self {
        Self {
            factors: FACTORS.iter().map(|f| f.name.to_string()).collect(),
            center: FACTORS.iter().map(|f| f.prior_center).collect(),
            scale: FACTORS.iter().map(|f| f.prior_scale).collect(),
            weights: vec![1.0; N_FACTORS],
            weight_source: vec!["composite".into(); N_FACTORS],
            reference: Reference::Normal {
                sigma: (N_FACTORS as f64).sqrt(),
            },
            clip,
            label: None,
        }
    }

    /// Checks the shape after loading (a hand-edited or truncated file is refused).
    pub fn check(&self) -> Result<()> {
        let ok = self.factors.len() == N_FACTORS
            && self.center.len() == N_FACTORS
            && self.scale.len() == N_FACTORS
            && self.weights.len() == N_FACTORS
            && self.factors.iter().zip(FACTORS).all(|(a, f)| a == f.name)
            && self.weights.iter().all(|w| *w >= 0.0 && w.is_finite())
            && self.scale.iter().all(|s| *s > 0.0);
        if ok {
            Ok(())
        } else {
            Err(ModelError::Input(
                "competition model does not match this build's factors (or has a negative weight)"
                    .into(),
            ))
        }
    }

    fn terms(&self, x: &CompetitionInput) -> [Option<f64>; N_FACTORS] {
        let t = transformed(x);
        let mut out = [None; N_FACTORS];
        for j in 0..N_FACTORS {
            out[j] = t[j].map(|v| {
                self.weights[j]
                    * ((v - self.center[j]) / self.scale[j]).clamp(-self.clip, self.clip)
            });
        }
        out
    }

    /// Raw score `Σ wⱼ·zⱼ`.
    pub fn raw(&self, x: &CompetitionInput) -> f64 {
        self.terms(x).iter().flatten().sum()
    }

    /// Score of a keyword at the centre of every factor.
    pub fn baseline(&self) -> f64 {
        self.reference.percentile(0.0)
    }

    /// Scores one keyword.
    pub fn score(&self, x: &CompetitionInput) -> Score {
        let terms = self.terms(x);
        let raw: f64 = terms.iter().flatten().sum();
        let score = self.reference.percentile(raw).clamp(0.0, 100.0);
        let baseline = self.baseline();
        let delta = score - baseline;
        let mut contributions: Vec<Contribution> = terms
            .iter()
            .enumerate()
            .filter_map(|(j, t)| {
                t.map(|t| Contribution {
                    factor: FACTORS[j].name.into(),
                    label: FACTORS[j].label.into(),
                    points: if raw.abs() > 1e-12 {
                        delta * t / raw
                    } else {
                        0.0
                    },
                })
            })
            .collect();
        contributions.sort_by(|a, b| b.points.abs().total_cmp(&a.points.abs()));
        Score {
            score,
            band: band(score).into(),
            baseline,
            contributions,
        }
    }
}

/// Seeded held-out split of `0..n`: `(train, test)` indices, each sorted.
pub fn split(n: usize, test_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut StdRng::seed_from_u64(seed));
    let k = ((n as f64) * test_fraction).round() as usize;
    let mut test = idx[..k.min(n)].to_vec();
    let mut train = idx[k.min(n)..].to_vec();
    test.sort_unstable();
    train.sort_unstable();
    (train, test)
}

/// Average ranks (ties share their mean rank), 1-based.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let mean = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = mean;
        }
        i = j + 1;
    }
    r
}

/// Spearman rank correlation (Pearson on average ranks); `None` with fewer than 3 pairs or a
/// constant side.
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() || a.len() < 3 {
        return None;
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let n = a.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    (va > 0.0 && vb > 0.0).then(|| cov / (va * vb).sqrt())
}

/// Mean label per score band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BandStat {
    /// Band name.
    pub band: String,
    /// Keywords in the band.
    pub count: usize,
    /// Mean label of those keywords (None when empty).
    pub mean_label: Option<f64>,
}

/// Calibration of the bands: mean label per band, lowest band first.
pub fn band_calibration(scores: &[f64], labels: &[f64]) -> Vec<BandStat> {
    BANDS
        .iter()
        .map(|b| {
            let v: Vec<f64> = scores
                .iter()
                .zip(labels)
                .filter(|(s, _)| band(**s) == *b)
                .map(|(_, l)| *l)
                .collect();
            BandStat {
                band: (*b).into(),
                count: v.len(),
                mean_label: (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic panel: harder keywords (more listings per search, more reviews on top)
    /// have a higher label, plus noise.
    fn panel(n: usize) -> (Vec<CompetitionInput>, Vec<Option<f64>>) {
        let mut rng = StdRng::seed_from_u64(7);
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for i in 0..n {
            let u = |rng: &mut StdRng| -> f64 { rand::Rng::random_range(rng, 0.0..1.0) };
            let lpd = (u(&mut rng) * 4.0).exp();
            let rev = (u(&mut rng) * 8.0).exp();
            let share = u(&mut rng);
            let disp = u(&mut rng) * 2.0;
            let label = lpd.ln() + 0.5 * rev.ln() + 0.3 * u(&mut rng);
            xs.push(CompetitionInput {
                listings_per_demand: Some(lpd),
                listing_count: Some(50.0 + i as f64),
                top10_review_median: Some(rev),
                top10_review_share: Some(share),
                top10_rating_mean: (i % 4 != 0).then_some(4.0 + share),
                price_dispersion: Some(disp),
                sponsored_share: None,
                cpc: None,
            });
            ys.push(Some(label));
        }
        (xs, ys)
    }

    fn fitted() -> CompetitionModel {
        let (xs, ys) = panel(80);
        fit(&xs, Some(&ys), &CompetitionParams::default(), Some("test")).unwrap()
    }

    #[test]
    fn weights_are_non_negative_and_learn_the_signal() {
        let m = fitted();
        assert!(m.weights.iter().all(|w| *w >= 0.0), "{:?}", m.weights);
        assert_eq!(m.weight_source[0], "learned");
        assert_eq!(m.weight_source[7], "prior"); // CPC never present
        assert!(m.weights[0] > m.weights[3], "{:?}", m.weights);
        let (xs, ys) = panel(80);
        let s: Vec<f64> = xs.iter().map(|x| m.score(x).score).collect();
        let y: Vec<f64> = ys.iter().map(|y| y.unwrap()).collect();
        assert!(spearman(&s, &y).unwrap() > 0.8);
    }

    /// Property: raising any "harder" input never lowers the score, over many rows and steps.
    fn check_monotone(m: &CompetitionModel, bump: impl Fn(&mut CompetitionInput, f64)) {
        let (xs, _) = panel(60);
        for x in &xs {
            let mut prev = m.score(x).score;
            for k in 1..30 {
                let mut y = x.clone();
                bump(&mut y, k as f64);
                let s = m.score(&y).score;
                assert!(s >= prev - 1e-9, "score fell from {prev} to {s}");
                prev = s;
            }
        }
    }

    #[test]
    fn more_listings_per_demand_never_lowers_the_score() {
        for m in [fitted(), CompetitionModel::composite(5.0)] {
            check_monotone(&m, |x, k| {
                x.listings_per_demand = Some(x.listings_per_demand.unwrap() * 1.5f64.powf(k))
            });
            // Going from unknown to a very high value never lowers it either.
            let base = CompetitionInput::default();
            let mut hi = base.clone();
            hi.listings_per_demand = Some(1e6);
            assert!(m.score(&hi).score >= m.score(&base).score);
        }
    }

    #[test]
    fn more_reviews_among_top_results_never_lowers_the_score() {
        for m in [fitted(), CompetitionModel::composite(5.0)] {
            check_monotone(&m, |x, k| {
                x.top10_review_median = Some(x.top10_review_median.unwrap() * 1.4f64.powf(k))
            });
            check_monotone(&m, |x, k| {
                x.top10_review_share = Some((x.top10_review_share.unwrap() + 0.03 * k).min(1.0))
            });
        }
    }

    #[test]
    fn same_seed_gives_identical_scores_after_retraining() {
        let (xs, ys) = panel(90);
        let p = CompetitionParams::default();
        let train = |seed| {
            let (tr, _) = split(xs.len(), p.test_fraction, seed);
            let x: Vec<_> = tr.iter().map(|&i| xs[i].clone()).collect();
            let y: Vec<_> = tr.iter().map(|&i| ys[i]).collect();
            fit(&x, Some(&y), &p, None).unwrap()
        };
        let (a, b) = (train(42), train(42));
        assert_eq!(a, b);
        for x in &xs {
            assert_eq!(a.score(x).score.to_bits(), b.score(x).score.to_bits());
        }
        assert_ne!(split(90, 0.3, 42), split(90, 0.3, 43));
    }

    #[test]
    fn contributions_sum_to_score_minus_baseline_and_scores_are_bounded() {
        for m in [fitted(), CompetitionModel::composite(5.0)] {
            let (xs, _) = panel(40);
            for x in xs.iter().chain([&CompetitionInput::default()]) {
                let s = m.score(x);
                assert!((0.0..=100.0).contains(&s.score));
                let sum: f64 = s.contributions.iter().map(|c| c.points).sum();
                assert!((sum - (s.score - s.baseline)).abs() < 1e-9, "{s:?}");
                assert_eq!(s.band, band(s.score));
            }
        }
    }

    #[test]
    fn without_labels_the_composite_is_used() {
        let (xs, _) = panel(20);
        let m = fit(&xs, None, &CompetitionParams::default(), None).unwrap();
        assert!(m.label.is_none());
        assert!(m.weight_source.iter().all(|s| s == "composite"));
        assert!(matches!(m.reference, Reference::Normal { .. }));
    }

    #[test]
    fn evaluation_helpers() {
        assert_eq!(
            spearman(&[1.0, 2.0, 3.0, 4.0], &[10.0, 20.0, 30.0, 40.0]),
            Some(1.0)
        );
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), Some(-1.0));
        assert_eq!(spearman(&[1.0, 1.0, 1.0], &[3.0, 2.0, 1.0]), None);
        let b = band_calibration(&[10.0, 30.0, 60.0, 90.0, 95.0], &[1.0, 2.0, 3.0, 4.0, 6.0]);
        assert_eq!(b[3].count, 2);
        assert_eq!(b[3].mean_label, Some(5.0));
        let r = Reference::Empirical {
            sorted: vec![0.0, 1.0, 1.0, 3.0],
        };
        let ps: Vec<f64> = [-1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 4.0]
            .iter()
            .map(|&x| r.percentile(x))
            .collect();
        assert!(ps.windows(2).all(|w| w[0] <= w[1]), "{ps:?}");
        assert_eq!(ps[0], 0.0);
        assert_eq!(ps[6], 100.0);
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        let p = CompetitionParams {
            penalty: 0.0,
            ..Default::default()
        };
        assert!(p.check().unwrap_err().to_string().contains("`penalty`"));
    }
}
