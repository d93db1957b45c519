#!/usr/bin/env bash
# Point-in-time matrix: Quiver vs DuckDB's ASOF JOIN vs Feast 0.67 (duckdb), shape by shape.
#   bench/pit_matrix.sh [--shapes dense,string,...] [--no-feast] [--repeat R]
# Builds Quiver with the `bench-fast` profile (release code, no LTO; PROFILE=release for the
# release one) in its own target directory, and the peers' venv under it (ci/peer-venv.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/quiver-release}"
profile="${PROFILE:-bench-fast}"
cargo build --profile "$profile" -p quiver-cli
py="$(ci/peer-venv.sh)"
"$py" -W ignore bench/pit_matrix.py "$CARGO_TARGET_DIR/$profile/quiver" "$CARGO_TARGET_DIR/bench-pit-matrix" "$@"
