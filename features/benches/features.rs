//! Criterion benchmarks of the feature layer on panels resampled from the real reference series
//! (`kwi_features::resample`). Sizes are kept small enough for `cargo bench` on a 2-core machine;
//! the full 100,000 × 156 figure comes from `examples/bench_features.rs`
//! (figures in docs/benchmarks.md, "Feature layer").

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use kwi_features::demand::{DemandConfig, demand_features};
use kwi_features::resample::{reference_pool, resample_panel};
use polars::prelude::*;

fn bench_demand(c: &mut Criterion) {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../data"));
    let pool = reference_pool(dir).expect("reference data");
    let start = chrono::NaiveDate::from_ymd_opt(2016, 1, 3).expect("valid date");
    let cfg = DemandConfig::weekly();
    let mut group = c.benchmark_group("demand_features");
    group.sample_size(10);
    for n_series in [1_000usize, 10_000] {
        let panel = resample_panel(&pool, n_series, 156, 42, start).expect("panel");
        group.bench_function(format!("{n_series}x156"), |b| {
            b.iter(|| {
                let df = demand_features(panel.clone().lazy(), &cfg)
                    .expect("pipeline")
                    .collect()
                    .expect("features");
                black_box(df.height())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_demand);
criterion_main!(benches);
