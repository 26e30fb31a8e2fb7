//! Reads the versions of the anchors from the workspace's `Cargo.lock`, so the report can say
//! exactly which ones ran.

use std::path::Path;

fn version_of(lock: &str, name: &str) -> String {
    let needle = format!("name = \"{name}\"\nversion = \"");
    lock.find(&needle)
        .and_then(|at| {
            let rest = &lock[at + needle.len()..];
            rest.find('"').map(|end| rest[..end].to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let lock_path = Path::new(&manifest).join("../../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock_path.display());
    let lock = std::fs::read_to_string(&lock_path).unwrap_or_default();
    for (name, var) in [
        ("kcp", "UDPCHAT_BENCH_KCP_VERSION"),
        ("quinn-proto", "UDPCHAT_BENCH_QUINN_PROTO_VERSION"),
        ("rustls", "UDPCHAT_BENCH_RUSTLS_VERSION"),
        ("smoltcp", "UDPCHAT_BENCH_SMOLTCP_VERSION"),
    ] {
        println!("cargo:rustc-env={var}={}", version_of(&lock, name));
    }
}
