#!/bin/sh
# Regenerates, or with --check compares, the "Latest full run" block of docs/performance.md (the
# lines between <!-- bench:begin --> and <!-- bench:end -->) from one run of udpchat-bench:
#
#   docs/bench.sh           run, then rewrite the block (tables, seed tables, target verdicts)
#   docs/bench.sh --check   run, then fail if a reproducible line of the block differs
#
# One run is: every workload at seed 1, then chat, bulk, dead peer and fairness at seeds 2 to 5, all in a
# release build of the current tree, as JSON into a temporary directory; docs/bench_render.py
# renders the block from those documents (every figure and verdict in it comes from them).
# Reproducible lines are the simulated workloads' (virtual time, seeded links) for every system
# but quic-bbr (quinn-proto's BBR draws from the thread's own random generator); the loopback and
# sim rows measure real time, so --check skips them, as the block says. Needs python3.
# BENCH_OUT=DIR keeps the run's JSON documents in DIR instead of a temporary directory.
set -eu
cd "$(dirname "$0")/.."
case "${1:-}" in
    --check) mode=check ;;
    "") mode=write ;;
    *) echo "usage: docs/bench.sh [--check]" >&2; exit 2 ;;
esac
command -v python3 >/dev/null || { echo "docs/bench.sh needs python3" >&2; exit 2; }
if [ -n "${BENCH_OUT:-}" ]; then
    out=$BENCH_OUT
    mkdir -p "$out"
else
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT INT TERM
fi
cargo build --quiet --release -p udpchat-bench
bench() { cargo run --quiet --release -p udpchat-bench -- --format json "$@" 2>/dev/null; }
start=$(date +%s)
echo "docs/bench.sh: seed 1, every workload" >&2
bench --workload all --seed 1 >"$out/seed1-all.json"
for seed in 2 3 4 5; do
    for workload in chat bulk dead-peer fairness; do
        echo "docs/bench.sh: seed $seed, $workload" >&2
        bench --workload "$workload" --seed "$seed" >"$out/seed$seed-$workload.json"
    done
done
end=$(date +%s)
{
    echo "Made by \`docs/bench.sh\` on $(date -u +%Y-%m-%d) in $((end - start)) s of wall time, on $(nproc) cores"
    echo "($(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //' || uname -m)), load average"
    echo "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown) at the end (loopback and sim figures are sensitive to it)."
} >"$out/meta.txt"
python3 docs/bench_render.py "$mode" docs/performance.md "$out"
