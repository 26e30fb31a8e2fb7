//! `udpchat`: the binary.
fn main() {}
