//! Prediction intervals by split conformal calibration: on a validation window, the absolute errors
//! of the point forecast divided by each series' scale (mean absolute one-step change, as in MASE)
//! give, per step ahead, an empirical quantile; an interval is the forecast ± that quantile × the
//! series' scale. Radii are made non-decreasing in the step (intervals widen with the horizon) and
//! nested across levels (quantiles never cross); lower bounds are clipped at 0 (volumes are never
//! negative).
//!
//! A step with fewer than [`MIN_PER_STEP`] errors (a fit on a handful of keywords) cannot tell the
//! levels apart: with n < 19 errors the finite-sample 95 % quantile is the largest error, and so is
//! the 80 % one for n < 4. Such a step's quantile is taken from every step's errors pooled, each
//! error of step j rescaled to step k by √((k+1)/(j+1)) (errors growing like a random walk's, the
//! same growth used past the calibrated horizon).

use serde::{Deserialize, Serialize};

use crate::metrics::mase_scale;
use crate::{Forecast, Interval};

/// Calibrated radii per level and step, in units of the series' scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conformal {
    /// Levels in percent, ascending.
    pub levels: Vec<f64>,
    /// `radius[level][step]`.
    pub radius: Vec<Vec<f64>>,
}

/// The scale an interval is expressed in: mean |y_t − y_{t−1}| of the history, or, for a flat
/// history, 5 % of its mean level (and 1 for an all-zero history).
pub fn series_scale(history: &[f64]) -> f64 {
    mase_scale(history, 1).unwrap_or_else(|| {
        let n = history.len().max(1) as f64;
        let level = history.iter().map(|v| v.abs()).sum::<f64>() / n;
        if level > 0.0 { 0.05 * level } else { 1.0 }
    })
}

/// Fewest errors a step needs for its own quantiles; below, the steps' errors are pooled.
pub const MIN_PER_STEP: usize = 20;

/// Finite-sample conformal quantile: the ⌈(n+1)·q⌉-th smallest value.
fn conformal_quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let n = sorted.len();
    let k = (((n + 1) as f64 * q).ceil() as usize).clamp(1, n);
    sorted[k - 1]
}

impl Conformal {
    /// Calibrates from validation data: per series its history (for the scale), actuals and forecasts.
    pub fn calibrate(
        history: &[&[f64]],
        actual: &[&[f64]],
        forecast: &[Vec<f64>],
        levels: &[f64],
    ) -> Self {
        let h = actual.iter().map(|a| a.len()).max().unwrap_or(0);
        let mut per_step: Vec<Vec<f64>> = vec![Vec::new(); h];
        for i in 0..history.len().min(actual.len()).min(forecast.len()) {
            let scale = series_scale(history[i]);
            for (k, (y, f)) in actual[i].iter().zip(&forecast[i]).enumerate() {
                let e = (y - f).abs() / scale;
                if e.is_finite() {
                    per_step[k].push(e);
                }
            }
        }
        // Steps with too few errors of their own use all steps' errors, rescaled to the step.
        let pooled: Vec<(usize, Vec<f64>)> = (0..h)
            .filter(|&k| per_step[k].len() < MIN_PER_STEP)
            .map(|k| {
                let all = per_step.iter().enumerate().flat_map(|(j, e)| {
                    let g = ((k + 1) as f64 / (j + 1) as f64).sqrt();
                    e.iter().map(move |v| v * g)
                });
                (k, all.collect())
            })
            .collect();
        for (k, errs) in pooled {
            per_step[k] = errs;
        }
        per_step
            .iter_mut()
            .for_each(|v| v.sort_by(|a, b| a.total_cmp(b)));
        let mut levels: Vec<f64> = levels.to_vec();
        levels.sort_by(|a, b| a.total_cmp(b));
        let mut radius: Vec<Vec<f64>> = levels
            .iter()
            .map(|lvl| {
                let mut r: Vec<f64> = per_step
                    .iter()
                    .map(|errs| conformal_quantile(errs, lvl / 100.0))
                    .collect();
                for k in 1..r.len() {
                    r[k] = r[k].max(r[k - 1]);
                }
                r
            })
            .collect();
        for j in 1..radius.len() {
            let (lower, upper) = radius.split_at_mut(j);
            for (u, l) in upper[0].iter_mut().zip(&lower[j - 1]) {
                *u = u.max(*l);
            }
        }
        Self { levels, radius }
    }

    /// The calibrated levels: every whole percent from 1 to 99, so any level a user asks for in that
    /// range is answered by interpolation.
    pub fn level_grid() -> Vec<f64> {
        (1..=99).map(f64::from).collect()
    }

    /// Whether `level` (percent) can be answered: within the calibrated range.
    pub fn supports(&self, level: f64) -> bool {
        match (self.levels.first(), self.levels.last()) {
            (Some(lo), Some(hi)) => level >= *lo - 1e-9 && level <= *hi + 1e-9,
            _ => false,
        }
    }

    /// Radius (in scale units) at `level` and `step` (0-based), interpolated linearly between
    /// calibrated levels; past the calibrated horizon H the last step's radius grows as
    /// √((step + 1) / H), so intervals keep widening however far out the forecast goes.
    pub fn radius(&self, level: f64, step: usize) -> f64 {
        let at = |j: usize| {
            let r = &self.radius[j];
            match (r.get(step), r.last()) {
                (Some(v), _) => *v,
                (None, Some(last)) => last * ((step + 1) as f64 / r.len() as f64).sqrt(),
                (None, None) => 0.0,
            }
        };
        let n = self.levels.len();
        if n == 0 {
            return 0.0;
        }
        let j = self.levels.partition_point(|l| *l < level);
        if j == 0 {
            return at(0);
        }
        if j >= n {
            return at(n - 1);
        }
        let (l0, l1) = (self.levels[j - 1], self.levels[j]);
        let t = if l1 > l0 {
            (level - l0) / (l1 - l0)
        } else {
            0.0
        };
        at(j - 1) + t * (at(j) - at(j - 1))
    }

    /// Builds a forecast with intervals at the requested `levels` (levels outside the calibrated
    /// range are skipped; check with [`Conformal::supports`]) around `mean` (clipped at 0) for a
    /// series with `history`.
    pub fn apply(&self, history: &[f64], mean: Vec<f64>, levels: &[f64]) -> Forecast {
        let scale = series_scale(history);
        let mean: Vec<f64> = mean.into_iter().map(|v| v.max(0.0)).collect();
        let mut intervals = Vec::new();
        for lvl in levels {
            if !self.supports(*lvl) {
                continue;
            }
            let radius_at = |k: usize| self.radius(*lvl, k) * scale;
            intervals.push(Interval {
                level: *lvl,
                lo: mean
                    .iter()
                    .enumerate()
                    .map(|(k, m)| (m - radius_at(k)).max(0.0))
                    .collect(),
                hi: mean
                    .iter()
                    .enumerate()
                    .map(|(k, m)| m + radius_at(k))
                    .collect(),
            });
        }
        intervals.sort_by(|a, b| a.level.total_cmp(&b.level));
        Forecast { mean, intervals }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radii_widen_nest_and_bounds_stay_non_negative() {
        let hist: Vec<f64> = vec![10.0, 11.0, 10.0, 11.0];
        let histories: Vec<&[f64]> = (0..50).map(|_| hist.as_slice()).collect();
        let actual: Vec<Vec<f64>> = (0..50)
            .map(|i| vec![10.0 + (i % 5) as f64, 10.0, 10.0 + (i % 3) as f64])
            .collect();
        let actual_refs: Vec<&[f64]> = actual.iter().map(Vec::as_slice).collect();
        let fc: Vec<Vec<f64>> = (0..50).map(|_| vec![10.0; 3]).collect();
        let c = Conformal::calibrate(&histories, &actual_refs, &fc, &[95.0, 80.0]);
        assert_eq!(c.levels, vec![80.0, 95.0]);
        for r in &c.radius {
            assert!(r.windows(2).all(|w| w[1] >= w[0]), "{r:?}");
        }
        assert!(c.radius[1].iter().zip(&c.radius[0]).all(|(a, b)| a >= b));
        let f = c.apply(&hist, vec![0.5, 10.0, -3.0], &[80.0, 95.0]);
        assert_eq!(f.mean[2], 0.0, "negative means are clipped");
        for i in &f.intervals {
            assert!(i.lo.iter().all(|v| *v >= 0.0));
            assert!(i.lo.iter().zip(&f.mean).all(|(l, m)| l <= m));
            assert!(i.hi.iter().zip(&f.mean).all(|(u, m)| u >= m));
        }
        // Step-1 errors are 0..=4 in equal shares (scale 1): the finite-sample 80 % quantile,
        // the ⌈51·0.8⌉ = 41st smallest of 50, is 4.
        assert_eq!(c.radius[0][0], 4.0);
        // Interpolation between calibrated levels, and the range check.
        let mid = c.radius(87.5, 0);
        assert!(mid >= c.radius[0][0] && mid <= c.radius[1][0]);
        assert!(c.supports(80.0) && c.supports(90.0) && !c.supports(50.0) && !c.supports(99.0));
        // Past the calibrated 3 steps the last radius grows as √((k + 1) / 3).
        let last = c.radius[0][2];
        assert!((c.radius(80.0, 3) - last * (4.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((c.radius(80.0, 11) - last * 2.0).abs() < 1e-12);
        let f = c.apply(&hist, vec![10.0; 8], &[80.0]);
        let width: Vec<f64> = f.intervals[0]
            .hi
            .iter()
            .zip(&f.intervals[0].lo)
            .map(|(h, l)| h - l)
            .collect();
        assert!(width[2..].windows(2).all(|w| w[1] > w[0]), "{width:?}");
    }

    #[test]
    fn few_series_pool_the_steps_so_levels_stay_apart() {
        // Three series, four steps: 3 errors per step. Per step, 80 % and 95 % would both be the
        // largest error; pooled (12 errors, rescaled by √((k+1)/(j+1))) they differ.
        let hist = [10.0, 11.0, 10.0, 11.0];
        let histories: Vec<&[f64]> = vec![&hist; 3];
        let actual: Vec<Vec<f64>> = vec![
            vec![11.0, 12.0, 10.0, 14.0],
            vec![10.5, 8.0, 13.0, 10.0],
            vec![10.0, 10.0, 7.0, 16.0],
        ];
        let actual_refs: Vec<&[f64]> = actual.iter().map(Vec::as_slice).collect();
        let fc = vec![vec![10.0; 4]; 3];
        let c = Conformal::calibrate(&histories, &actual_refs, &fc, &[80.0, 95.0]);
        // Step 1 (k = 0): the pooled errors are |e_j| / √(j+1): 1, .5, 0; 2/√2, 2/√2, 0;
        // 0, 3/√3, 3/√3; 4/2, 0, 6/2. ⌈13·0.8⌉ = 11th smallest of 12 = 2, ⌈13·0.95⌉ = 13 → 12th = 3.
        assert!((c.radius[0][0] - 2.0).abs() < 1e-12, "{:?}", c.radius);
        assert!((c.radius[1][0] - 3.0).abs() < 1e-12, "{:?}", c.radius);
        assert!(c.radius[0].iter().zip(&c.radius[1]).all(|(a, b)| a < b));
        // With MIN_PER_STEP errors per step, each step keeps its own quantile: step 1's errors
        // are all 1, so its radius is exactly 1 at both levels (pooling would mix in step 2's 3s).
        let n = MIN_PER_STEP;
        let histories: Vec<&[f64]> = vec![&hist; n];
        let actual: Vec<Vec<f64>> = vec![vec![11.0, 13.0]; n];
        let actual_refs: Vec<&[f64]> = actual.iter().map(Vec::as_slice).collect();
        let fc = vec![vec![10.0; 2]; n];
        let c = Conformal::calibrate(&histories, &actual_refs, &fc, &[80.0, 95.0]);
        assert_eq!(c.radius[0][0], 1.0);
        assert_eq!(c.radius[1][0], 1.0);
        assert_eq!(c.radius[1][1], 3.0);
    }
}
