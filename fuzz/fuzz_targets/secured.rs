//! Fuzz target: see `udpchat_fuzz::secured` (fuzz/src/secured.rs) for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| udpchat_fuzz::secured::run(data));
