#!/usr/bin/env bash
# Point-in-time benchmark against Feast (duckdb). Builds Quiver in release mode and the peer venv.
#   bench/pit_bench.sh [N_FEATURE_ROWS N_ENTITY_ROWS] [--repeat R] [--big N]
# Default: 10M feature rows x 1M entity rows, as in ../shared/anchors.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -p quiver-cli
py="$(ci/peer-venv.sh)"
"$py" -W ignore bench/pit_bench.py "$CARGO_TARGET_DIR/release/quiver" "$CARGO_TARGET_DIR/bench-pit" "$@"
