#![no_main]
//! `cargo +nightly fuzz run import_mutated`: the property of `features/tests/fuzz/targets.rs` (`import_mutated`).

#[allow(dead_code)]
#[path = "../../features/tests/fuzz/targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::import_mutated(data));
