//! Prediction intervals by split conformal calibration: on a validation window, the absolute errors
//! of the point forecast divided by each series' scale (mean absolute one-step change, as in MASE)
//! give, per step ahead, an empirical quantile; an interval is the forecast ± that quantile × the
//! series' scale. Radii are made non-decreasing in the step (intervals widen with the horizon) and
//! nested across levels (quantiles never cross); lower bounds are clipped at 0 (volumes are never
//! negative).

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
    pub fn calibrate(history: &[&[f64]], actual: &[&[f64]], forecast: &[Vec<f64>], levels: &[f64]) -> Self {
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

    /// Builds a forecast with intervals at the requested `levels` (each must have been calibrated,
    /// else it is skipped) around `mean` (clipped at 0) for a series with `history`.
    pub fn apply(&self, history: &[f64], mean: Vec<f64>, levels: &[f64]) -> Forecast {
        let scale = series_scale(history);
        let mean: Vec<f64> = mean.into_iter().map(|v| v.max(0.0)).collect();
        let mut intervals = Vec::new();
        for lvl in levels {
            let Some(j) = self.levels.iter().position(|l| (l - lvl).abs() < 1e-9) else {
                continue;
            };
            let r = &self.radius[j];
            let radius_at = |k: usize| r.get(k).or(r.last()).copied().unwrap_or(0.0) * scale;
            intervals.push(Interval {
                level: *lvl,
                lo: mean.iter().enumerate().map(|(k, m)| (m - radius_at(k)).max(0.0)).collect(),
                hi: mean.iter().enumerate().map(|(k, m)| m + radius_at(k)).collect(),
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
        let actual: Vec<Vec<f64>> = (0..50).map(|i| vec![10.0 + (i % 5) as f64, 10.0, 10.0 + (i % 3) as f64]).collect();
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
    }
}
