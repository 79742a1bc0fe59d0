//! Global neural forecaster in Candle: an MLP over scaled input windows with a naive skip connection
//! (the output is the last scaled input plus the network's correction, as in N-BEATS' residual
//! idea), trained on windows from all series at once with an MAE loss and AdamW.
//!
//! Determinism: candle 0.11 cannot seed its CPU RNG, so every variable is overwritten from a seeded
//! `StdRng` in sorted-name order after construction, and batches are drawn from another seeded RNG.
//! Same seed + same windows → same weights and the same loss curve.
//!
//! | Name | Default | Purpose | Range |
//! | --- | --- | --- | --- |
//! | `lookback` | 104 | input window length L | 1..=1024 |
//! | `horizon` | 13 | output steps H | 1..=104 |
//! | `hidden` | 256 | width of each hidden layer | 8..=4096 |
//! | `layers` | 3 | hidden layers | 1..=8 |
//! | `learning_rate` | 1e-3 | AdamW step size, decayed linearly to 10 % | (0, 1) |
//! | `weight_decay` | 1e-4 | AdamW decoupled weight decay | [0, 1) |
//! | `steps` | 1500 | optimiser steps | 1..=1_000_000 |
//! | `batch_size` | 512 | windows per step | 1..=65536 |
//! | `seed` | 42 | initialisation and batch order | any |

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Linear, Module, Optimizer, ParamsAdamW, VarBuilder, VarMap, linear};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Hyperparameters (see the module table). Build with [`MlpConfig::default`], adjust, then
/// [`MlpConfig::check`] before training; an invalid configuration never reaches [`train`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MlpConfig {
    /// Input window length L.
    pub lookback: usize,
    /// Output steps H.
    pub horizon: usize,
    /// Hidden layer width.
    pub hidden: usize,
    /// Number of hidden layers.
    pub layers: usize,
    /// AdamW learning rate (decayed linearly to 10 %).
    pub learning_rate: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Optimiser steps.
    pub steps: usize,
    /// Windows per step.
    pub batch_size: usize,
    /// Seed for initialisation and batch order.
    pub seed: u64,
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self {
            lookback: 104,
            horizon: 13,
            hidden: 256,
            layers: 3,
            learning_rate: 1e-3,
            weight_decay: 1e-4,
            steps: 1500,
            batch_size: 512,
            seed: 42,
        }
    }
}

fn param(name: &'static str, ok: bool, reason: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(ModelError::Param {
            name,
            reason: reason.to_string(),
        })
    }
}

impl MlpConfig {
    /// Validates every field against its documented range.
    pub fn check(&self) -> Result<()> {
        param("lookback", (1..=1024).contains(&self.lookback), "must be in 1..=1024")?;
        param("horizon", (1..=104).contains(&self.horizon), "must be in 1..=104")?;
        param("hidden", (8..=4096).contains(&self.hidden), "must be in 8..=4096")?;
        param("layers", (1..=8).contains(&self.layers), "must be in 1..=8")?;
        param(
            "learning_rate",
            self.learning_rate > 0.0 && self.learning_rate < 1.0,
            "must be in (0, 1)",
        )?;
        param(
            "weight_decay",
            (0.0..1.0).contains(&self.weight_decay),
            "must be in [0, 1)",
        )?;
        param("steps", (1..=1_000_000).contains(&self.steps), "must be in 1..=1000000")?;
        param("batch_size", (1..=65536).contains(&self.batch_size), "must be in 1..=65536")
    }
}

/// The network: `layers` ReLU layers of width `hidden`, then a linear head of size `horizon`.
pub struct Mlp {
    hidden: Vec<Linear>,
    head: Linear,
    lookback: usize,
}

impl Mlp {
    /// Builds the network's variables under `vb` (names `hidden.{i}`, `head`).
    pub fn new(vb: VarBuilder, cfg: &MlpConfig) -> candle_core::Result<Self> {
        let mut hidden = Vec::with_capacity(cfg.layers);
        let mut width = cfg.lookback;
        for i in 0..cfg.layers {
            hidden.push(linear(width, cfg.hidden, vb.pp(format!("hidden.{i}")))?);
            width = cfg.hidden;
        }
        let head = linear(width, cfg.horizon, vb.pp("head"))?;
        Ok(Self {
            hidden,
            head,
            lookback: cfg.lookback,
        })
    }

    /// `x`: `(batch, lookback)` scaled inputs → `(batch, horizon)` scaled forecasts.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let last = x.narrow(1, self.lookback - 1, 1)?;
        let mut h = x.clone();
        for l in &self.hidden {
            h = l.forward(&h)?.relu()?;
        }
        self.head.forward(&h)?.broadcast_add(&last)
    }
}

/// A trained network with its configuration.
pub struct TrainedMlp {
    varmap: VarMap,
    model: Mlp,
    /// The configuration it was trained with.
    pub config: MlpConfig,
    /// Mean training loss per tenth of the run.
    pub loss_curve: Vec<f32>,
}

/// Overwrites every variable from a seeded RNG in sorted-name order (uniform ±1/√fan_in for
/// weights, zeros for biases).
fn seed_vars(varmap: &VarMap, seed: u64) -> Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    let data = varmap.data().lock().map_err(|_| ModelError::Input("varmap poisoned".into()))?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let dims = var.dims().to_vec();
        let n: usize = dims.iter().product();
        let values: Vec<f32> = if name.ends_with("bias") {
            vec![0.0; n]
        } else {
            let fan_in = *dims.last().unwrap_or(&1) as f32;
            let bound = 1.0 / fan_in.sqrt();
            (0..n).map(|_| rng.random_range(-bound..bound)).collect()
        };
        var.set(&Tensor::from_vec(values, dims.as_slice(), &Device::Cpu)?)?;
    }
    Ok(())
}

/// Trains on `n` windows (`x`: `n × lookback`, `y`: `n × horizon`, row-major, already scaled).
/// `progress(step, loss)` is called after every step.
pub fn train(
    x: &[f32],
    y: &[f32],
    n: usize,
    cfg: &MlpConfig,
    progress: &mut dyn FnMut(usize, f32),
) -> Result<TrainedMlp> {
    cfg.check()?;
    let (l, h) = (cfg.lookback, cfg.horizon);
    if n == 0 || x.len() != n * l || y.len() != n * h {
        return Err(ModelError::Input(format!(
            "expected {n} windows of {l} inputs and {h} targets, got {} and {} values",
            x.len(),
            y.len()
        )));
    }
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
    let model = Mlp::new(vb, cfg)?;
    seed_vars(&varmap, cfg.seed)?;
    let mut opt = AdamW::new(
        varmap.all_vars(),
        ParamsAdamW {
            lr: cfg.learning_rate,
            weight_decay: cfg.weight_decay,
            ..ParamsAdamW::default()
        },
    )?;
    let mut rng = StdRng::seed_from_u64(cfg.seed.wrapping_add(1));
    let b = cfg.batch_size.min(n);
    let mut bx = vec![0f32; b * l];
    let mut by = vec![0f32; b * h];
    let mut curve = Vec::new();
    let mut acc = 0f32;
    let mut acc_n = 0usize;
    let tenth = (cfg.steps / 10).max(1);
    for step in 0..cfg.steps {
        for k in 0..b {
            let i = rng.random_range(0..n);
            bx[k * l..(k + 1) * l].copy_from_slice(&x[i * l..(i + 1) * l]);
            by[k * h..(k + 1) * h].copy_from_slice(&y[i * h..(i + 1) * h]);
        }
        let xt = Tensor::from_slice(&bx, (b, l), &dev)?;
        let yt = Tensor::from_slice(&by, (b, h), &dev)?;
        let loss = (model.forward(&xt)? - yt)?.abs()?.mean_all()?;
        let frac = step as f64 / cfg.steps as f64;
        opt.set_learning_rate(cfg.learning_rate * (1.0 - 0.9 * frac));
        opt.backward_step(&loss)?;
        let lv = loss.to_scalar::<f32>()?;
        acc += lv;
        acc_n += 1;
        if (step + 1) % tenth == 0 || step + 1 == cfg.steps {
            curve.push(acc / acc_n as f32);
            acc = 0.0;
            acc_n = 0;
        }
        progress(step + 1, lv);
    }
    Ok(TrainedMlp {
        varmap,
        model,
        config: cfg.clone(),
        loss_curve: curve,
    })
}

impl TrainedMlp {
    /// Scaled forecasts for `n` input windows (`n × lookback`) → `n × horizon`.
    pub fn predict(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        let l = self.config.lookback;
        if x.len() != n * l {
            return Err(ModelError::Input(format!(
                "expected {n} windows of {l} values, got {} values",
                x.len()
            )));
        }
        let mut out = Vec::with_capacity(n * self.config.horizon);
        for chunk in x.chunks(4096 * l) {
            let rows = chunk.len() / l;
            let t = Tensor::from_slice(chunk, (rows, l), &Device::Cpu)?;
            out.extend(self.model.forward(&t)?.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(out)
    }

    /// Writes the weights as safetensors.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.varmap.save(path).map_err(|e| ModelError::Artifact {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// Loads weights written by [`TrainedMlp::save`] for a network of shape `cfg`.
    pub fn load(path: &Path, cfg: &MlpConfig) -> Result<Self> {
        cfg.check()?;
        let art = |e: candle_core::Error| ModelError::Artifact {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let tensors: HashMap<String, Tensor> =
            candle_core::safetensors::load(path, &Device::Cpu).map_err(art)?;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let model = Mlp::new(vb, cfg).map_err(art)?;
        {
            let data = varmap.data().lock().map_err(|_| ModelError::Input("varmap poisoned".into()))?;
            for (name, var) in data.iter() {
                let t = tensors.get(name).ok_or_else(|| ModelError::Artifact {
                    path: path.display().to_string(),
                    reason: format!("missing tensor `{name}`"),
                })?;
                var.set(t).map_err(art)?;
            }
        }
        Ok(Self {
            varmap,
            model,
            config: cfg.clone(),
            loss_curve: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(n: usize, l: usize, h: usize) -> (Vec<f32>, Vec<f32>) {
        // Windows of a sine wave: learnable, deterministic.
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..n {
            for j in 0..l + h {
                let v = 1.0 + 0.5 * ((i + j) as f32 * 0.3).sin();
                if j < l { x.push(v) } else { y.push(v) }
            }
        }
        (x, y)
    }

    fn cfg() -> MlpConfig {
        MlpConfig { lookback: 16, horizon: 4, hidden: 32, layers: 2, steps: 200, batch_size: 64, ..MlpConfig::default() }
    }

    #[test]
    fn same_seed_same_weights_and_loss() {
        let (x, y) = toy(300, 16, 4);
        let a = train(&x, &y, 300, &cfg(), &mut |_, _| {}).unwrap();
        let b = train(&x, &y, 300, &cfg(), &mut |_, _| {}).unwrap();
        assert_eq!(a.loss_curve, b.loss_curve);
        assert_eq!(a.predict(&x[..16], 1).unwrap(), b.predict(&x[..16], 1).unwrap());
        let c = train(&x, &y, 300, &MlpConfig { seed: 7, ..cfg() }, &mut |_, _| {}).unwrap();
        assert_ne!(a.loss_curve, c.loss_curve);
    }

    #[test]
    fn training_reduces_loss_and_save_load_round_trips() {
        let (x, y) = toy(300, 16, 4);
        let m = train(&x, &y, 300, &cfg(), &mut |_, _| {}).unwrap();
        assert!(m.loss_curve.last().unwrap() < &(m.loss_curve[0] * 0.7), "{:?}", m.loss_curve);
        let dir = std::env::temp_dir().join(format!("kwi-mlp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("w.safetensors");
        m.save(&p).unwrap();
        let back = TrainedMlp::load(&p, &cfg()).unwrap();
        assert_eq!(m.predict(&x[..32], 2).unwrap(), back.predict(&x[..32], 2).unwrap());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn invalid_config_is_rejected_before_training() {
        let bad = MlpConfig { hidden: 0, ..cfg() };
        let err = train(&[0.0; 16], &[0.0; 4], 1, &bad, &mut |_, _| {}).err().unwrap();
        assert!(err.to_string().contains("`hidden`"), "{err}");
    }
}
