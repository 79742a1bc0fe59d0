//! Fuzzing the import parsers under `cargo test`, bounded: bolero replays each target's committed
//! corpus (`tests/__fuzz__/<target>/corpus/`: real files from `data/`, cut down, and every input
//! that once failed) and then runs seeded random inputs (`FUZZ_ITERATIONS`, default 2,000 per
//! target; `BOLERO_RANDOM_SEED` replays one). The properties are in `fuzz/targets.rs`, shared with
//! the cargo-fuzz targets in `fuzz/` for long runs (docs/fuzzing.md).

#[path = "fuzz/targets.rs"]
mod targets;

fn iterations() -> usize {
    std::env::var("FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

#[test]
fn import() {
    bolero::check!()
        .with_iterations(iterations())
        .with_max_len(16 * 1024)
        .for_each(|data: &[u8]| targets::import(data));
}

#[test]
fn keyword() {
    bolero::check!()
        .with_iterations(iterations() * 5)
        .with_max_len(1024)
        .for_each(|data: &[u8]| targets::keyword(data));
}

#[test]
fn import_mutated() {
    bolero::check!()
        .with_iterations(iterations() * 5)
        .with_max_len(4 * 1024)
        .for_each(|data: &[u8]| targets::import_mutated(data));
}

/// Only the corpus by default; `FUZZ_BINARY_ITERATIONS` adds random inputs (a corrupt Parquet or
/// Arrow file can abort the process inside polars: docs/fuzzing.md, "Known").
#[test]
fn import_mutated_binary() {
    let iterations = std::env::var("FUZZ_BINARY_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    bolero::check!()
        .with_iterations(iterations)
        .with_max_len(4 * 1024)
        .for_each(|data: &[u8]| targets::import_mutated_binary(data));
}

#[test]
fn every_seed_reads_cleanly_as_its_layout() {
    use kwi_features::ingest::InputFormat::*;
    let expected = [Gtrends, M4, Long, KeywordPlanner, BrandAnalytics];
    for ((name, rows, errors, format), want) in targets::seed_readings().into_iter().zip(expected) {
        assert_eq!(format, Some(want), "{name}");
        assert!(
            rows > 0 && errors == 0,
            "{name}: {rows} rows, {errors} errors"
        );
    }
}
