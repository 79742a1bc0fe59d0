//! Ensemble selection: every combination of up to `max_members` candidate models, averaged with
//! equal weights, is scored on a validation window (never the test set) and the best score wins.
//!
//! The score is OWA (M4: half sMAPE, half MASE, each relative to Naive2), or MASE alone when the
//! validation actuals contain zeros ([`Criterion::Auto`]): an sMAPE term at a zero actual is 200 %
//! whatever the forecast (unless it is exactly 0 too), so on series with zeros sMAPE, and OWA with
//! it, mostly counts how often a forecast is not exactly zero instead of how far off it is
//! (Hyndman & Koehler 2006 recommend MASE for such series).

use serde::{Deserialize, Serialize};

use crate::metrics::{Accuracy, accuracy};

/// What the ensemble choice minimises on the validation windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Criterion {
    /// MASE when any validation actual is 0, OWA otherwise.
    #[default]
    Auto,
    /// OWA against Naive2 (the M4 measure).
    Owa,
    /// MASE alone.
    Mase,
}

impl Criterion {
    /// The criterion in force for these validation actuals (`Auto` resolved).
    pub fn resolve(self, actual: &[&[f64]]) -> Criterion {
        match self {
            Criterion::Auto if actual.iter().any(|a| a.contains(&0.0)) => Criterion::Mase,
            Criterion::Auto => Criterion::Owa,
            c => c,
        }
    }

    /// The criterion of manifests written before it was recorded (they were chosen by OWA).
    fn recorded_before() -> Criterion {
        Criterion::Owa
    }
}

impl std::str::FromStr for Criterion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Criterion::Auto),
            "owa" => Ok(Criterion::Owa),
            "mase" => Ok(Criterion::Mase),
            other => Err(format!(
                "unknown selection criterion `{other}`: expected auto, owa or mase"
            )),
        }
    }
}

/// As reports print it (`OWA`, `MASE`); the TOML key and the flag take any case.
impl std::fmt::Display for Criterion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Criterion::Auto => "AUTO",
            Criterion::Owa => "OWA",
            Criterion::Mase => "MASE",
        })
    }
}

/// An ensemble member: a forecasting method the ensemble may combine. Stored in manifests and
/// configs by its lowercase name (`naive`, `snaive`, `naive2`, `ets`, `mlp`, `linear`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Member {
    /// Last value.
    Naive,
    /// Value one season back.
    SNaive,
    /// Naive on the seasonally adjusted series (M4's benchmark; naive when not seasonal).
    Naive2,
    /// AutoETS (augurs).
    Ets,
    /// The global Candle MLP.
    Mlp,
    /// The global Linfa ridge on lag windows.
    Linear,
}

impl Member {
    /// Every member, in a stable order.
    pub const ALL: [Member; 6] = [
        Member::Naive,
        Member::SNaive,
        Member::Naive2,
        Member::Ets,
        Member::Mlp,
        Member::Linear,
    ];

    /// Its name in manifests, configs and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Member::Naive => "naive",
            Member::SNaive => "snaive",
            Member::Naive2 => "naive2",
            Member::Ets => "ets",
            Member::Mlp => "mlp",
            Member::Linear => "linear",
        }
    }

    /// A few passes over the series' own values: no fitting, no network.
    pub fn is_light(self) -> bool {
        matches!(self, Member::Naive | Member::SNaive | Member::Naive2)
    }

    /// A global member, fitted across series and loaded from the artifact.
    pub fn is_global(self) -> bool {
        matches!(self, Member::Mlp | Member::Linear)
    }
}

impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Member {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let t = s.trim();
        Member::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(t))
            .ok_or_else(|| {
                let names: Vec<&str> = Member::ALL.iter().map(|m| m.as_str()).collect();
                format!("unknown member `{t}`; expected one of {}", names.join(", "))
            })
    }
}

/// Member names joined for reports (`snaive + ets + mlp`).
pub fn joined(members: &[Member]) -> String {
    let names: Vec<&str> = members.iter().map(|m| m.as_str()).collect();
    names.join(" + ")
}

/// The chosen combination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// Members combined.
    pub members: Vec<Member>,
    /// Weights, summing to 1.
    pub weights: Vec<f64>,
    /// Validation accuracy of the combination.
    pub validation: Accuracy,
    /// Validation accuracy of every candidate model alone.
    pub candidates: Vec<(Member, Accuracy)>,
    /// What the choice minimised (`Auto` already resolved).
    #[serde(default = "Criterion::recorded_before")]
    pub criterion: Criterion,
}

/// Weighted average of member forecasts for one series.
pub fn combine(members: &[&[f64]], weights: &[f64]) -> Vec<f64> {
    let h = members.first().map_or(0, |m| m.len());
    (0..h)
        .map(|k| members.iter().zip(weights).map(|(m, w)| m[k] * w).sum())
        .collect()
}

/// Picks the best equal-weight combination of the named candidates' validation forecasts by
/// `criterion` (resolved against `actual`). `reference` (Naive2's validation forecasts) defines
/// OWA; `m` is the MASE seasonal lag.
pub fn select(
    candidates: &[(Member, Vec<Vec<f64>>)],
    reference: &[Vec<f64>],
    history: &[&[f64]],
    actual: &[&[f64]],
    m: usize,
    max_members: usize,
    criterion: Criterion,
) -> Selection {
    let criterion = criterion.resolve(actual);
    let base = accuracy(history, actual, reference, m);
    let alone: Vec<(Member, Accuracy)> = candidates
        .iter()
        .map(|(name, f)| (*name, accuracy(history, actual, f, m).with_owa(&base)))
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
        let score = match criterion {
            Criterion::Mase => acc.mase,
            _ => acc.owa.unwrap_or(acc.mase),
        };
        if best.as_ref().is_none_or(|(b, _, _)| score < *b - 1e-12) {
            best = Some((score, idx, acc));
        }
    }
    let (_, idx, validation) = best.unwrap_or((f64::NAN, Vec::new(), Accuracy::default()));
    let n = idx.len().max(1) as f64;
    Selection {
        members: idx.iter().map(|&i| candidates[i].0).collect(),
        weights: vec![1.0 / n; idx.len()],
        validation,
        candidates: alone,
        criterion,
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
        let cands = vec![
            (Member::Naive, over),
            (Member::SNaive, under),
            (Member::Ets, bad),
        ];
        let s = select(&cands, &naive2, &history, &actual, 1, 2, Criterion::Auto);
        assert_eq!(s.criterion, Criterion::Owa);
        assert_eq!(s.members, vec![Member::Naive, Member::SNaive]);
        assert_eq!(s.weights, vec![0.5, 0.5]);
        assert_eq!(s.validation.mase, 0.0);
        assert_eq!(s.candidates.len(), 3);
    }

    /// Actuals with zeros: OWA prefers a forecast that is exactly zero at the zero step (sMAPE 0
    /// there instead of 200) although it misses the other steps by 3 (OWA 0.332 against 0.351);
    /// MASE, which `Auto` picks for such data, prefers the forecast that is off by 0.5 once.
    #[test]
    fn zeros_in_the_actuals_choose_by_mase() {
        let hist = [4.0, 6.0, 4.0, 6.0];
        let history: Vec<&[f64]> = vec![&hist];
        let act = [0.0, 10.0, 10.0];
        let actual: Vec<&[f64]> = vec![&act];
        let zero_hugger = vec![vec![0.0, 7.0, 7.0]];
        let close = vec![vec![0.5, 10.0, 10.0]];
        let naive2 = vec![vec![6.0, 6.0, 6.0]];
        // Naive stands for the zero hugger, Ets for the close one (names only label here).
        let cands = vec![(Member::Naive, zero_hugger), (Member::Ets, close)];
        let check = |c: Criterion, resolved: Criterion, winner: Member| {
            let s = select(&cands, &naive2, &history, &actual, 1, 1, c);
            assert_eq!((s.criterion, s.members[0]), (resolved, winner));
        };
        check(Criterion::Owa, Criterion::Owa, Member::Naive);
        check(Criterion::Mase, Criterion::Mase, Member::Ets);
        check(Criterion::Auto, Criterion::Mase, Member::Ets);
        assert_eq!("MASE".parse::<Criterion>(), Ok(Criterion::Mase));
        assert!(
            "mape"
                .parse::<Criterion>()
                .unwrap_err()
                .contains("auto, owa or mase")
        );
    }

    #[test]
    fn members_keep_their_manifest_names() {
        for m in Member::ALL {
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(json, format!("\"{}\"", m.as_str()));
            assert_eq!(serde_json::from_str::<Member>(&json).unwrap(), m);
            assert_eq!(m.as_str().parse::<Member>(), Ok(m));
        }
        assert_eq!(" SNaive ".parse::<Member>(), Ok(Member::SNaive));
        assert!(
            "arima"
                .parse::<Member>()
                .unwrap_err()
                .contains("naive, snaive")
        );
        assert_eq!(joined(&[Member::SNaive, Member::Ets]), "snaive + ets");
    }
}
