//! # kwi-models: forecasters and scorers; arrays in, plain structs out
//!
//! Reading order: [`metrics`] (M4 definitions) → [`baselines`] (naive, seasonal naive, Naive2) →
//! [`ets`] (per-series AutoETS from augurs) → [`mlp`] (global Candle MLP on scaled windows) →
//! [`linear`] (global Linfa ridge on the same windows) → [`conformal`] (intervals from validation
//! residuals) → [`ensemble`] (members and weights chosen on a validation window) → [`artifact`]
//! (manifests, safetensors and JSON on disk). [`competition`] is the competition scorer
//! (sign-constrained ridge on listing features, percentile-calibrated, explained per factor).
//!
//! This crate knows nothing of Polars, axum, sqlx or Redis. Windows come from `kwi-features`.

pub mod artifact;
pub mod baselines;
pub mod competition;
pub mod conformal;
pub mod ensemble;
pub mod error;
pub mod ets;
pub mod linear;
pub mod metrics;
pub mod mlp;

pub use error::{ModelError, Result};

use serde::{Deserialize, Serialize};

/// A prediction interval at one level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Nominal coverage in percent (e.g. 80, 95).
    pub level: f64,
    /// Lower bound per step.
    pub lo: Vec<f64>,
    /// Upper bound per step.
    pub hi: Vec<f64>,
}

/// A forecast for one series: mean per step and intervals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    /// Point forecast per step.
    pub mean: Vec<f64>,
    /// Intervals, narrowest level first.
    pub intervals: Vec<Interval>,
}

impl Forecast {
    /// The interval at `level`, if computed.
    pub fn interval(&self, level: f64) -> Option<&Interval> {
        self.intervals
            .iter()
            .find(|i| (i.level - level).abs() < 1e-9)
    }
}
