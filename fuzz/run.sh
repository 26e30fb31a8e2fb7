#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 20); fails on the first crash,
# leaving the input in fuzz/artifacts/<target>/. See fuzz/README.md.
#
#   fuzz/run.sh [SECONDS]
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`). The committed
# seed corpus (fuzz/corpus/<target>/) is read, never written: what a run discovers goes to a
# scratch folder, so a CI run leaves the tree clean.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-20}"
targets=(decode raw_endpoint reliable_endpoint reliable_pair secured secure_stream)
# No sanitizer: the crates forbid unsafe code, so AddressSanitizer would find nothing Rust's own
# checks do not, and it doubles the build. Overflow checks and debug assertions stay on (the
# cargo-fuzz default), so arithmetic overflow is a crash.
build=(-s none)
# A hang (10 s on one input) or a run-away allocation is a crash too.
limits=(-timeout=10 -rss_limit_mb=1024 -malloc_limit_mb=64 -max_len=4096)

cargo +nightly fuzz build "${build[@]}"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in "${targets[@]}"; do
  echo "fuzz/run.sh: $target for ${seconds}s"
  mkdir -p "$scratch/$target"
  if ! cargo +nightly fuzz run "${build[@]}" "$target" "$scratch/$target" "corpus/$target" -- \
      -max_total_time="$seconds" -print_final_stats=1 "${limits[@]}" 2> "$scratch/$target.log"; then
    tail -n 60 "$scratch/$target.log" >&2
    echo "fuzz/run.sh: $target FAILED; the input is in fuzz/artifacts/$target/;" \
      "reproduce with: cd fuzz && cargo +nightly fuzz run ${build[*]} $target artifacts/$target/<file>" >&2
    exit 1
  fi
  grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb|Done [0-9]+ runs" "$scratch/$target.log" || true
done
echo "fuzz/run.sh: all targets ran ${seconds}s each without a crash"
