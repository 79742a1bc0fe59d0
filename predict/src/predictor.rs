//! Forecasting with a trained model: the one prediction path, used by the server and by `kwi-train`
//! (evaluation, `forecast`), so what is measured is what is served.
//!
//! A [`Predictor`] holds a manifest (ensemble members and weights, interval calibration) and the
//! global members' parameters. Per-series members (naive, seasonal naive, Naive2, AutoETS) are
//! computed from each series' own history at prediction time; the global members (Candle MLP, Linfa
//! ridge) are loaded, never trained, here. Horizons beyond the trained one are produced recursively
//! (predictions fed back as inputs) and their interval radii keep widening with √step
//! ([`Conformal::radius`]).

use std::collections::BTreeMap;
use std::path::Path;

use kwi_features::Frequency;
use kwi_features::schema::window_schema_hash;
use kwi_features::series::Series;
use kwi_features::windows::{WindowSpec, input_windows};
use kwi_models::artifact::{self, Manifest};
use kwi_models::baselines::{naive, naive2, seasonal_naive};
use kwi_models::conformal::Conformal;
use kwi_models::ensemble::{Member, combine};
use kwi_models::linear::LinearModel;
use kwi_models::mlp::TrainedMlp;
use kwi_models::{Forecast, ModelError, ets};

/// Errors loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ForecastError {
    /// The model was trained on a different feature schema than this code produces.
    #[error(
        "model {version} was trained on feature schema {model_hash}, this build produces {code_hash}: retrain or run a matching build"
    )]
    SchemaMismatch {
        /// Model version.
        version: String,
        /// Hash in the manifest.
        model_hash: String,
        /// Hash of the running code.
        code_hash: String,
    },
    /// The model needs a member whose parameters are missing.
    #[error("model {0} uses member `{1}` but its parameters are missing")]
    MissingMember(String, Member),
    /// The model crate failed.
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// A loaded model, ready to forecast.
pub struct Predictor {
    /// The model's manifest.
    pub manifest: Manifest,
    mlp: Option<TrainedMlp>,
    linear: Option<LinearModel>,
}

impl Predictor {
    /// Wraps freshly trained parts (training) after checking that every member is available.
    pub fn from_parts(
        manifest: Manifest,
        mlp: Option<TrainedMlp>,
        linear: Option<LinearModel>,
    ) -> Result<Self, ForecastError> {
        let p = Self {
            manifest,
            mlp,
            linear,
        };
        for &m in &p.manifest.ensemble.members {
            p.check_member(m)?;
        }
        Ok(p)
    }

    /// Whether every member of the ensemble is light ([`Member::is_light`]): forecasting takes
    /// time linear in the series' lengths, microseconds for a few series.
    pub fn is_light(&self) -> bool {
        self.manifest.ensemble.members.iter().all(|m| m.is_light())
    }

    fn check_member(&self, m: Member) -> Result<(), ForecastError> {
        let missing = (m == Member::Mlp && self.mlp.is_none())
            || (m == Member::Linear && self.linear.is_none());
        if missing {
            return Err(ForecastError::MissingMember(
                self.manifest.version.clone(),
                m,
            ));
        }
        Ok(())
    }

    /// Loads an artifact folder written by `kwi-train fit`, refusing a feature-schema mismatch.
    pub fn load(dir: &Path) -> Result<Self, ForecastError> {
        let manifest = Manifest::load(dir)?;
        let code_hash = window_schema_hash();
        if manifest.feature_schema_hash != code_hash {
            return Err(ForecastError::SchemaMismatch {
                version: manifest.version.clone(),
                model_hash: manifest.feature_schema_hash.clone(),
                code_hash,
            });
        }
        let uses = |m: Member| manifest.ensemble.members.contains(&m);
        let mlp = if uses(Member::Mlp) {
            Some(TrainedMlp::load(
                &dir.join("mlp.safetensors"),
                &manifest.mlp,
            )?)
        } else {
            None
        };
        let linear = if uses(Member::Linear) {
            Some(artifact::load_linear(dir)?)
        } else {
            None
        };
        Self::from_parts(manifest, mlp, linear)
    }

    /// Writes the artifact folder (manifest, weights, coefficients).
    pub fn save(&self, dir: &Path) -> Result<(), ForecastError> {
        self.manifest.save(dir)?;
        if let Some(m) = &self.mlp {
            m.save(&dir.join("mlp.safetensors"))?;
        }
        if let Some(l) = &self.linear {
            artifact::save_linear(dir, l)?;
        }
        Ok(())
    }

    /// The built-in baseline served until a trained model is published: seasonal naive (season
    /// `season`), its intervals calibrated on the last `horizon` periods of the given series (the
    /// store's data at start-up). Version `builtin-snaive-v1`.
    pub fn baseline(series: &[&[f64]], season: usize, horizon: usize) -> Self {
        let eligible: Vec<&[f64]> = series
            .iter()
            .copied()
            .filter(|s| s.len() > horizon + 2)
            .collect();
        let history: Vec<&[f64]> = eligible.iter().map(|s| &s[..s.len() - horizon]).collect();
        let actual: Vec<&[f64]> = eligible.iter().map(|s| &s[s.len() - horizon..]).collect();
        let fc: Vec<Vec<f64>> = history
            .iter()
            .map(|s| seasonal_naive(s, horizon, season))
            .collect();
        let conformal = Conformal::calibrate(&history, &actual, &fc, &Conformal::level_grid());
        let cfg = kwi_models::mlp::MlpConfig::default();
        let manifest = Manifest {
            name: "builtin-snaive".into(),
            version: "builtin-snaive-v1".into(),
            kind: artifact::ModelKind::Forecaster,
            feature_schema_hash: window_schema_hash(),
            created_at: String::new(),
            season,
            lookback: cfg.lookback,
            horizon,
            mlp: cfg,
            linear: Default::default(),
            ensemble: kwi_models::ensemble::Selection {
                members: vec![Member::SNaive],
                weights: vec![1.0],
                validation: Default::default(),
                candidates: Vec::new(),
                criterion: Default::default(),
            },
            conformal,
            training_data: serde_json::json!({ "series": eligible.len() }),
            metrics: serde_json::json!({ "note": "built-in seasonal-naive baseline; publish a model with kwi-train for better accuracy" }),
        };
        Self {
            manifest,
            mlp: None,
            linear: None,
        }
    }

    /// Takes the predictor apart: manifest, MLP, linear model.
    pub fn into_parts(self) -> (Manifest, Option<TrainedMlp>, Option<LinearModel>) {
        (self.manifest, self.mlp, self.linear)
    }

    /// Point forecasts of one member for every series.
    pub fn member(
        &self,
        member: Member,
        series: &[&[f64]],
        h: usize,
    ) -> Result<Vec<Vec<f64>>, ForecastError> {
        let m = self.manifest.season;
        self.check_member(member)?;
        Ok(match member {
            Member::Naive => series.iter().map(|s| naive(s, h)).collect(),
            Member::SNaive => series.iter().map(|s| seasonal_naive(s, h, m)).collect(),
            Member::Naive2 => series.iter().map(|s| naive2(s, h, 1)).collect(),
            Member::Ets => ets::auto_ets(series, h),
            Member::Mlp => {
                let mlp = self.mlp.as_ref().expect("checked");
                recursive(
                    series,
                    h,
                    self.manifest.lookback,
                    self.manifest.horizon,
                    |x, n| mlp.predict(x, n),
                )?
            }
            Member::Linear => {
                let lin = self.linear.as_ref().expect("checked");
                recursive(
                    series,
                    h,
                    self.manifest.lookback,
                    self.manifest.horizon,
                    |x, n| lin.predict(x, n),
                )?
            }
        })
    }

    /// Ensemble point forecasts (before intervals).
    pub fn ensemble_means(
        &self,
        series: &[&[f64]],
        h: usize,
    ) -> Result<Vec<Vec<f64>>, ForecastError> {
        let mut members = BTreeMap::new();
        for &m in &self.manifest.ensemble.members {
            members.insert(m, self.member(m, series, h)?);
        }
        let w = &self.manifest.ensemble.weights;
        let means = (0..series.len())
            .map(|i| {
                let ms: Vec<&[f64]> = self
                    .manifest
                    .ensemble
                    .members
                    .iter()
                    .map(|n| members[n][i].as_slice())
                    .collect();
                combine(&ms, w)
            })
            .collect();
        Ok(means)
    }

    /// Forecasts `h` steps for every series with intervals at `levels` (percent).
    pub fn forecast(
        &self,
        series: &[&[f64]],
        h: usize,
        levels: &[f64],
    ) -> Result<Vec<Forecast>, ForecastError> {
        let means = self.ensemble_means(series, h)?;
        let conformal = &self.manifest.conformal;
        Ok(series
            .iter()
            .zip(means)
            .map(|(s, m)| conformal.apply(s, m, levels))
            .collect())
    }

    /// The frequency the model was trained on (`training_data.freq`; weekly for manifests that
    /// predate the field, and for the built-in baseline calibrated on the store's weekly series).
    pub fn frequency(&self) -> Frequency {
        self.manifest
            .training_data
            .get("freq")
            .and_then(|f| f.as_str())
            .and_then(|f| f.parse().ok())
            .unwrap_or(Frequency::Weekly)
    }

    /// The built-in seasonal-naive baseline for data at `freq` (season 7, 52 or 12), intervals
    /// calibrated on `series`; version `builtin-snaive-{freq}`.
    pub fn baseline_for(freq: Frequency, series: &[&[f64]], horizon: usize) -> Self {
        let mut p = Self::baseline(series, freq.season(), horizon);
        p.manifest.version = format!("builtin-snaive-{freq}");
        p.manifest.training_data["freq"] = serde_json::json!(freq);
        p
    }

    /// Forecasts series of any frequency: those at the model's own frequency with the model (one
    /// call), each other one with the baseline of its frequency calibrated on that series alone, so
    /// the answer depends on the series only (a cached forecast never changes). Each forecast
    /// comes with the version that made it.
    pub fn forecast_any(
        &self,
        series: &[&Series],
        h: usize,
        levels: &[f64],
    ) -> Result<Vec<(Forecast, String)>, ForecastError> {
        let own = self.frequency();
        let mine: Vec<&[f64]> = series
            .iter()
            .filter(|s| s.freq == own)
            .map(|s| s.values.as_slice())
            .collect();
        let mut ours = self.forecast(&mine, h, levels)?.into_iter();
        series
            .iter()
            .map(|s| {
                if s.freq == own {
                    let f = ours
                        .next()
                        .expect("one forecast per series of the model's frequency");
                    Ok((f, self.manifest.version.clone()))
                } else {
                    let values = [s.values.as_slice()];
                    let b = Self::baseline_for(s.freq, &values, h.min(s.freq.season()));
                    let mut f = b.forecast(&values, h, levels)?;
                    Ok((f.remove(0), b.manifest.version))
                }
            })
            .collect()
    }
}

/// Runs a window model H steps at a time, feeding its own predictions back, until `h` steps exist.
fn recursive(
    series: &[&[f64]],
    h: usize,
    lookback: usize,
    horizon: usize,
    predict: impl Fn(&[f32], usize) -> Result<Vec<f32>, ModelError>,
) -> Result<Vec<Vec<f64>>, ForecastError> {
    let spec = WindowSpec { lookback, horizon };
    let mut extended: Vec<Vec<f64>> = series.iter().map(|s| s.to_vec()).collect();
    let mut produced = 0;
    while produced < h {
        let refs: Vec<&[f64]> = extended.iter().map(Vec::as_slice).collect();
        let w = input_windows(&refs, spec);
        let out = predict(&w.x, w.len())?;
        for (i, s) in extended.iter_mut().enumerate() {
            for k in 0..horizon {
                s.push((f64::from(out[i * horizon + k]) * w.scale[i]).max(0.0));
            }
        }
        produced += horizon;
    }
    Ok(extended
        .iter()
        .zip(series)
        .map(|(e, s)| e[s.len()..s.len() + h].to_vec())
        .collect())
}
