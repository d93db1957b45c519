#!/usr/bin/env bash
# The Python package against Feast 0.67 (duckdb) on the point-in-time benchmark, into pandas.
#   bench/python_bench.sh [N_FEATURE_ROWS N_ENTITY_ROWS] [--repeat R]
# Builds an optimized wheel of crates/quiver-py (profile bench-fast: release code without LTO;
# QUIVER_WHEEL_PROFILE=release for the release profile) and installs it into the Feast venv, so
# both sides run in one interpreter with the same pandas.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
profile="${QUIVER_WHEEL_PROFILE:-bench-fast}"
py="$(ci/peer-venv.sh)"
pybin="$(ci/python-venv.sh)"
rm -rf "$CARGO_TARGET_DIR/bench-wheels"
(cd python && "$(dirname "$pybin")/maturin" build -q --profile "$profile" -o "$CARGO_TARGET_DIR/bench-wheels")
"$py" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$CARGO_TARGET_DIR"/bench-wheels/quiver_fs-*.whl
"$py" -W ignore bench/python_bench.py "$CARGO_TARGET_DIR/bench-python" "$@"
