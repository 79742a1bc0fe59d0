//! The model registry's view from the prediction path: which forecaster to serve, loaded from its
//! artifact, with the built-in baseline when none is active or it cannot be loaded.

use std::path::PathBuf;

use kwi_features::Frequency;
use kwi_features::series::regularise_each;
use kwi_store::{ModelKind, ModelRecord, Store};

use crate::{ForecastError, Predictor};

/// Most stored observations read to calibrate the built-in baseline's intervals (so a large store
/// does not slow start-up; a sample calibrates as well as everything).
pub const BASELINE_CALIBRATION_ROWS: i64 = 200_000;

/// Errors finding or loading a model.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry (store) could not be read.
    #[error(transparent)]
    Store(#[from] kwi_store::StoreError),
    /// The artifact could not be loaded.
    #[error(transparent)]
    Load(#[from] ForecastError),
    /// A blocking task ended abnormally.
    #[error("model loading task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The registry's active forecaster, if any.
pub async fn active_forecaster(store: &dyn Store) -> Result<Option<ModelRecord>, RegistryError> {
    Ok(store
        .models()
        .await?
        .into_iter()
        .find(|m| m.active && m.kind == ModelKind::Forecaster))
}

/// Loads a registered model's artifact (on the blocking pool: it reads files and builds tensors).
pub async fn load(record: &ModelRecord) -> Result<Predictor, RegistryError> {
    let dir = PathBuf::from(&record.artifact);
    Ok(tokio::task::spawn_blocking(move || Predictor::load(&dir)).await??)
}

/// Loads the active forecaster from the registry, or the built-in baseline calibrated on `store`'s
/// data when none is active (or it cannot be loaded, which is logged).
pub async fn load_active_model(store: &dyn Store) -> Result<Predictor, RegistryError> {
    if let Some(m) = active_forecaster(store).await? {
        match load(&m).await {
            Ok(p) => return Ok(p),
            Err(e) => {
                tracing::error!(version = %m.version, error = %e, "active model cannot be loaded; serving the built-in baseline")
            }
        }
    }
    let rows = store
        .observations(None, Some(BASELINE_CALIBRATION_ROWS))
        .await?;
    Ok(tokio::task::spawn_blocking(move || {
        // The baseline is weekly: it is calibrated on the weekly keywords (keywords of other
        // frequencies get their own baseline per series, `Predictor::forecast_any`).
        let series = regularise_each(&rows);
        let refs: Vec<&[f64]> = series
            .iter()
            .filter(|s| s.freq == Frequency::Weekly)
            .map(|s| s.values.as_slice())
            .take(5000)
            .collect();
        Predictor::baseline(&refs, 52, 13)
    })
    .await?)
}
