#!/bin/sh
# Checks, or with --write rewrites, every figure quoted in docs/lab.md and docs/tcp-vs-udp.md and
# the committed results under docs/charts/ (results.json, results.csv and the SVG charts), by
# rerunning the commands that produce them. The work is done by the test tests/doc_figures.rs
# (which CI runs as part of `cargo test`); see its documentation for the markers.
#
#   docs/regenerate.sh           compare: fails if a figure differs from what the program prints
#   docs/regenerate.sh --write   rewrite the blocks and files from the program
set -eu
cd "$(dirname "$0")/.."
case "${1:-}" in
    --write) export UDPCHAT_DOCS=write ;;
    "") ;;
    *) echo "usage: docs/regenerate.sh [--write]" >&2; exit 2 ;;
esac
# The library's `simulate` example produces the trace excerpt; build it so that it is checked too.
cargo build --quiet -p udpchat-lab --example simulate
cargo test --quiet -p udpchat --test doc_figures -- --nocapture
