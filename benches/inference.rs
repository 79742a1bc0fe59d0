//! Inference speed of the forecasting path the server uses (`kwi_predict::Predictor`):
//! one series and 10,000 series, 13 steps, 80/95 % intervals.
//!
//! Real data: the 10,000 series are the 359 M4 Weekly training series and the 32 Google Trends
//! topics, cycled (the same history reused under different ids; inference cost does not depend on
//! the values). The model is trained in the bench's setup with the default architecture (MLP 104 →
//! 3×256 → 13, ridge on the same 104 lags) but few steps: speed depends on the architecture, not on
//! how long it was trained. Each ensemble the validation step can choose is timed separately, since
//! per-series members (AutoETS) cost far more than the global ones.
//!
//! Run: `cargo bench --bench inference` (reports the machine's core count first).

use std::path::PathBuf;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use kwi_features::Frequency;
use kwi_features::ingest::{IngestOptions, InputFormat, read_observations};
use kwi_features::schema::window_schema_hash;
use kwi_features::series::regularise;
use kwi_features::windows::{WindowSpec, training_windows};
use kwi_models::artifact::Manifest;
use kwi_models::conformal::Conformal;
use kwi_models::ensemble::{Member, Selection};
use kwi_models::linear::{self, LinearConfig};
use kwi_models::mlp::{self, MlpConfig};
use kwi_predict::Predictor;

/// `data/<rel>` in the repository (origin in data/README.md).
fn data_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(rel)
}

fn load(rel: &str, format: InputFormat) -> Vec<Vec<f64>> {
    let opts = IngestOptions {
        format,
        start: (format == InputFormat::M4).then(|| "2000-01-02".parse().unwrap()),
        ..IngestOptions::default()
    };
    let got = read_observations(&data_file(rel), &opts).expect("reference data");
    regularise(&got.rows, Frequency::Weekly, &got.labels)
        .into_iter()
        .map(|s| s.values)
        .collect()
}

fn predictor(members: &[Member], train: &[&[f64]]) -> Predictor {
    let cfg = MlpConfig {
        steps: 20,
        ..MlpConfig::default()
    };
    let spec = WindowSpec {
        lookback: cfg.lookback,
        horizon: cfg.horizon,
    };
    let w = training_windows(train, spec, 50, 13);
    let m = mlp::train(&w.x, &w.y, w.len(), &cfg, &mut |_, _| {}).unwrap();
    let l = linear::fit(
        &w.x,
        &w.y,
        w.len(),
        spec.lookback,
        spec.horizon,
        &LinearConfig::default(),
    )
    .unwrap();
    let n = members.len() as f64;
    let manifest = Manifest {
        name: "bench".into(),
        version: "bench".into(),
        kind: kwi_models::artifact::ModelKind::Forecaster,
        feature_schema_hash: window_schema_hash(),
        created_at: String::new(),
        season: 52,
        lookback: cfg.lookback,
        horizon: cfg.horizon,
        mlp: cfg.clone(),
        linear: LinearConfig::default(),
        ensemble: Selection {
            members: members.to_vec(),
            weights: vec![1.0 / n; members.len()],
            validation: Default::default(),
            candidates: Vec::new(),
            criterion: Default::default(),
        },
        conformal: Conformal {
            levels: vec![80.0, 95.0],
            radius: vec![vec![1.0; 13], vec![2.0; 13]],
        },
        training_data: serde_json::Value::Null,
        metrics: serde_json::Value::Null,
    };
    Predictor::from_parts(manifest, Some(m), Some(l)).unwrap()
}

fn bench(c: &mut Criterion) {
    eprintln!(
        "machine: {} logical cores; RAYON_NUM_THREADS={:?}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::env::var("RAYON_NUM_THREADS").ok()
    );
    let mut all = load("m4/Weekly-train.csv", InputFormat::M4);
    all.extend(load(
        "samples/gtrends_pt_weekly_topics.csv",
        InputFormat::Gtrends,
    ));
    let refs: Vec<&[f64]> = all.iter().map(Vec::as_slice).collect();
    let many: Vec<&[f64]> = (0..10_000).map(|i| refs[i % refs.len()]).collect();
    let mut g = c.benchmark_group("forecast_h13");
    g.sample_size(10);
    for members in [
        &[Member::Mlp][..],
        &[Member::Mlp, Member::Linear],
        &[Member::Ets, Member::Mlp],
    ] {
        let p = predictor(members, &refs);
        let name = kwi_models::ensemble::joined(members).replace(" + ", "+");
        g.bench_with_input(BenchmarkId::new(&name, "1_series"), &refs[..1], |b, s| {
            b.iter(|| p.forecast(s, 13, &[80.0, 95.0]).unwrap())
        });
        if !members.contains(&Member::Ets) {
            g.bench_with_input(BenchmarkId::new(&name, "10000_series"), &many, |b, s| {
                b.iter(|| p.forecast(s, 13, &[80.0, 95.0]).unwrap())
            });
        } else {
            g.bench_with_input(BenchmarkId::new(&name, "391_series"), &refs, |b, s| {
                b.iter(|| p.forecast(s, 13, &[80.0, 95.0]).unwrap())
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
