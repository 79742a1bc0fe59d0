#![no_main]
//! `cargo +nightly fuzz run import`: the property of `features/tests/fuzz/targets.rs` (`import`).

#[allow(dead_code)]
#[path = "../../features/tests/fuzz/targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::import(data));
