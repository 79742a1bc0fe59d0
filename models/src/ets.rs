//! Per-series classical model: AutoETS from the `augurs` crate (Grafana's port of R's `forecast::ets`),
//! chosen because it is a kept, tested implementation of the model statsforecast's AutoETS also
//! follows (AIC selection over error/trend/damping), which we would otherwise hand-write.
//! Seasonal ETS is limited to short seasons, so weekly keywords use the non-seasonal family and the
//! seasonal members of the ensemble (seasonal naive, the global models) carry yearly seasonality.

use augurs_core::{Fit, Predict};
use augurs_ets::AutoETS;
use rayon::prelude::*;

use crate::baselines::naive;

/// Forecasts each series with AutoETS (`ZZN`: any error, any trend incl. damped, no season), falling
/// back to naive where the fit fails (constant or very short series). Runs series in parallel.
pub fn auto_ets(series: &[&[f64]], h: usize) -> Vec<Vec<f64>> {
    series
        .par_iter()
        .map(|s| ets_one(s, h).unwrap_or_else(|| naive(s, h)))
        .collect()
}

fn ets_one(s: &[f64], h: usize) -> Option<Vec<f64>> {
    if s.len() < 4 || s.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let first = s[0];
    if s.iter().all(|v| *v == first) {
        return None;
    }
    let model = AutoETS::non_seasonal().fit(s).ok()?;
    let f = model.predict(h, None).ok()?;
    f.point.iter().all(|v| v.is_finite()).then_some(f.point)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ets_follows_a_trend_and_falls_back_on_constants() {
        let trend: Vec<f64> = (0..60).map(|t| 100.0 + 2.0 * f64::from(t)).collect();
        let f = auto_ets(&[&trend, &[5.0; 10]], 3);
        assert!(f[0][0] > 215.0 && f[0][2] > f[0][0], "{:?}", f[0]);
        assert_eq!(f[1], vec![5.0; 3]);
    }
}
