#!/usr/bin/env bash
# Instructions per publish + receive of a 64 B message in one process,
# counted by callgrind: repeatable on a noisy machine (wall time is not).
#
# Runs examples/hotloop (crates/shm-bus-core) for N and 2N iterations and
# prints (I(2N) - I(N)) / N, which cancels start-up and bus creation.
#
#   scripts/instructions.sh [N]      # default N = 200000
#
# Figures and history: docs/BENCHMARKS.md ("Where the time goes").
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200000}
if ! command -v valgrind >/dev/null 2>&1; then
    echo "valgrind not installed: instruction count skipped" >&2
    exit 0
fi
cargo build --release -q -p shm-bus-core --example hotloop
bin=target/release/examples/hotloop
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
refs() {
    valgrind --tool=callgrind --callgrind-out-file="$out/cg.$1" "$bin" "$1" 2>&1 \
        | sed -n 's/.*I *refs: *//p' | tr -d ,
}
small=$(refs "$n")
large=$(refs $((2 * n)))
per=$(( (large - small) / n ))
echo "instructions per publish + receive (64 B, one process): $per"
