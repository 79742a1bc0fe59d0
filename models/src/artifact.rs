//! Artifacts on disk: one folder per model version holding `manifest.json`, the Candle weights
//! (`mlp.safetensors`) and the Linfa coefficients (`linear.json`). The manifest names the feature
//! schema (its hash) the model was trained on, so a server refuses a model built on other features.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::conformal::Conformal;
use crate::ensemble::Selection;
use crate::error::{ModelError, Result};
use crate::linear::{LinearConfig, LinearModel};
use crate::mlp::MlpConfig;

/// What a registered model does: forecast search volume, or score competition. One active model
/// of each kind at a time; stored by its lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// A search-volume forecaster (`Manifest`).
    Forecaster,
    /// A competition scorer (`CompetitionManifest`).
    Competition,
}

impl ModelKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Forecaster => "forecaster",
            ModelKind::Competition => "competition",
        }
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ModelKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "forecaster" => Ok(ModelKind::Forecaster),
            "competition" => Ok(ModelKind::Competition),
            other => Err(format!(
                "unknown model kind `{other}`; expected forecaster or competition"
            )),
        }
    }
}

/// Everything needed to reproduce and trust a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Model family name.
    pub name: String,
    /// Unique version (e.g. `fc-20261124-120501-42`).
    pub version: String,
    /// What the model does (always [`ModelKind::Forecaster`] here).
    pub kind: ModelKind,
    /// Hash of the feature schema the model consumes.
    pub feature_schema_hash: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// Seasonal period in observations (52 for weekly).
    pub season: usize,
    /// Input window length.
    pub lookback: usize,
    /// Forecast horizon the model was trained for.
    pub horizon: usize,
    /// Neural member hyperparameters.
    pub mlp: MlpConfig,
    /// Linear member hyperparameters.
    pub linear: LinearConfig,
    /// Ensemble chosen on validation.
    pub ensemble: Selection,
    /// Interval calibration.
    pub conformal: Conformal,
    /// Training data: series count, first and last period (free-form strings).
    pub training_data: serde_json::Value,
    /// Backtest / evaluation metrics (free-form, e.g. `{"validation": {...}, "test": {...}}`).
    pub metrics: serde_json::Value,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> ModelError {
    ModelError::Artifact {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

impl Manifest {
    /// Writes `manifest.json` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let p = dir.join("manifest.json");
        let json = serde_json::to_vec_pretty(self).map_err(|e| io_err(&p, e))?;
        std::fs::write(&p, json).map_err(|e| io_err(&p, e))
    }

    /// Reads `manifest.json` from `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let p = dir.join("manifest.json");
        let bytes = std::fs::read(&p).map_err(|e| io_err(&p, e))?;
        serde_json::from_slice(&bytes).map_err(|e| io_err(&p, e))
    }
}

/// Writes the linear member's coefficients.
pub fn save_linear(dir: &Path, model: &LinearModel) -> Result<()> {
    let p = dir.join("linear.json");
    let json = serde_json::to_vec(model).map_err(|e| io_err(&p, e))?;
    std::fs::write(&p, json).map_err(|e| io_err(&p, e))
}

/// Reads the linear member's coefficients.
pub fn load_linear(dir: &Path) -> Result<LinearModel> {
    let p = dir.join("linear.json");
    let bytes = std::fs::read(&p).map_err(|e| io_err(&p, e))?;
    serde_json::from_slice(&bytes).map_err(|e| io_err(&p, e))
}

/// Manifest of a competition model (`manifest.json`, `kind = "competition"`), next to
/// `competition.json` (the [`CompetitionModel`](crate::competition::CompetitionModel)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompetitionManifest {
    /// Model family name.
    pub name: String,
    /// Unique version (e.g. `comp-20261124-120501-42`).
    pub version: String,
    /// Always [`ModelKind::Competition`].
    pub kind: ModelKind,
    /// Hash of the competition feature schema.
    pub feature_schema_hash: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// Hyperparameters (split seed included).
    pub params: crate::competition::CompetitionParams,
    /// What the label is and where the data came from; `synthetic` says whether any of it was generated.
    pub training_data: serde_json::Value,
    /// Held-out evaluation (Spearman, band calibration).
    pub metrics: serde_json::Value,
}

/// Writes a competition artifact (manifest + model) into `dir`.
pub fn save_competition(
    dir: &Path,
    manifest: &CompetitionManifest,
    model: &crate::competition::CompetitionModel,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    for (name, json) in [
        ("manifest.json", serde_json::to_vec_pretty(manifest)),
        ("competition.json", serde_json::to_vec_pretty(model)),
    ] {
        let p = dir.join(name);
        let json = json.map_err(|e| io_err(&p, e))?;
        std::fs::write(&p, json).map_err(|e| io_err(&p, e))?;
    }
    Ok(())
}

/// Reads a competition artifact, refusing one whose kind or factors do not match this build.
pub fn load_competition(
    dir: &Path,
) -> Result<(CompetitionManifest, crate::competition::CompetitionModel)> {
    let read = |name: &str| {
        let p = dir.join(name);
        std::fs::read(&p).map_err(|e| io_err(&p, e)).map(|b| (p, b))
    };
    let (p, bytes) = read("manifest.json")?;
    let manifest: CompetitionManifest =
        serde_json::from_slice(&bytes).map_err(|e| io_err(&p, e))?;
    if manifest.kind != ModelKind::Competition {
        return Err(io_err(
            &p,
            format!("kind is `{}`, not `competition`", manifest.kind),
        ));
    }
    let (p, bytes) = read("competition.json")?;
    let model: crate::competition::CompetitionModel =
        serde_json::from_slice(&bytes).map_err(|e| io_err(&p, e))?;
    model.check().map_err(|e| io_err(&p, e))?;
    Ok((manifest, model))
}
