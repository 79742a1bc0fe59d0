//! Forecast accuracy metrics with the M4 competition's definitions.
//!
//! - sMAPE = (200/h)·Σ|y−ŷ|/(|y|+|ŷ|) per series, averaged over series;
//! - MASE = mean|y−ŷ| / mean over the training sample of |y_t − y_{t−m}|, averaged over series;
//! - OWA = ½·(sMAPE/sMAPE_Naive2 + MASE/MASE_Naive2);
//! - coverage: share of actuals inside the interval;
//! - MSIS (M4): mean interval width plus 2/α times the distance of each miss, scaled like MASE.

use serde::{Deserialize, Serialize};

/// sMAPE of one series, in percent. A step where both actual and forecast are 0 counts as 0.
pub fn smape(actual: &[f64], forecast: &[f64]) -> f64 {
    let h = actual.len().min(forecast.len());
    if h == 0 {
        return 0.0;
    }
    let sum: f64 = actual
        .iter()
        .zip(forecast)
        .map(|(y, f)| {
            let d = y.abs() + f.abs();
            if d == 0.0 { 0.0 } else { (y - f).abs() / d }
        })
        .sum();
    200.0 * sum / h as f64
}

/// The MASE denominator: mean |y_t − y_{t−m}| over the training sample (`None` if undefined or 0).
pub fn mase_scale(train: &[f64], m: usize) -> Option<f64> {
    let m = m.max(1);
    if train.len() <= m {
        return None;
    }
    let n = train.len() - m;
    let s: f64 = (m..train.len()).map(|t| (train[t] - train[t - m]).abs()).sum::<f64>() / n as f64;
    (s > 0.0 && s.is_finite()).then_some(s)
}

/// MASE of one series; falls back to the lag-1 scale when the seasonal one is undefined, and to 1 for
/// a constant training sample.
pub fn mase(train: &[f64], actual: &[f64], forecast: &[f64], m: usize) -> f64 {
    let scale = mase_scale(train, m)
        .or_else(|| mase_scale(train, 1))
        .unwrap_or(1.0);
    let h = actual.len().min(forecast.len()).max(1);
    actual
        .iter()
        .zip(forecast)
        .map(|(y, f)| (y - f).abs())
        .sum::<f64>()
        / h as f64
        / scale
}

/// Share of actuals inside `[lo, hi]`.
pub fn coverage(actual: &[f64], lo: &[f64], hi: &[f64]) -> f64 {
    let n = actual.len().max(1);
    actual
        .iter()
        .zip(lo.iter().zip(hi))
        .filter(|(y, (l, u))| **y >= **l && **y <= **u)
        .count() as f64
        / n as f64
}

/// MSIS of one series at level `1 − alpha` (M4 definition), scaled like MASE.
pub fn msis(train: &[f64], actual: &[f64], lo: &[f64], hi: &[f64], alpha: f64, m: usize) -> f64 {
    let scale = mase_scale(train, m)
        .or_else(|| mase_scale(train, 1))
        .unwrap_or(1.0);
    let h = actual.len().max(1);
    let s: f64 = actual
        .iter()
        .zip(lo.iter().zip(hi))
        .map(|(y, (l, u))| {
            (u - l)
                + if y < l { 2.0 / alpha * (l - y) } else { 0.0 }
                + if y > u { 2.0 / alpha * (y - u) } else { 0.0 }
        })
        .sum();
    s / h as f64 / scale
}

/// Accuracy of one model over a set of series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// Mean sMAPE (percent).
    pub smape: f64,
    /// Mean MASE.
    pub mase: f64,
    /// OWA relative to the reference (Naive2), when one was given.
    pub owa: Option<f64>,
    /// Series scored.
    pub series: usize,
}

/// Scores point forecasts: `train[i]`, `actual[i]`, `forecast[i]` per series.
pub fn accuracy(train: &[&[f64]], actual: &[&[f64]], forecast: &[Vec<f64>], m: usize) -> Accuracy {
    let n = train.len().min(actual.len()).min(forecast.len());
    if n == 0 {
        return Accuracy::default();
    }
    let mut s = 0.0;
    let mut q = 0.0;
    for i in 0..n {
        s += smape(actual[i], &forecast[i]);
        q += mase(train[i], actual[i], &forecast[i], m);
    }
    Accuracy {
        smape: s / n as f64,
        mase: q / n as f64,
        owa: None,
        series: n,
    }
}

impl Accuracy {
    /// Sets OWA relative to a reference (M4: Naive2) scored on the same series.
    pub fn with_owa(mut self, reference: &Accuracy) -> Self {
        if reference.smape > 0.0 && reference.mase > 0.0 {
            self.owa = Some(0.5 * (self.smape / reference.smape + self.mase / reference.mase));
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_values() {
        // |1-2|/(1+2)=1/3, |2-2|=0 -> 200/2 * 1/3 = 33.33
        assert!((smape(&[1.0, 2.0], &[2.0, 2.0]) - 100.0 / 3.0).abs() < 1e-9);
        assert_eq!(smape(&[0.0], &[0.0]), 0.0);
        // train diffs |2-1|,|4-2| -> scale 1.5; errors 1 and 3 -> mean 2 -> 4/3
        assert!((mase(&[1.0, 2.0, 4.0], &[5.0, 5.0], &[4.0, 8.0], 1) - 4.0 / 3.0).abs() < 1e-9);
        assert_eq!(coverage(&[1.0, 5.0], &[0.0, 0.0], &[2.0, 2.0]), 0.5);
        // width 2 each; miss of 3 at alpha 0.05 adds 40*3
        let v = msis(&[0.0, 1.0], &[1.0, 5.0], &[0.0, 0.0], &[2.0, 2.0], 0.05, 1);
        assert!((v - (2.0 + 2.0 + 120.0) / 2.0).abs() < 1e-9);
    }

    #[test]
    fn owa_of_the_reference_is_one() {
        let a = Accuracy { smape: 9.0, mase: 2.5, owa: None, series: 3 };
        assert_eq!(a.with_owa(&a).owa, Some(1.0));
    }
}
