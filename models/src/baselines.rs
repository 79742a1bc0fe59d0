//! Baseline forecasters: naive, seasonal naive and the M4 competition's Naive2.

use crate::Forecast;

/// Last value repeated.
pub fn naive(history: &[f64], h: usize) -> Vec<f64> {
    vec![history.last().copied().unwrap_or(0.0); h]
}

/// The value one season (`m` periods) earlier, repeated seasonally; naive when the history is
/// shorter than a season.
pub fn seasonal_naive(history: &[f64], h: usize, m: usize) -> Vec<f64> {
    let n = history.len();
    if m <= 1 || n < m {
        return naive(history, h);
    }
    (0..h).map(|i| history[n - m + (i % m)]).collect()
}

/// Classical multiplicative seasonal indices (centred moving average), or `None` when the series
/// fails the M4 seasonality test (autocorrelation at lag `m` not significant at 90 %) or is too short.
pub fn seasonal_indices(history: &[f64], m: usize) -> Option<Vec<f64>> {
    let n = history.len();
    if m <= 1 || n < 3 * m || history.iter().any(|v| *v <= 0.0) {
        return None;
    }
    // M4 seasonality test: |acf_m| > 1.645 * sqrt((1 + 2 Σ_{k<m} acf_k²) / n).
    let mean = history.iter().sum::<f64>() / n as f64;
    let var: f64 = history.iter().map(|v| (v - mean).powi(2)).sum();
    if var == 0.0 {
        return None;
    }
    let acf = |k: usize| -> f64 {
        (k..n)
            .map(|t| (history[t] - mean) * (history[t - k] - mean))
            .sum::<f64>()
            / var
    };
    let sum_sq: f64 = (1..m).map(|k| acf(k).powi(2)).sum();
    let limit = 1.645 * ((1.0 + 2.0 * sum_sq) / n as f64).sqrt();
    if acf(m).abs() <= limit {
        return None;
    }
    // Centred moving average of order m (2×m for even m).
    let half = m / 2;
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); m];
    for t in half..n - half {
        let cma = if m % 2 == 0 {
            if t + half >= n {
                continue;
            }
            let inner: f64 = history[t - half + 1..t + half].iter().sum();
            (inner + 0.5 * (history[t - half] + history[t + half])) / m as f64
        } else {
            history[t - half..=t + half].iter().sum::<f64>() / m as f64
        };
        if cma > 0.0 {
            ratios[t % m].push(history[t] / cma);
        }
    }
    let mut idx: Vec<f64> = ratios
        .iter()
        .map(|r| if r.is_empty() { 1.0 } else { r.iter().sum::<f64>() / r.len() as f64 })
        .collect();
    let norm = idx.iter().sum::<f64>() / m as f64;
    idx.iter_mut().for_each(|v| *v /= norm);
    Some(idx)
}

/// M4's Naive2: naive on the seasonally adjusted series, re-seasonalised. For weekly M4 data
/// (m = 1 in the competition's setup) it equals [`naive`].
pub fn naive2(history: &[f64], h: usize, m: usize) -> Vec<f64> {
    match seasonal_indices(history, m) {
        None => naive(history, h),
        Some(idx) => {
            let n = history.len();
            let last_adj = history[n - 1] / idx[(n - 1) % m];
            (0..h).map(|i| last_adj * idx[(n + i) % m]).collect()
        }
    }
}

/// Wraps a point forecast as a [`Forecast`] without intervals.
pub fn point(mean: Vec<f64>) -> Forecast {
    Forecast {
        mean,
        intervals: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baselines_on_small_series() {
        assert_eq!(naive(&[1.0, 2.0, 3.0], 2), vec![3.0, 3.0]);
        assert_eq!(seasonal_naive(&[1.0, 2.0, 3.0, 4.0], 3, 2), vec![3.0, 4.0, 3.0]);
        assert_eq!(seasonal_naive(&[1.0], 2, 4), vec![1.0, 1.0]);
        assert_eq!(naive2(&[5.0, 6.0, 7.0], 2, 1), vec![7.0, 7.0]);
    }

    #[test]
    fn naive2_reseasonalises_a_strongly_seasonal_series() {
        let pattern = [10.0, 20.0, 30.0, 40.0];
        let hist: Vec<f64> = (0..40).map(|t| pattern[t % 4]).collect();
        let f = naive2(&hist, 4, 4);
        for (a, b) in f.iter().zip(pattern) {
            assert!((a - b).abs() < 1e-9, "{f:?}");
        }
    }
}
