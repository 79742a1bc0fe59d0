//! Demand features per series and period, as one Polars pipeline over a regular frame
//! ([`crate::regular::regular_frame`]).
//!
//! ## No leakage
//! A feature at period `t` uses only values at periods `≤ t`: `t` is the forecast origin, the last
//! period whose volume is known, so its own value is an input (`lag_k` is the value `k` periods
//! before). Targets (values after `t`) are added only by [`crate::tabular`]. Calendar terms depend on
//! the date alone. `gaps_to_date` counts gaps up to `t` (the series' total gap count would leak).
//! The test `demand::tests::no_feature_at_t_changes_when_later_data_changes` proves it.
//!
//! ## How it is computed (and why it is fast)
//! The frame is sorted by `(series, t)`; every shift and rolling statistic runs over the whole
//! column at once (one pass, no per-group dispatch), and a value is kept only where the window lies
//! inside its own series (`t ≥ window − 1`, `t ≥ k` for a lag), null elsewhere. Series must be
//! contiguous with consecutive `t` from 0, which a regular frame guarantees. Features are `Float32`
//! (what the models take; halves memory), `value` and `scale` stay `Float64`.
//!
//! ## Columns (weekly defaults; `k`, `w` from [`DemandConfig`])
//! | column | meaning |
//! | --- | --- |
//! | `lag_k` | value at `t − k` |
//! | `roll_{mean,std,min,max}_w` | over the `w` values ending at `t` (std: sample, ddof 1) |
//! | `growth_k` | `value_t / value_{t−k} − 1`; null when the earlier value is 0 |
//! | `trend_slope_w` | least-squares slope of the last `w` values against time (per period) |
//! | `trend_slope_rel_w` | that slope divided by `roll_mean_w` (null when the mean is 0) |
//! | `volatility_w` | std of the last `w` one-period changes divided by `roll_mean_w` |
//! | `zero_share_w` | share of zeros among the last `w` values |
//! | `acf_k` | autocorrelation at lag `k` inside the trailing `acf_window` values: correlation of the `acf_window − k` pairs `(x_s, x_{s−k})`, `s ≤ t`; null before `t = acf_window − 1` |
//! | `seasonality_strength` | `max(0, max_k acf_k)` |
//! | `dominant_period` | the `k` with the largest positive `acf_k` (null if none is positive) |
//! | `week_of_year`, `month` | ISO week and month of `period_start` |
//! | `fourier_{sin,cos}_j` | `sin/cos(2π·j·day_of_year/365.25)`, `j = 1..=fourier_terms` |
//! | `scale` | mean \|value\| over the last `min(t + 1, scale_window)` values (1 if ≈ 0): divide by it to work on scaled values, multiply to map back |
//! | `scaled_value` | `value / scale` |
//! | `log1p_value` | `ln(1 + value)` |
//! | `gaps_to_date` | gap periods among `0..=t` |

use polars::prelude::*;

use crate::error::{FeatureError, Result};
use crate::frame::{
    KEYWORD, OBSERVED, PERIOD_START, PLATFORM, SERIES, T, VALUE, is_date, is_numeric, require,
};
use crate::keyword::Frequency;
use crate::schema::{DEMAND_SCHEMA_NAME, DEMAND_SCHEMA_VERSION, FeatureSchema, from_polars};

/// Parameters of the demand features. Build with [`DemandConfig::weekly`] / [`DemandConfig::daily`]
/// / [`DemandConfig::monthly`] (or [`DemandConfig::for_frequency`]), adjust fields, then
/// [`DemandConfig::check`].
///
/// | Name | Weekly | Daily | Monthly | Purpose | Range |
/// | --- | --- | --- | --- | --- | --- |
/// | `lags` | 1, 2, 4, 13, 52 | 1, 7, 14, 28, 364 | 1, 2, 3, 6, 12 | `lag_k` columns | ≥ 1 |
/// | `windows` | 4, 13, 52 | 7, 28, 91 | 3, 6, 12 | rolling mean/std/min/max | ≥ 2 |
/// | `growth` | 1, 4, 13, 52 | 1, 7, 28, 364 | 1, 3, 12 | `growth_k` | ≥ 1 |
/// | `trend_window` | 13 | 28 | 6 | trend slope | ≥ 2 |
/// | `volatility_window` | 13 | 28 | 6 | volatility | ≥ 2 |
/// | `zero_window` | 52 | 91 | 12 | share of zeros | ≥ 1 |
/// | `seasonal_lags` | 4, 13, 26, 52 | 7, 30, 91, 364 | 3, 6, 12 | candidate periods (`acf_k`) | ≥ 1, < `acf_window − 2` |
/// | `acf_window` | 104 | 728 | 36 | trailing window of the autocorrelations | > max seasonal lag + 2 |
/// | `scale_window` | 52 | 91 | 12 | level scaling statistic | ≥ 1 |
/// | `fourier_terms` | 2 | 2 | 2 | yearly Fourier pairs | 0..=6 |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemandConfig {
    /// Lags `k` for `lag_k`.
    pub lags: Vec<usize>,
    /// Rolling windows `w`.
    pub windows: Vec<usize>,
    /// Growth horizons `k`.
    pub growth: Vec<usize>,
    /// Window of the trend slope.
    pub trend_window: usize,
    /// Window of the volatility.
    pub volatility_window: usize,
    /// Window of the share of zeros.
    pub zero_window: usize,
    /// Candidate seasonal periods.
    pub seasonal_lags: Vec<usize>,
    /// Trailing window of the autocorrelations.
    pub acf_window: usize,
    /// Window of the level scale.
    pub scale_window: usize,
    /// Number of yearly Fourier sin/cos pairs.
    pub fourier_terms: usize,
}

impl Default for DemandConfig {
    fn default() -> Self {
        Self::weekly()
    }
}

impl DemandConfig {
    /// Weekly defaults (see the table above).
    pub fn weekly() -> Self {
        Self {
            lags: vec![1, 2, 4, 13, 52],
            windows: vec![4, 13, 52],
            growth: vec![1, 4, 13, 52],
            trend_window: 13,
            volatility_window: 13,
            zero_window: 52,
            seasonal_lags: vec![4, 13, 26, 52],
            acf_window: 104,
            scale_window: 52,
            fourier_terms: 2,
        }
    }

    /// Daily defaults (see the table above).
    pub fn daily() -> Self {
        Self {
            lags: vec![1, 7, 14, 28, 364],
            windows: vec![7, 28, 91],
            growth: vec![1, 7, 28, 364],
            trend_window: 28,
            volatility_window: 28,
            zero_window: 91,
            seasonal_lags: vec![7, 30, 91, 364],
            acf_window: 728,
            scale_window: 91,
            fourier_terms: 2,
        }
    }

    /// Monthly defaults (see the table above): a year is 12 periods.
    pub fn monthly() -> Self {
        Self {
            lags: vec![1, 2, 3, 6, 12],
            windows: vec![3, 6, 12],
            growth: vec![1, 3, 12],
            trend_window: 6,
            volatility_window: 6,
            zero_window: 12,
            seasonal_lags: vec![3, 6, 12],
            acf_window: 36,
            scale_window: 12,
            fourier_terms: 2,
        }
    }

    /// Defaults for a frequency.
    pub fn for_frequency(freq: Frequency) -> Self {
        match freq {
            Frequency::Weekly => Self::weekly(),
            Frequency::Daily => Self::daily(),
            Frequency::Monthly => Self::monthly(),
        }
    }

    /// Validates the parameters; every pipeline calls it first, so an invalid configuration never
    /// produces features.
    pub fn check(&self) -> Result<()> {
        let bad = |what: &str| Err(FeatureError::Options(format!("demand features: {what}")));
        if self.lags.contains(&0) || self.growth.contains(&0) || self.seasonal_lags.contains(&0) {
            return bad("lags, growth horizons and seasonal lags must be ≥ 1");
        }
        if self.windows.iter().any(|w| *w < 2)
            || self.trend_window < 2
            || self.volatility_window < 2
        {
            return bad("rolling, trend and volatility windows must be ≥ 2");
        }
        if self.zero_window == 0 || self.scale_window == 0 {
            return bad("zero and scale windows must be ≥ 1");
        }
        if self.seasonal_lags.is_empty() {
            return bad("at least one seasonal lag is needed");
        }
        let max_lag = self.seasonal_lags.iter().max().copied().unwrap_or(0);
        if self.acf_window < max_lag + 3 {
            return bad("acf_window must exceed the largest seasonal lag by at least 3");
        }
        if self.fourier_terms > 6 {
            return bad("at most 6 Fourier pairs");
        }
        let mut all = [&self.lags, &self.windows, &self.growth, &self.seasonal_lags];
        for v in &mut all {
            let mut s = v.to_vec();
            s.sort_unstable();
            s.dedup();
            if s.len() != v.len() {
                return bad("lags, windows, growth horizons and seasonal lags must not repeat");
            }
        }
        Ok(())
    }
}

fn t_at_least(k: usize) -> Expr {
    col(T).gt_eq(lit(k as i32))
}

/// `e` as `Float32` where the window of `k + 1` periods ending at `t` lies inside the series, null
/// elsewhere. Cast before masking, so the mask writes half the bytes.
fn inside(e: Expr, k: usize) -> Expr {
    when(t_at_least(k))
        .then(e.cast(DataType::Float32))
        .otherwise(lit(NULL).cast(DataType::Float32))
}

fn fixed(w: usize) -> RollingOptionsFixedWindow {
    RollingOptionsFixedWindow {
        window_size: w,
        min_periods: w,
        ..Default::default()
    }
}

fn f32c(e: Expr, name: &str) -> Expr {
    e.cast(DataType::Float32).alias(name)
}

fn x() -> Expr {
    col(VALUE)
}

fn checked_input(lf: &mut LazyFrame) -> Result<()> {
    let schema = lf.collect_schema()?;
    require(&schema, SERIES, |d| d.is_integer(), "an integer")?;
    require(&schema, T, |d| d.is_integer(), "an integer")?;
    require(&schema, PERIOD_START, is_date, "Date")?;
    require(&schema, VALUE, is_numeric, "a number")?;
    require(
        &schema,
        OBSERVED,
        |d| matches!(d, DataType::Boolean),
        "Boolean",
    )?;
    Ok(())
}

/// Intermediate columns of the autocorrelation at lag `k` (stage one): over the `n = window − k`
/// pairs `(x_s, x_{s−k})` ending at `t`, the rolling mean `_m_k` and population variance `_v_k` of
/// `x`, and the rolling mean `_c_k` of `x·y` with `y = x` shifted by `k`. The moments of `y` are
/// those of `x` shifted by `k` (same window length), so they are not computed again. Shifts are
/// filled with 0 instead of null so the kernels take their fast no-null path; the filled rows are
/// masked anyway (`t < window − 1`).
fn acf_parts(k: usize, window: usize) -> Vec<Expr> {
    let n = window - k;
    let y = x().shift_and_fill(lit(k as i64), lit(0.0));
    let pop = (n as f64 - 1.0) / n as f64;
    vec![
        x().rolling_mean(fixed(n)).alias(format!("_m_{k}")),
        (x().rolling_var(fixed(n)) * lit(pop)).alias(format!("_v_{k}")),
        (x() * y).rolling_mean(fixed(n)).alias(format!("_c_{k}")),
    ]
}

/// Autocorrelation at lag `k` from [`acf_parts`] (stage two):
/// `(mean(x·y) − mean x · mean y) / sqrt(var x · var y)`.
fn acf(k: usize, window: usize) -> Expr {
    let sh = |c: String| col(c).shift_and_fill(lit(k as i64), lit(0.0));
    let (mx, vx, c) = (
        col(format!("_m_{k}")),
        col(format!("_v_{k}")),
        col(format!("_c_{k}")),
    );
    let (my, vy) = (sh(format!("_m_{k}")), sh(format!("_v_{k}")));
    let cov = c - mx.clone() * my;
    // A (near-)constant window has no autocorrelation. "Near": whole-column rolling kernels leave
    // floating-point residue of the size ε·mean², so the test is relative to the level. The `y`
    // window is the `x` window `k` rows earlier, so its test is the `x` test shifted.
    let flat_x = vx.clone().lt_eq(lit(1e-9) * mx.clone() * mx + lit(1e-12));
    let flat_y = flat_x.clone().shift_and_fill(lit(k as i64), lit(false));
    let r = when(flat_x.or(flat_y))
        .then(lit(NULL).cast(DataType::Float64))
        .otherwise(cov / (vx * vy).sqrt());
    inside(r, window - 1)
}

/// Smallest mean treated as non-zero when dividing by it: rolling means of all-zero windows may
/// carry ~1e-15 of floating-point residue from other series (whole-column kernels).
const TINY: f64 = 1e-9;

/// Within-series running sum of `e` (global cumulative sum minus its value before the series'
/// first row); cheaper than a per-group cumulative sum over 100,000 groups.
fn running_sum(e: Expr) -> Expr {
    let cs = e.clone().cum_sum(false);
    let base = when(col(T).eq(lit(0)))
        .then(cs.clone() - e)
        .otherwise(lit(NULL))
        .fill_null_with_strategy(FillNullStrategy::Forward(None));
    cs - base
}

fn scale_expr(w: usize) -> Expr {
    let ax = x().abs();
    let sum = when(t_at_least(w - 1))
        .then(ax.clone().rolling_sum(fixed(w)))
        .otherwise(running_sum(ax));
    let n = when(t_at_least(w - 1))
        .then(lit(w as f64))
        .otherwise(col(T).cast(DataType::Float64) + lit(1.0));
    let mean = sum / n;
    when(mean.clone().gt(lit(TINY)))
        .then(mean)
        .otherwise(lit(1.0))
}

/// Calendar terms of every distinct period in `lf` (a few hundred rows, however many series):
/// ISO week, month, and Fourier terms from a 366-row day-of-year table (Polars has no `sin` without
/// its `trigonometry` feature; a table computed in Rust and joined is as fast and keeps the build).
/// Joined back on `period_start`, so the per-row cost is one join instead of several date kernels.
fn calendar(lf: LazyFrame, terms: usize) -> Result<LazyFrame> {
    let doy: Vec<i16> = (1..=366).collect();
    let mut cols = vec![Column::new("doy".into(), doy)];
    for j in 1..=terms {
        let angle = |d: i16| 2.0 * std::f64::consts::PI * j as f64 * f64::from(d) / 365.25;
        let sin: Vec<f32> = (1..=366).map(|d| angle(d).sin() as f32).collect();
        let cos: Vec<f32> = (1..=366).map(|d| angle(d).cos() as f32).collect();
        cols.push(Column::new(format!("fourier_sin_{j}").into(), sin));
        cols.push(Column::new(format!("fourier_cos_{j}").into(), cos));
    }
    let fourier = DataFrame::new_infer_height(cols)?.lazy();
    Ok(lf
        .select([col(PERIOD_START)])
        .unique(None, UniqueKeepStrategy::Any)
        .with_columns([
            col(PERIOD_START)
                .dt()
                .week()
                .cast(DataType::Float32)
                .alias("week_of_year"),
            col(PERIOD_START)
                .dt()
                .month()
                .cast(DataType::Float32)
                .alias("month"),
            col(PERIOD_START)
                .dt()
                .ordinal_day()
                .cast(DataType::Int16)
                .alias("doy"),
        ])
        .join(
            fourier,
            [col("doy")],
            [col("doy")],
            JoinArgs::new(JoinType::Left),
        ))
}

/// The expressions of [`demand_features`]: the first stage (everything but the seasonality
/// summary and the Fourier join) and the second (seasonality strength and dominant period, which
/// read the `acf_k` columns). Public so other pipelines can compose them and profiling can time
/// them one by one; they assume a frame sorted by `(series, t)`.
pub fn demand_exprs(cfg: &DemandConfig) -> Vec<Vec<Expr>> {
    // Stage one: intermediates shared by several features (underscore names, dropped at the end).
    let mut parts: Vec<Expr> = vec![
        x().rolling_mean(fixed(cfg.trend_window))
            .alias("_mean_trend"),
        x().rolling_mean(fixed(cfg.volatility_window))
            .alias("_mean_vol"),
        scale_expr(cfg.scale_window).alias("scale"),
    ];
    for &k in &cfg.seasonal_lags {
        parts.extend(acf_parts(k, cfg.acf_window));
    }
    let mut feats: Vec<Expr> = Vec::new();
    for &k in &cfg.lags {
        feats.push(f32c(
            inside(x().shift(lit(k as i64)), k),
            &format!("lag_{k}"),
        ));
    }
    for &w in &cfg.windows {
        let m = w - 1;
        feats.push(f32c(
            inside(x().rolling_mean(fixed(w)), m),
            &format!("roll_mean_{w}"),
        ));
        feats.push(f32c(
            inside(x().rolling_std(fixed(w)), m),
            &format!("roll_std_{w}"),
        ));
        feats.push(f32c(
            inside(x().rolling_min(fixed(w)), m),
            &format!("roll_min_{w}"),
        ));
        feats.push(f32c(
            inside(x().rolling_max(fixed(w)), m),
            &format!("roll_max_{w}"),
        ));
    }
    for &k in &cfg.growth {
        let prev = x().shift(lit(k as i64));
        let g = when(prev.clone().neq(lit(0.0)))
            .then(x() / prev - lit(1.0))
            .otherwise(lit(NULL).cast(DataType::Float64));
        feats.push(f32c(inside(g, k), &format!("growth_{k}")));
    }
    // Least-squares slope: Σ (i − ī)·x_i / Σ (i − ī)², i = 0..w inside the window, as a weighted sum.
    let w = cfg.trend_window;
    let centre = (w as f64 - 1.0) / 2.0;
    let weights: Vec<f64> = (0..w).map(|i| i as f64 - centre).collect();
    let denom: f64 = weights.iter().map(|v| v * v).sum();
    let slope = inside(
        x().rolling_sum(RollingOptionsFixedWindow {
            weights: Some(weights),
            ..fixed(w)
        }) / lit(denom),
        w - 1,
    );
    let mean_w = col("_mean_trend");
    feats.push(f32c(slope.clone(), &format!("trend_slope_{w}")));
    feats.push(f32c(
        when(mean_w.clone().gt(lit(TINY)))
            .then(slope / mean_w)
            .otherwise(lit(NULL).cast(DataType::Float64)),
        &format!("trend_slope_rel_{w}"),
    ));
    let v = cfg.volatility_window;
    let diff_std = inside((x() - x().shift(lit(1))).rolling_std(fixed(v)), v);
    let mean_v = col("_mean_vol");
    feats.push(f32c(
        when(mean_v.clone().gt(lit(TINY)))
            .then(diff_std / mean_v)
            .otherwise(lit(NULL).cast(DataType::Float64)),
        &format!("volatility_{v}"),
    ));
    let z = cfg.zero_window;
    feats.push(f32c(
        inside(
            x().eq(lit(0.0))
                .cast(DataType::Float64)
                .rolling_mean(fixed(z)),
            z - 1,
        ),
        &format!("zero_share_{z}"),
    ));
    for &k in &cfg.seasonal_lags {
        feats.push(f32c(acf(k, cfg.acf_window), &format!("acf_{k}")));
    }
    feats.push(f32c(x() / col("scale"), "scaled_value"));
    feats.push(f32c(x().log1p(), "log1p_value"));
    feats.push(running_sum(col(OBSERVED).not().cast(DataType::UInt32)).alias("gaps_to_date"));

    // Seasonality summary from the autocorrelations (second stage: reads the acf columns): the
    // largest non-null acf (`max_horizontal` skips nulls) and the first lag that reaches it.
    let acf_col = |k: usize| col(format!("acf_{k}"));
    let best = polars::lazy::dsl::max_horizontal(
        cfg.seasonal_lags
            .iter()
            .map(|&k| acf_col(k))
            .collect::<Vec<_>>(),
    )
    .expect("at least one seasonal lag (checked)");
    let mut best_p = lit(NULL).cast(DataType::Float32);
    for &k in cfg.seasonal_lags.iter().rev() {
        best_p = when(acf_col(k).eq(best.clone()))
            .then(lit(k as f32))
            .otherwise(best_p);
    }
    let positive = best.clone().gt(lit(0.0f32));
    let strength = when(positive.clone())
        .then(best)
        .otherwise(
            when(acf_col(cfg.seasonal_lags[0]).is_null())
                .then(lit(NULL))
                .otherwise(lit(0.0f32)),
        )
        .cast(DataType::Float32)
        .alias("seasonality_strength");
    let period = when(positive)
        .then(best_p)
        .otherwise(lit(NULL).cast(DataType::Float32))
        .alias("dominant_period");

    vec![parts, feats, vec![strength, period]]
}

pub fn demand_features(regular: LazyFrame, cfg: &DemandConfig) -> Result<LazyFrame> {
    cfg.check()?;
    let mut lf = regular;
    checked_input(&mut lf)?;
    pipeline(lf, cfg, false)
}

/// [`demand_features`] after its checks; `sorted`: the frame is known to be sorted by
/// `(series, t)` (checked by [`demand_features_for_each`]), so the sort is skipped.
fn pipeline(lf: LazyFrame, cfg: &DemandConfig, sorted: bool) -> Result<LazyFrame> {
    let mut order: Vec<Expr> = KEY_COLUMNS.into_iter().map(col).collect();
    let names = feature_names(cfg);
    order.extend(names.iter().map(|n| col(n.as_str())));
    let mut lf = lf.select([
        col(SERIES),
        col(T),
        col(PERIOD_START),
        col(VALUE).cast(DataType::Float64),
        col(OBSERVED),
    ]);
    if !sorted {
        lf = lf.sort([SERIES, T], SortMultipleOptions::default());
    }
    let calendar = calendar(lf.clone(), cfg.fourier_terms)?;
    for stage in demand_exprs(cfg) {
        lf = lf.with_columns(stage);
    }
    Ok(lf
        .join(
            calendar,
            [col(PERIOD_START)],
            [col(PERIOD_START)],
            JoinArgs {
                maintain_order: MaintainOrderJoin::Left,
                ..JoinArgs::new(JoinType::Left)
            },
        )
        .select(order))
}

/// Key columns at the front of [`demand_features`]'s output. Platform and keyword are not repeated
/// on every row (two strings × 15.6 M rows is half a gigabyte): join [`series_keys`] on `series`.
pub const KEY_COLUMNS: [&str; 5] = [SERIES, T, PERIOD_START, VALUE, OBSERVED];

/// `series → (platform, keyword)`, one row per series of a regular frame.
pub fn series_keys(regular: LazyFrame) -> LazyFrame {
    regular
        .select([col(SERIES), col(PLATFORM), col(KEYWORD)])
        .unique_stable(Some(cols([SERIES])), UniqueKeepStrategy::First)
}

/// Names of the feature columns [`demand_features`] adds for `cfg`, in output order.
pub fn feature_names(cfg: &DemandConfig) -> Vec<String> {
    let mut n: Vec<String> = Vec::new();
    n.extend(cfg.lags.iter().map(|k| format!("lag_{k}")));
    for w in &cfg.windows {
        for s in ["mean", "std", "min", "max"] {
            n.push(format!("roll_{s}_{w}"));
        }
    }
    n.extend(cfg.growth.iter().map(|k| format!("growth_{k}")));
    n.push(format!("trend_slope_{}", cfg.trend_window));
    n.push(format!("trend_slope_rel_{}", cfg.trend_window));
    n.push(format!("volatility_{}", cfg.volatility_window));
    n.push(format!("zero_share_{}", cfg.zero_window));
    n.extend(cfg.seasonal_lags.iter().map(|k| format!("acf_{k}")));
    n.push("seasonality_strength".into());
    n.push("dominant_period".into());
    n.push("week_of_year".into());
    n.push("month".into());
    for j in 1..=cfg.fourier_terms {
        n.push(format!("fourier_sin_{j}"));
        n.push(format!("fourier_cos_{j}"));
    }
    n.extend(
        ["scale", "scaled_value", "log1p_value", "gaps_to_date"]
            .iter()
            .map(|s| s.to_string()),
    );
    n
}

/// Demand features of a large regular frame, `series_per_batch` series at a time, each batch's
/// result handed to `sink` in series order (e.g. to write it to disk without ever holding every
/// feature in memory). Exactly the same values as [`demand_features`]: every feature is per
/// series. Faster too: one batch's rolling intermediates stay in cache-friendly sizes. The frame
/// must be sorted by `(series, t)`.
///
/// `sink` is called at least once (an empty frame gives one empty batch, with the full schema).
/// The frame is taken by value: only [`KEY_COLUMNS`] are read, and the others (the per-row
/// `platform`/`keyword` strings, more than half of a panel's memory) are released before the first
/// batch when the caller hands over its only copy. Keep [`series_keys`] first if you need them.
pub fn demand_features_for_each(
    regular: DataFrame,
    cfg: &DemandConfig,
    series_per_batch: usize,
    mut sink: impl FnMut(DataFrame) -> Result<()>,
) -> Result<()> {
    cfg.check()?;
    checked_input(&mut regular.clone().lazy())?;
    // (A block, so the full frame is dropped here: shadowing alone would keep it to the end.)
    let regular = {
        let all = regular;
        all.select(KEY_COLUMNS)?
    };
    let ids = regular.column(SERIES)?.cast(&DataType::UInt32)?;
    let ts = regular.column(T)?.cast(&DataType::Int64)?;
    // Row offsets where a batch starts: every `series_per_batch`-th change of series id. The same
    // pass checks the order the batches rely on (and that lets them skip the sort).
    let mut cuts = vec![0usize];
    let mut seen = 0usize;
    let mut prev: Option<(u32, i64)> = None;
    for (row, (id, t)) in ids.u32()?.iter().zip(ts.i64()?.iter()).enumerate() {
        let (Some(id), Some(t)) = (id, t) else {
            return Err(FeatureError::Column {
                column: if id.is_none() { SERIES } else { T }.into(),
                reason: format!("row {row} is null"),
            });
        };
        let in_order = match prev {
            Some((p, pt)) if p == id => t == pt + 1,
            Some((p, _)) => id > p && t == 0,
            None => t == 0,
        };
        if !in_order {
            return Err(FeatureError::Column {
                column: T.into(),
                reason: format!(
                    "row {row} (series {id}, t {t}) is out of order: batched demand features need \
                     a frame sorted by (series, t) with t = 0, 1, 2, … in each series, as \
                     `regular_frame` builds it"
                ),
            });
        }
        if prev.is_some_and(|(p, _)| p != id) {
            seen += 1;
            if seen.is_multiple_of(series_per_batch.max(1)) {
                cuts.push(row);
            }
        }
        prev = Some((id, t));
    }
    drop((ids, ts));
    cuts.push(regular.height());
    for pair in cuts.windows(2) {
        let part = regular.slice(pair[0] as i64, pair[1] - pair[0]);
        sink(pipeline(part.lazy(), cfg, true)?.collect()?)?;
    }
    Ok(())
}

/// [`demand_features_for_each`] collected into one frame (the batches stay separate chunks).
pub fn demand_features_batched(
    regular: DataFrame,
    cfg: &DemandConfig,
    series_per_batch: usize,
) -> Result<DataFrame> {
    let mut out: Option<DataFrame> = None;
    demand_features_for_each(regular, cfg, series_per_batch, |feats| {
        match out.as_mut() {
            None => out = Some(feats),
            Some(df) => {
                df.vstack_mut_owned(feats)?;
            }
        }
        Ok(())
    })?;
    Ok(out.expect("demand_features_for_each hands over at least one batch, even for no rows"))
}

/// The versioned schema of [`demand_features`]'s output for `cfg` (its hash goes into manifests).
pub fn demand_schema(cfg: &DemandConfig) -> Result<FeatureSchema> {
    let empty = crate::frame::series_frame(&[])?;
    let schema = demand_features(empty.lazy(), cfg)?.collect_schema()?;
    Ok(from_polars(
        DEMAND_SCHEMA_NAME,
        DEMAND_SCHEMA_VERSION,
        &schema,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::observations_frame;
    use crate::ingest::{IngestOptions, Observation, read_observations};
    use crate::regular::regular_frame;

    const GTRENDS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../data/samples/gtrends_pt_weekly_topics.csv"
    );
    const M4: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/m4/Weekly-train.csv");

    fn gtrends_rows() -> Vec<Observation> {
        read_observations(GTRENDS.as_ref(), &IngestOptions::default())
            .unwrap()
            .rows
    }

    fn features_of(rows: &[Observation]) -> DataFrame {
        let regular = regular_frame(&observations_frame(rows).unwrap(), Frequency::Weekly).unwrap();
        demand_features(regular.clone(), &DemandConfig::weekly())
            .unwrap()
            .join(
                series_keys(regular),
                [col(SERIES)],
                [col(SERIES)],
                JoinArgs {
                    maintain_order: MaintainOrderJoin::Left,
                    ..JoinArgs::new(JoinType::Left)
                },
            )
            .collect()
            .unwrap()
    }

    /// The feature row of `keyword` at period index `t`.
    fn row(df: &DataFrame, keyword: &str, t: i32) -> DataFrame {
        df.clone()
            .lazy()
            .filter(col(KEYWORD).eq(lit(keyword)).and(col(T).eq(lit(t))))
            .collect()
            .unwrap()
    }

    fn get(df: &DataFrame, column: &str) -> Option<f64> {
        let c = df.column(column).unwrap().cast(&DataType::Float64).unwrap();
        c.f64().unwrap().get(0)
    }

    /// Checks one feature against a value hand-computed from the CSV (python3 `statistics` on the
    /// raw column); features are Float32, hence the relative tolerance.
    fn check(df: &DataFrame, column: &str, expected: Option<f64>) {
        let got = get(df, column);
        match (got, expected) {
            (Some(g), Some(e)) => assert!(
                (g - e).abs() <= 1e-5 * e.abs().max(1.0),
                "{column}: got {g}, expected {e}"
            ),
            (g, e) => assert_eq!(g, e, "{column}"),
        }
    }

    #[test]
    fn gtrends_features_equal_hand_computed_values() {
        let df = features_of(&gtrends_rows());
        assert_eq!(df.height(), 32 * 679);
        let coffee = row(&df, "coffee", 200);
        assert_eq!(
            coffee
                .column(PERIOD_START)
                .unwrap()
                .get(0)
                .unwrap()
                .to_string(),
            "2009-11-01"
        );
        check(&coffee, "value", Some(56.9541981456044));
        check(&coffee, "lag_1", Some(56.14056674352434));
        check(&coffee, "lag_52", Some(54.476606926566895));
        check(&coffee, "roll_mean_13", Some(54.262955815647274));
        check(&coffee, "roll_std_13", Some(9.099007800365852));
        check(&coffee, "roll_min_52", Some(34.986150289442705));
        check(&coffee, "roll_max_52", Some(77.82372418080985));
        check(&coffee, "zero_share_52", Some(0.0));
        check(&coffee, "growth_4", Some(0.01449275362318847));
        check(&coffee, "trend_slope_13", Some(0.39340419441233887));
        check(&coffee, "acf_4", Some(0.21678744828979213));
        check(&coffee, "acf_13", Some(0.029889629950796293));
        check(&coffee, "acf_26", Some(-0.2080825352820868));
        check(&coffee, "acf_52", Some(0.2715573074816811));
        check(&coffee, "seasonality_strength", Some(0.2715573074816811));
        check(&coffee, "dominant_period", Some(52.0));
        check(&coffee, "scale", Some(56.62402942566299));
        check(&coffee, "week_of_year", Some(44.0));
        check(&coffee, "month", Some(11.0));
        check(&coffee, "fourier_sin_1", Some(-0.8605996962501181));
        check(&coffee, "gaps_to_date", Some(0.0));

        let tobacco = row(&df, "tobacco", 300);
        check(&tobacco, "lag_52", Some(12.897977717764764));
        check(&tobacco, "roll_std_13", Some(9.115360708243157));
        check(&tobacco, "roll_min_52", Some(0.0));
        check(&tobacco, "zero_share_52", Some(0.09615384615384616));
        check(&tobacco, "growth_4", Some(0.31481481481481466));
        check(&tobacco, "trend_slope_13", Some(1.6198638022339775));
        check(&tobacco, "acf_52", Some(0.2080902568296898));
        check(&tobacco, "dominant_period", Some(52.0));
        check(&tobacco, "scale", Some(16.229034115637475));

        // Early rows: windows that would reach into the previous series are null, and the scale
        // uses the values seen so far.
        let early = row(&df, "coffee", 10);
        check(&early, "lag_52", None);
        check(&early, "roll_mean_13", None);
        check(&early, "acf_4", None);
        check(&early, "seasonality_strength", None);
        check(
            &early,
            "lag_1",
            Some(get(&row(&df, "coffee", 9), "value").unwrap()),
        );
        check(&early, "scale", Some(66.63636363636364));
        check(&row(&df, "coffee", 51), "lag_52", None);
        check(
            &row(&df, "coffee", 103),
            "acf_52",
            get(&row(&df, "coffee", 103), "acf_52"),
        );
        assert!(get(&row(&df, "coffee", 102), "acf_52").is_none());
        assert!(get(&row(&df, "coffee", 103), "acf_52").is_some());
    }

    #[test]
    fn m4_features_equal_hand_computed_values() {
        let opts = IngestOptions {
            start: Some("2000-01-02".parse().unwrap()),
            ..Default::default()
        };
        let rows = read_observations(M4.as_ref(), &opts).unwrap().rows;
        let df = features_of(&rows);
        let w100 = row(&df, "w100", 60);
        check(&w100, "value", Some(367.339));
        check(&w100, "lag_13", Some(354.829));
        check(&w100, "roll_mean_4", Some(365.409));
        check(&w100, "roll_std_4", Some(2.168409555411533));
        check(&w100, "roll_max_13", Some(375.19));
        check(&w100, "growth_1", Some(0.003441880031359368));
    }

    /// Compares two feature frames on the rows `keep` selects, column by column (relative 1e-6:
    /// whole-column rolling kernels carry floating-point residue from other series' values, which
    /// may move the last bits, never the value).
    fn assert_same(a: &DataFrame, b: &DataFrame) {
        assert_eq!(a.height(), b.height());
        for name in a.get_column_names() {
            let ca = a.column(name).unwrap();
            let cb = b.column(name).unwrap();
            if ca.dtype().is_float() {
                let fa = ca.cast(&DataType::Float64).unwrap();
                let fb = cb.cast(&DataType::Float64).unwrap();
                for (i, (x, y)) in fa
                    .f64()
                    .unwrap()
                    .iter()
                    .zip(fb.f64().unwrap().iter())
                    .enumerate()
                {
                    match (x, y) {
                        (Some(x), Some(y)) => assert!(
                            (x - y).abs() <= 1e-6 * x.abs().max(1.0),
                            "{name} row {i}: {x} vs {y}"
                        ),
                        (x, y) => assert_eq!(x, y, "{name} row {i}"),
                    }
                }
            } else {
                assert!(ca.equals_missing(cb), "{name}");
            }
        }
    }

    #[test]
    fn no_feature_at_t_changes_when_later_data_changes() {
        let rows = gtrends_rows();
        let cut: chrono::NaiveDate = "2012-06-24".parse().unwrap();
        let mut changed = rows.clone();
        for o in &mut changed {
            if o.period_start > cut {
                o.values[0] = o.values[0].map(|v| v * 3.0 + 7.0);
            }
        }
        // Also drop some later observations entirely (gaps after t must not matter either).
        changed.retain(|o| !(o.period_start > cut && o.line % 4 == 0));
        let before = |df: DataFrame| {
            df.lazy()
                .filter(
                    col(PERIOD_START)
                        .lt_eq(lit(crate::frame::date_to_days(cut)).cast(DataType::Date)),
                )
                .collect()
                .unwrap()
        };
        let a = before(features_of(&rows));
        let b = before(features_of(&changed));
        assert_eq!(a.height(), 32 * 339);
        assert_same(&a, &b);
        // The test can fail: a change at t itself does move the features at t.
        let mut at_cut = rows.clone();
        for o in &mut at_cut {
            if o.period_start == cut {
                o.values[0] = o.values[0].map(|v| v + 50.0);
            }
        }
        let c = before(features_of(&at_cut));
        let lag0 = |df: &DataFrame| get(&row(df, "coffee", 338), "roll_mean_4").unwrap();
        assert!((lag0(&a) - lag0(&c) - (-12.5)).abs() < 1e-3);
    }

    #[test]
    fn batched_equals_unbatched() {
        let rows = gtrends_rows();
        let regular = regular_frame(&observations_frame(&rows).unwrap(), Frequency::Weekly)
            .unwrap()
            .collect()
            .unwrap();
        let whole = demand_features(regular.clone().lazy(), &DemandConfig::weekly())
            .unwrap()
            .collect()
            .unwrap();
        let batched = demand_features_batched(regular.clone(), &DemandConfig::weekly(), 5).unwrap();
        assert_same(&whole, &batched);
        // The batched path checks its input like the lazy one: a missing column is named.
        let err =
            demand_features_batched(regular.drop(OBSERVED).unwrap(), &DemandConfig::weekly(), 5)
                .unwrap_err()
                .to_string();
        assert!(err.contains("observed"), "{err}");
        // ... and refuses a frame out of order (it skips the sort), naming the row.
        let err = demand_features_batched(regular.reverse(), &DemandConfig::weekly(), 5)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("row 0 (series 31, t 678) is out of order"),
            "{err}"
        );
    }

    #[test]
    fn config_check_and_schema() {
        let mut bad = DemandConfig::weekly();
        bad.acf_window = 50;
        assert!(bad.check().is_err());
        let mut dup = DemandConfig::weekly();
        dup.lags = vec![1, 1];
        assert!(dup.check().is_err());
        assert!(DemandConfig::daily().check().is_ok());
        let s = demand_schema(&DemandConfig::weekly()).unwrap();
        let names = s.column_names();
        assert_eq!(&names[..5], &KEY_COLUMNS);
        assert_eq!(&names[5..], feature_names(&DemandConfig::weekly()));
        assert!(s.canonical().starts_with("kwi.demand.v1: "));
        assert_ne!(
            s.hash(),
            demand_schema(&DemandConfig::daily()).unwrap().hash()
        );
    }

    #[test]
    fn missing_input_column_is_named() {
        let df = crate::frame::series_frame(&[])
            .unwrap()
            .drop(OBSERVED)
            .unwrap();
        match demand_features(df.lazy(), &DemandConfig::weekly()) {
            Err(FeatureError::Column { column, .. }) => assert_eq!(column, OBSERVED),
            Err(e) => panic!("wrong error {e}"),
            Ok(_) => panic!("accepted a frame without `observed`"),
        }
    }
}
