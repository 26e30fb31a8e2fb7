//! Fuzz target: see `udpchat_fuzz::reliable` (fuzz/src/reliable.rs) for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| udpchat_fuzz::reliable::run(data));
