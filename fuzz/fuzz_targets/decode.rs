//! Fuzz target: see `udpchat_fuzz::decode` (fuzz/src/decode.rs) for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| udpchat_fuzz::decode::run(data));
