//! Times the demand-feature pipeline on a 100,000 series × 156 weeks panel (15.6 M rows) resampled
//! from the real reference series (see `kwi_features::resample`), prints seconds and peak memory,
//! and writes the panel to Parquet (once) so `benches/pandas_features.py` measures the same data.
//!
//! ```sh
//! CARGO_TARGET_DIR=/work/main/target cargo run -p kwi-features --example bench_features -- \
//!     [--series 100000] [--weeks 156] [--parquet /tmp/kwi_bench_panel.parquet] \
//!     [--batch 5000] [--mode memory|ipc] [--out /tmp/kwi_bench_features]
//! ```
//!
//! `--from-parquet` reads the panel from `--parquet` (written by an earlier run) instead of building
//! it, as the training binary would read a file; the memory figures then exclude the allocator's
//! leftovers of the build.
//!
//! `--mode memory` (default) keeps every feature in one frame; `--mode ipc` writes each batch to
//! `OUT/part-NNNN.arrow` (Arrow IPC) as it is computed, so the features never all sit in memory.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use kwi_features::demand::{
    DemandConfig, demand_features, demand_features_batched, demand_features_for_each,
};
use kwi_features::export::{write_ipc, write_parquet};
use kwi_features::resample::{reference_pool, resample_panel};
use polars::prelude::*;

/// Peak resident set size of this process so far, in MiB (Linux `VmHWM`).
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Resets `VmHWM` to the current RSS (Linux ≥ 4.0), so the peak covers the timed part only.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Sums of a few feature columns (non-null values), printed so the pandas run can be checked
/// against the same numbers.
fn checksums(df: &DataFrame) -> anyhow::Result<String> {
    let mut out = Vec::new();
    for c in [
        "lag_52",
        "roll_mean_13",
        "roll_std_13",
        "roll_max_52",
        "growth_4",
        "trend_slope_13",
        "zero_share_52",
        "acf_52",
        "scale",
    ] {
        let s = df.column(c)?.cast(&DataType::Float64)?;
        let ca = s.f64()?;
        out.push(format!(
            "{c}={:.6e}/{}",
            ca.sum().unwrap_or(0.0),
            ca.len() - ca.null_count()
        ));
    }
    Ok(out.join(" "))
}

fn main() -> anyhow::Result<()> {
    let n_series: usize = arg("--series", 100_000);
    let weeks: usize = arg("--weeks", 156);
    let batch: usize = arg("--batch", 5_000);
    let mode: String = arg("--mode", "memory".to_string());
    let out_dir: PathBuf = arg("--out", PathBuf::from("/tmp/kwi_bench_features"));
    let parquet: PathBuf = arg("--parquet", PathBuf::from("/tmp/kwi_bench_panel.parquet"));
    let data_dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../data"));

    let t0 = Instant::now();
    if std::env::args().any(|a| a == "--from-parquet") {
        let panel = kwi_features::export::read_parquet(&parquet)
            .with_context(|| format!("reading {}", parquet.display()))?;
        println!(
            "panel: {} rows read from {} in {:.1} s",
            panel.height(),
            parquet.display(),
            t0.elapsed().as_secs_f64()
        );
        return run(panel, batch, &mode, &out_dir);
    }
    let pool = reference_pool(&data_dir).context("reading the reference series")?;
    let usable = pool.iter().filter(|p| p.values.len() >= weeks).count();
    let start = chrono::NaiveDate::from_ymd_opt(2016, 1, 3).expect("valid date");
    let mut panel = resample_panel(&pool, n_series, weeks, 42, start)?;
    println!(
        "panel: {} series x {} weeks = {} rows, resampled from {usable} of {} real series (seed 42), built in {:.1} s",
        n_series,
        weeks,
        panel.height(),
        pool.len(),
        t0.elapsed().as_secs_f64()
    );
    if !parquet.exists() {
        write_parquet(&mut panel, &parquet)?;
        println!("wrote {}", parquet.display());
    }
    run(panel, batch, &mode, &out_dir)
}

fn run(
    panel: DataFrame,
    batch: usize,
    mode: &str,
    out_dir: &std::path::Path,
) -> anyhow::Result<()> {
    println!("rss before features: {:.0} MiB", peak_rss_mib());

    reset_peak();
    let cfg = DemandConfig::weekly();
    let t1 = Instant::now();
    if mode == "ipc" {
        std::fs::create_dir_all(out_dir)?;
        let mut part = 0usize;
        let mut rows = 0usize;
        demand_features_for_each(panel, &cfg, batch.max(1), |mut df| {
            rows += df.height();
            write_ipc(&mut df, &out_dir.join(format!("part-{part:04}.arrow")))?;
            part += 1;
            Ok(())
        })?;
        let secs = t1.elapsed().as_secs_f64();
        println!(
            "rust-polars demand features, streamed to {} ({part} Arrow IPC parts): {secs:.2} s for {rows} rows; peak RSS {:.0} MiB (input panel included)",
            out_dir.display(),
            peak_rss_mib()
        );
        println!(
            "RESULT rust_seconds={secs:.3} peak_mib={:.0}",
            peak_rss_mib()
        );
        return Ok(());
    }
    let features = if batch == 0 {
        demand_features(panel.clone().lazy(), &cfg)?.collect()?
    } else {
        demand_features_batched(panel, &cfg, batch)?
    };
    let secs = t1.elapsed().as_secs_f64();
    println!(
        "rust-polars demand features (batches of {batch} series, 0 = one pass): {:.2} s for {} rows x {} columns; peak RSS {:.0} MiB (input panel included)",
        secs,
        features.height(),
        features.width(),
        peak_rss_mib()
    );
    println!("checksums {}", checksums(&features)?);
    println!(
        "RESULT rust_seconds={secs:.3} peak_mib={:.0}",
        peak_rss_mib()
    );
    Ok(())
}
