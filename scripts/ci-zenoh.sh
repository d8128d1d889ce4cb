#!/usr/bin/env bash
# CI step for the Zenoh bridge, crates/shm-bus-zenoh: its own workspace
# (Zenoh is heavy), kept out of the lean build and of `cargo test
# --workspace`. Checks formatting, clippy and rustdoc with warnings as
# errors, builds it in release, and runs its tests (unit tests, and the
# multi-process tests: real bridge, producer and consumer processes on
# two buses over loopback TCP, 1,000,000 events each way; in release,
# one test at a time, since each runs up to 11 processes on this 2-core
# machine). Prints each command; exits non-zero on the first failure.
#
# The first build compiles Zenoh: about 10 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

manifest=crates/shm-bus-zenoh/Cargo.toml
start=$SECONDS
run() {
    printf '+ %s\n' "$*"
    "$@"
}

run cargo fmt --manifest-path "$manifest" -- --check
run cargo build --manifest-path "$manifest" --release --locked --all-targets
run cargo clippy --manifest-path "$manifest" --release --locked --all-targets -- -D warnings
run env RUSTDOCFLAGS="-D warnings" cargo doc --manifest-path "$manifest" --release --locked --no-deps
run cargo test --manifest-path "$manifest" --release --locked -- --test-threads 1
printf 'ci-zenoh: ok (%ds)\n' $((SECONDS - start))
