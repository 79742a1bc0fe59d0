//! Fuzzing the JSON request bodies through the router under `cargo test`, bounded: bolero replays
//! the committed corpus (`tests/api/__fuzz__/`) and then seeded random inputs (`FUZZ_ITERATIONS`,
//! default 2,000; `BOLERO_RANDOM_SEED` replays one). The target is in `fuzz/bodies.rs`, shared with
//! the cargo-fuzz target in `fuzz/` for long runs (docs/fuzzing.md).

#[path = "fuzz/bodies.rs"]
mod bodies;

#[test]
fn json_bodies() {
    // bolero catches a failing input's panic to report and shrink it; the service is only read
    // through its handles, so a caught panic leaves nothing half-changed that matters here.
    let target = std::panic::AssertUnwindSafe(bodies::Bodies::new());
    let iterations = std::env::var("FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    bolero::check!()
        .with_iterations(iterations)
        .with_max_len(2048)
        .for_each(|data: &[u8]| target.run(data));
}
