//! Ensemble selection: every combination of up to `max_members` candidate models, averaged with
//! equal weights, is scored on a validation window (never the test set) and the best OWA wins.

use serde::{Deserialize, Serialize};

use crate::metrics::{Accuracy, accuracy};

/// The chosen combination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// Member names.
    pub members: Vec<String>,
    /// Weights, summing to 1.
    pub weights: Vec<f64>,
    /// Validation accuracy of the combination.
    pub validation: Accuracy,
    /// Validation accuracy of every candidate model alone, by name.
    pub candidates: Vec<(String, Accuracy)>,
}

/// Weighted average of member forecasts for one series.
pub fn combine(members: &[&[f64]], weights: &[f64]) -> Vec<f64> {
    let h = members.first().map_or(0, |m| m.len());
    (0..h)
        .map(|k| members.iter().zip(weights).map(|(m, w)| m[k] * w).sum())
        .collect()
}

/// Picks the best equal-weight combination of the named candidates' validation forecasts.
/// `reference` (Naive2's validation forecasts) defines OWA; `m` is the MASE seasonal lag.
pub fn select(
    candidates: &[(String, Vec<Vec<f64>>)],
    reference: &[Vec<f64>],
    history: &[&[f64]],
    actual: &[&[f64]],
    m: usize,
    max_members: usize,
) -> Selection {
    let base = accuracy(history, actual, reference, m);
    let alone: Vec<(String, Accuracy)> = candidates
        .iter()
        .map(|(name, f)| (name.clone(), accuracy(history, actual, f, m).with_owa(&base)))
        .collect();
    let k = candidates.len();
    let mut best: Option<(f64, Vec<usize>, Accuracy)> = None;
    for mask in 1u32..(1u32 << k) {
        let idx: Vec<usize> = (0..k).filter(|i| mask & (1 << i) != 0).collect();
        if idx.len() > max_members.max(1) {
            continue;
        }
        let w = vec![1.0 / idx.len() as f64; idx.len()];
        let combo: Vec<Vec<f64>> = (0..actual.len())
            .map(|s| {
                let ms: Vec<&[f64]> = idx.iter().map(|&i| candidates[i].1[s].as_slice()).collect();
                combine(&ms, &w)
            })
            .collect();
        let acc = accuracy(history, actual, &combo, m).with_owa(&base);
        let score = acc.owa.unwrap_or(acc.mase);
        if best.as_ref().is_none_or(|(b, _, _)| score < *b - 1e-12) {
            best = Some((score, idx, acc));
        }
    }
    let (_, idx, validation) = best.unwrap_or((f64::NAN, Vec::new(), Accuracy::default()));
    let n = idx.len().max(1) as f64;
    Selection {
        members: idx.iter().map(|&i| candidates[i].0.clone()).collect(),
        weights: vec![1.0 / n; idx.len()],
        validation,
        candidates: alone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_combination_that_cancels_errors() {
        let hist = [1.0, 2.0, 3.0];
        let history: Vec<&[f64]> = vec![&hist; 2];
        let act = [10.0, 10.0];
        let actual: Vec<&[f64]> = vec![&act; 2];
        let over = vec![vec![12.0, 12.0]; 2];
        let under = vec![vec![8.0, 8.0]; 2];
        let bad = vec![vec![30.0, 30.0]; 2];
        let naive2 = vec![vec![3.0, 3.0]; 2];
        let cands = vec![("over".to_string(), over), ("under".to_string(), under), ("bad".to_string(), bad)];
        let s = select(&cands, &naive2, &history, &actual, 1, 2);
        assert_eq!(s.members, vec!["over", "under"]);
        assert_eq!(s.weights, vec![0.5, 0.5]);
        assert_eq!(s.validation.mase, 0.0);
        assert_eq!(s.candidates.len(), 3);
    }
}
