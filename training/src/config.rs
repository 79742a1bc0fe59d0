//! Training configuration: a TOML file with documented defaults, overridable by flags.
//!
//! | Name | Default | Purpose | Range |
//! | --- | --- | --- | --- |
//! | `horizon` | 13 (12 for `--freq monthly`) | steps to forecast (and to hold out for validation) | 1..=104 |
//! | `season` | 52 (7 for `--freq daily`, 12 for `--freq monthly`) | seasonal period (weekly data: a year; daily: the day of week; monthly: a year) for seasonal naive | 1..=400 |
//! | `metric_season` | 1 (12 for `--freq monthly`, as M4 Monthly) | MASE lag m and Naive2's season (M4 Weekly uses 1) | 1..=400 |
//! | `levels` | [80, 95] | interval levels, percent | (0, 100) |
//! | `max_windows_per_series` | 260 | most recent training windows taken per series | 1..=100000 |
//! | `validation_windows` | 1 | consecutive held-out windows used to choose the ensemble and calibrate intervals | 1..=10 |
//! | `max_members` | 3 | most members in the ensemble | 1..=6 |
//! | `selection` | auto | what the ensemble choice minimises on validation: `owa`, `mase`, or `auto` (MASE when a validation actual is 0, where sMAPE is 200 % whatever the forecast; OWA otherwise) | auto, owa, mase |
//! | `candidates` | all six | members the ensemble may choose from | see `kwi_models::ensemble::Member` |
//! | `mlp.*` | see `kwi_models::mlp` | neural member | |
//! | `linear.*` | see `kwi_models::linear` | linear member | |
//!
//! `mlp.lookback` is the input window of both global members (104 periods; 36 for `--freq monthly`,
//! three years, so short monthly histories still give training windows).
//!
//! The frequency's defaults apply only where neither the file nor a flag sets the value.

use std::path::Path;

use anyhow::{Context, bail};
use kwi_models::ensemble::{Criterion, Member};
use kwi_models::linear::LinearConfig;
use kwi_models::mlp::MlpConfig;
use serde::{Deserialize, Serialize};

/// Everything `kwi-train` needs to fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Forecast horizon H.
    pub horizon: usize,
    /// Seasonal period for seasonal naive.
    pub season: usize,
    /// MASE lag and Naive2 season.
    pub metric_season: usize,
    /// Interval levels in percent.
    pub levels: Vec<f64>,
    /// Most recent windows per series for the global members.
    pub max_windows_per_series: usize,
    /// Consecutive validation windows at the end of the training data.
    pub validation_windows: usize,
    /// Largest ensemble.
    pub max_members: usize,
    /// What the ensemble choice minimises.
    pub selection: Criterion,
    /// Members the ensemble may use.
    pub candidates: Vec<Member>,
    /// Neural member.
    pub mlp: MlpConfig,
    /// Linear member.
    pub linear: LinearConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            horizon: 13,
            season: 52,
            metric_season: 1,
            levels: vec![80.0, 95.0],
            max_windows_per_series: 260,
            validation_windows: 1,
            max_members: 3,
            selection: Criterion::Auto,
            candidates: Member::ALL.to_vec(),
            mlp: MlpConfig::default(),
            linear: LinearConfig::default(),
        }
    }
}

impl TrainConfig {
    /// Reads a TOML config (missing keys take their defaults; unknown keys are an error) and
    /// whether it sets `season` itself.
    pub fn from_file(path: &Path) -> anyhow::Result<(Self, toml::Table)> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        let cfg: Self =
            toml::from_str(&text).with_context(|| format!("invalid config {}", path.display()))?;
        let table: toml::Table = toml::from_str(&text)?;
        Ok((cfg, table))
    }

    /// Applies the defaults of data at `freq` (see the table above) to every value `set` (the
    /// TOML file's table) leaves unset.
    pub fn for_frequency(&mut self, freq: kwi_features::Frequency, set: &toml::Table) {
        use kwi_features::Frequency;
        let unset = |k: &str| !set.contains_key(k);
        let lookback_unset = set
            .get("mlp")
            .and_then(|m| m.as_table())
            .is_none_or(|m| !m.contains_key("lookback"));
        match freq {
            Frequency::Weekly => {}
            Frequency::Daily => {
                if unset("season") {
                    self.season = 7;
                }
            }
            Frequency::Monthly => {
                if unset("season") {
                    self.season = 12;
                }
                if unset("horizon") {
                    self.horizon = 12;
                }
                if unset("metric_season") {
                    self.metric_season = 12;
                }
                if lookback_unset {
                    self.mlp.lookback = 36;
                }
            }
        }
    }

    /// Checks every field; the model configs check their own.
    pub fn check(&mut self) -> anyhow::Result<()> {
        kwi_features::Horizon::new(self.horizon).map_err(|e| anyhow::anyhow!("horizon: {e}"))?;
        if !(1..=400).contains(&self.season) || !(1..=400).contains(&self.metric_season) {
            bail!("season and metric_season must be in 1..=400");
        }
        if let Some(l) = self.levels.iter().find(|l| !(**l > 0.0 && **l < 100.0)) {
            bail!("interval level {l} is outside (0, 100)");
        }
        if !(1..=100_000).contains(&self.max_windows_per_series) {
            bail!("max_windows_per_series must be in 1..=100000");
        }
        if !(1..=10).contains(&self.validation_windows) {
            bail!("validation_windows must be in 1..=10");
        }
        if !(1..=6).contains(&self.max_members) {
            bail!("max_members must be in 1..=6");
        }
        if self.candidates.is_empty() {
            bail!("candidates is empty");
        }
        self.mlp.horizon = self.horizon;
        self.mlp.check()?;
        self.linear.check()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_defaults_and_rejects_unknown_keys() {
        let c: TrainConfig = toml::from_str("horizon = 8\n[mlp]\nsteps = 10\n").unwrap();
        assert_eq!((c.horizon, c.mlp.steps, c.mlp.hidden), (8, 10, 256));
        assert!(toml::from_str::<TrainConfig>("horizn = 8").is_err());
        let mut bad = TrainConfig {
            horizon: 0,
            ..TrainConfig::default()
        };
        assert!(bad.check().unwrap_err().to_string().contains("horizon"));
        let mut ok = TrainConfig {
            horizon: 6,
            ..TrainConfig::default()
        };
        ok.check().unwrap();
        assert_eq!(ok.mlp.horizon, 6);
    }
}
