//! Global linear forecaster in Linfa: a multi-task ridge regression (linfa-elasticnet's
//! `MultiTaskElasticNet` with `l1_ratio = 0`) from the scaled input window (the lags) to the
//! `horizon` scaled targets' change from the last input, one set of coefficients shared by all
//! series; with `lookback` ≥ 52 the lags include last year's values, so it captures seasonality. Linfa's elastic net does not serialise, so the coefficients are kept and saved here.
//!
//! | Name | Default | Purpose | Range |
//! | --- | --- | --- | --- |
//! | `penalty` | 1e-3 | ridge strength (on scaled data) | (0, 10] |
//! | `max_windows` | 60000 | windows used for fitting (evenly thinned) | 100..=10^7 |
//! | `tolerance` | 1e-4 | coordinate-descent stopping tolerance | (0, 1) |
//! | `max_iterations` | 300 | coordinate-descent iterations | 1..=100000 |

use linfa::prelude::*;
use linfa_elasticnet::MultiTaskElasticNet;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Hyperparameters (see the module table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LinearConfig {
    /// Ridge penalty.
    pub penalty: f64,
    /// At most this many windows are used to fit (evenly thinned).
    pub max_windows: usize,
    /// Coordinate-descent tolerance.
    pub tolerance: f64,
    /// Coordinate-descent iterations.
    pub max_iterations: u32,
}

impl Default for LinearConfig {
    fn default() -> Self {
        Self {
            penalty: 1e-3,
            max_windows: 60_000,
            tolerance: 1e-4,
            max_iterations: 300,
        }
    }
}

impl LinearConfig {
    /// Validates every field against its documented range.
    pub fn check(&self) -> Result<()> {
        let bad = |name, reason: &str| Err(ModelError::Param { name, reason: reason.into() });
        if !(self.penalty > 0.0 && self.penalty <= 10.0) {
            return bad("penalty", "must be in (0, 10]");
        }
        if !(100..=10_000_000).contains(&self.max_windows) {
            return bad("max_windows", "must be in 100..=10000000");
        }
        if !(self.tolerance > 0.0 && self.tolerance < 1.0) {
            return bad("tolerance", "must be in (0, 1)");
        }
        if !(1..=100_000).contains(&self.max_iterations) {
            return bad("max_iterations", "must be in 1..=100000");
        }
        Ok(())
    }
}

/// Fitted coefficients: `forecast = intercept + x · weights` (scaled space), plus the last input
/// value (the model learns a correction to naive, like the MLP).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearModel {
    /// Input length.
    pub lookback: usize,
    /// Output length.
    pub horizon: usize,
    /// `lookback × horizon`, row-major.
    pub weights: Vec<f64>,
    /// One per step.
    pub intercept: Vec<f64>,
}

/// Fits on `n` scaled windows (`x`: `n × lookback`, `y`: `n × horizon`).
pub fn fit(x: &[f32], y: &[f32], n: usize, lookback: usize, horizon: usize, cfg: &LinearConfig) -> Result<LinearModel> {
    cfg.check()?;
    if n == 0 || x.len() != n * lookback || y.len() != n * horizon {
        return Err(ModelError::Input(format!(
            "expected {n} windows of {lookback} inputs and {horizon} targets"
        )));
    }
    let stride = n.div_ceil(cfg.max_windows).max(1);
    let rows: Vec<usize> = (0..n).step_by(stride).collect();
    let mut xa = Array2::<f64>::zeros((rows.len(), lookback));
    let mut ya = Array2::<f64>::zeros((rows.len(), horizon));
    for (r, &i) in rows.iter().enumerate() {
        let last = f64::from(x[i * lookback + lookback - 1]);
        for j in 0..lookback {
            xa[[r, j]] = f64::from(x[i * lookback + j]);
        }
        for j in 0..horizon {
            ya[[r, j]] = f64::from(y[i * horizon + j]) - last;
        }
    }
    let model = MultiTaskElasticNet::params()
        .penalty(cfg.penalty)
        .l1_ratio(0.0)
        .tolerance(cfg.tolerance)
        .max_iterations(cfg.max_iterations)
        .fit(&Dataset::new(xa, ya))
        .map_err(|e| ModelError::Linfa(e.to_string()))?;
    let w: &Array2<f64> = model.hyperplane();
    let b: &Array1<f64> = model.intercept();
    Ok(LinearModel {
        lookback,
        horizon,
        weights: w.iter().copied().collect(),
        intercept: b.to_vec(),
    })
}

impl LinearModel {
    /// Scaled forecasts for `n` windows → `n × horizon`.
    pub fn predict(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        let (l, h) = (self.lookback, self.horizon);
        if x.len() != n * l || self.weights.len() != l * h {
            return Err(ModelError::Input(format!("expected {n} windows of {l} values")));
        }
        let mut out = Vec::with_capacity(n * h);
        for i in 0..n {
            let row = &x[i * l..(i + 1) * l];
            let last = f64::from(row[l - 1]);
            for k in 0..h {
                let mut s = self.intercept[k] + last;
                for (j, v) in row.iter().enumerate() {
                    s += f64::from(*v) * self.weights[j * h + k];
                }
                out.push(s as f32);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_linear_trend_continuation() {
        // Windows of straight lines with random-ish slopes: the exact continuation is linear in x.
        let (l, h) = (8, 3);
        let mut x = Vec::new();
        let mut y = Vec::new();
        let n = 400;
        for i in 0..n {
            let slope = ((i * 37) % 11) as f32 * 0.01 - 0.05;
            for j in 0..l + h {
                let v = 1.0 + slope * j as f32;
                if j < l { x.push(v) } else { y.push(v) }
            }
        }
        let m = fit(&x, &y, n, l, h, &LinearConfig { penalty: 1e-6, tolerance: 1e-8, max_iterations: 20000, ..LinearConfig::default() }).unwrap();
        let p = m.predict(&x[..l], 1).unwrap();
        for k in 0..h {
            assert!((p[k] - y[k]).abs() < 0.02, "{p:?} vs {:?}", &y[..h]);
        }
        let bad = LinearConfig { penalty: 0.0, ..LinearConfig::default() };
        assert!(fit(&x, &y, n, l, h, &bad).unwrap_err().to_string().contains("`penalty`"));
    }
}
