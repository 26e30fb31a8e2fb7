//! Fuzz target: see `udpchat_fuzz::raw` (fuzz/src/raw.rs) for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| udpchat_fuzz::raw::run(data));
