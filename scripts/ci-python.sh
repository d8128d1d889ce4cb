#!/usr/bin/env bash
# CI step for the Python package (crates/shm-bus-py, import name shm_bus):
# rustfmt and clippy for the crate, a fresh virtual environment with maturin
# and pytest (and numpy, for the numpy round trips) from PyPI, the package
# built and installed into it with `pip install ./crates/shm-bus-py`, and
# the pytest suite. The Rust CLI and the `spans` example are built first so
# the Python <-> Rust tests run (they are skipped only when those binaries
# are missing, which this script does not allow).
#
#   scripts/ci-python.sh            # python3
#   PYTHON=python3.12 scripts/ci-python.sh
#
# Exits non-zero on the first failure. Leaves the venv in
# crates/shm-bus-py/target/ci-venv (ignored by git).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CRATE="$ROOT/crates/shm-bus-py"
PYTHON="${PYTHON:-python3}"
VENV="$CRATE/target/ci-venv-$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check (shm-bus-py)"
(cd "$CRATE" && cargo fmt --check)

step "cargo clippy -D warnings (shm-bus-py)"
(cd "$CRATE" && cargo clippy --all-targets -- -D warnings)

step "build the shm-bus CLI and the spans example (for the Python <-> Rust tests)"
(cd "$ROOT" && cargo build -p shm-bus-cli && cargo build -p shm-bus --example spans)
export SHM_BUS_CLI="$ROOT/target/debug/shm-bus"
export SHM_BUS_SPANS_EXAMPLE="$ROOT/target/debug/examples/spans"

step "fresh venv with $PYTHON ($("$PYTHON" --version)) in $VENV"
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet maturin pytest numpy

step "pip install ./crates/shm-bus-py"
(cd "$ROOT" && "$VENV/bin/python" -m pip install --quiet ./crates/shm-bus-py)

step "import check"
(cd /tmp && "$VENV/bin/python" -c 'import shm_bus, sys; print("shm_bus imports on", sys.version.split()[0]); assert shm_bus._native.DETECTS_DERIVED_VIEWS')

step "pytest crates/shm-bus-py/tests"
# -p no:cacheprovider: nothing written into the source tree
(cd "$CRATE" && "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests)

step "no bus segment left behind by the tests"
if ls /dev/shm/shm-bus.pytest-* >/dev/null 2>&1; then
    ls -l /dev/shm/shm-bus.pytest-*
    echo "the Python tests left bus segments behind" >&2
    exit 1
fi
echo "ok"
