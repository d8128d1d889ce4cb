#!/usr/bin/env bash
# Instructions per publish + receive of a 64 B message in one process,
# counted by callgrind: repeatable on a noisy machine (wall time is not).
#
# Runs examples/hotloop (crates/shm-bus-core) for N and 2N iterations and
# prints (I(2N) - I(N)) / N, which cancels start-up and bus creation.
#
#   scripts/instructions.sh [N]      # default N = 200000
#
# Prints two figures: one publish + one try_recv per message
# (examples/hotloop), and bursts of 32 through publish_many + try_recv_many
# (examples/hotloop_batch).
#
# Figures and history: docs/BENCHMARKS.md ("Where the time goes").
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200000}
if ! command -v valgrind >/dev/null 2>&1; then
    echo "valgrind not installed: instruction count skipped" >&2
    exit 0
fi
cargo build --release -q -p shm-bus-core --example hotloop --example hotloop_batch
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# refs EXAMPLE N [ARGS...]: instructions of one run.
refs() {
    local bin=target/release/examples/$1
    shift
    valgrind --tool=callgrind --callgrind-out-file="$out/cg.$$.$RANDOM" "$bin" "$@" 2>&1 \
        | sed -n 's/.*I *refs: *//p' | tr -d ,
}
# per EXAMPLE [ARGS...]: (I(2N) - I(N)) / N.
per() {
    local example=$1 small large
    shift
    small=$(refs "$example" "$n" "$@")
    large=$(refs "$example" $((2 * n)) "$@")
    echo $(((large - small) / n))
}
echo "instructions per publish + receive (64 B, one process): $(per hotloop)"
echo "instructions per message in bursts of 32 (publish_many + try_recv_many): $(per hotloop_batch 32)"
