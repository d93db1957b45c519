#!/usr/bin/env bash
# Drift benchmark against Evidently 0.7's DataDriftPreset: reference and current Parquet sets of
# 1M rows x 50 columns (40 numeric, 10 categorical), both tools on the same files in one run,
# wall time and peak RSS from /usr/bin/time -v, and every column's score and drift flag compared.
#   bench/drift_bench.sh [ROWS [NUM CAT]]    (default 1000000 rows, 40 numeric, 10 categorical)
#   bench/drift_bench.sh 1000 200 20         a second shape: small sets (KS and chi-square), wide
# QUIVER_PROFILE=release|bench-fast picks the build (default bench-fast).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
profile="${QUIVER_PROFILE:-bench-fast}"
cargo build --profile "$profile" -p quiver-cli
py="$(ci/monitor-venv.sh)"
"$py" -W ignore bench/drift_bench.py "$CARGO_TARGET_DIR/$profile/quiver" "$CARGO_TARGET_DIR/bench-drift" "${1:-1000000}" ${2:+"$2"} ${3:+"$3"}
