//! Fixed-length model windows for global models, shared by training and serving.
//!
//! A window is the `lookback` values before a forecast origin (left-padded with the series' first
//! value when the series is shorter) and, for training, the `horizon` values after it. Each window
//! is divided by its own scale (the mean absolute value of its input part), so one model serves
//! keywords of every size; forecasts are multiplied back by the same scale.

use serde::{Deserialize, Serialize};

/// Shape of the windows a model was trained on (part of its manifest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSpec {
    /// Input length L.
    pub lookback: usize,
    /// Output length H.
    pub horizon: usize,
}

/// Dense, row-major windows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Windows {
    /// `n × lookback` scaled inputs.
    pub x: Vec<f32>,
    /// `n × horizon` scaled targets (empty for inference windows).
    pub y: Vec<f32>,
    /// Per-window scale (multiply model outputs by it).
    pub scale: Vec<f64>,
    /// `(series index, origin)` of each window: the first target is `series[origin]`.
    pub origin: Vec<(usize, usize)>,
}

impl Windows {
    /// Number of windows.
    pub fn len(&self) -> usize {
        self.scale.len()
    }

    /// True when there are no windows.
    pub fn is_empty(&self) -> bool {
        self.scale.is_empty()
    }
}

/// Scale of an input window: mean |value|, or 1 for an all-zero window.
pub fn window_scale(input: &[f64]) -> f64 {
    let n = input.len().max(1) as f64;
    let s = input.iter().map(|v| v.abs()).sum::<f64>() / n;
    if s > 1e-9 && s.is_finite() { s } else { 1.0 }
}

fn push_input(series: &[f64], origin: usize, lookback: usize, w: &mut Windows) -> f64 {
    let first = series.first().copied().unwrap_or(0.0);
    let start = origin as isize - lookback as isize;
    let input: Vec<f64> = (start..origin as isize)
        .map(|t| if t < 0 { first } else { series[t as usize] })
        .collect();
    let scale = window_scale(&input);
    w.x.extend(input.iter().map(|v| (v / scale) as f32));
    w.scale.push(scale);
    scale
}

/// Training windows: for each series, every origin among its last `max_per_series` whose targets lie
/// inside the series and that has at least `min_input` real values before it.
pub fn training_windows(
    series: &[&[f64]],
    spec: WindowSpec,
    max_per_series: usize,
    min_input: usize,
) -> Windows {
    let mut w = Windows::default();
    for (i, s) in series.iter().enumerate() {
        if s.len() < spec.horizon + min_input.max(1) {
            continue;
        }
        let last = s.len() - spec.horizon;
        let first = min_input
            .max(1)
            .max(last.saturating_sub(max_per_series.saturating_sub(1)));
        for origin in first..=last {
            let scale = push_input(s, origin, spec.lookback, &mut w);
            w.y.extend(
                s[origin..origin + spec.horizon]
                    .iter()
                    .map(|v| (v / scale) as f32),
            );
            w.origin.push((i, origin));
        }
    }
    w
}

/// Inference windows: one per series, ending at the series' last value.
pub fn input_windows(series: &[&[f64]], spec: WindowSpec) -> Windows {
    let mut w = Windows::default();
    for (i, s) in series.iter().enumerate() {
        push_input(s, s.len(), spec.lookback, &mut w);
        w.origin.push((i, s.len()));
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_round_trip_to_the_series() {
        let s: Vec<f64> = (1..=10).map(f64::from).collect();
        let spec = WindowSpec {
            lookback: 4,
            horizon: 2,
        };
        let w = training_windows(&[&s], spec, 100, 2);
        // origins 2..=8
        assert_eq!(w.len(), 7);
        for k in 0..w.len() {
            let (_, o) = w.origin[k];
            let sc = w.scale[k];
            for j in 0..4 {
                let t = o as isize - 4 + j as isize;
                let expect = if t < 0 { s[0] } else { s[t as usize] };
                assert!((f64::from(w.x[k * 4 + j]) * sc - expect).abs() < 1e-4);
            }
            for j in 0..2 {
                assert!((f64::from(w.y[k * 2 + j]) * sc - s[o + j]).abs() < 1e-4);
            }
        }
        let inf = input_windows(&[&s], spec);
        let back: Vec<f64> = inf.x.iter().map(|v| f64::from(*v) * inf.scale[0]).collect();
        for (a, b) in back.iter().zip([7.0, 8.0, 9.0, 10.0]) {
            assert!((a - b).abs() < 1e-4);
        }
    }

    #[test]
    fn max_per_series_keeps_the_most_recent_origins() {
        let s: Vec<f64> = (0..100).map(f64::from).collect();
        let w = training_windows(
            &[&s],
            WindowSpec {
                lookback: 8,
                horizon: 4,
            },
            5,
            8,
        );
        let origins: Vec<usize> = w.origin.iter().map(|o| o.1).collect();
        assert_eq!(origins, vec![92, 93, 94, 95, 96]);
    }
}
