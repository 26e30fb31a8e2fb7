//! Fuzz target: see `udpchat_fuzz::secure_stream` (fuzz/src/secure_stream.rs) for what it feeds
//! and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| udpchat_fuzz::secure_stream::run(data));
