#![no_main]
//! `cargo +nightly fuzz run api_bodies`: the property of `tests/api/fuzz/bodies.rs`, on one
//! service (a fresh SQLite store with the built-in sample) kept for the whole run.

#[path = "../../tests/api/fuzz/bodies.rs"]
mod bodies;

static TARGET: std::sync::OnceLock<bodies::Bodies> = std::sync::OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| TARGET.get_or_init(bodies::Bodies::new).run(data));
