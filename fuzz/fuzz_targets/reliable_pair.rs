//! Fuzz target: see `udpchat_fuzz::pair` (fuzz/src/pair.rs) for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| udpchat_fuzz::pair::run(data));
