#!/usr/bin/env bash
# ALS benchmark against implicit 0.7 (CPU): a generated power-law interaction set (200k users x
# 50k items, 5M interactions) and a MovieLens-1M-shaped set (6,040 users x 3,706 items, 1M
# ratings), factors 64, 15 iterations, 2 threads each, in one run: training time and
# precision@10 on the same random 80/20 split (20,000 test users at most).
#   bench/als_bench.sh
# QUIVER_PROFILE=release|bench-fast picks the build (default bench-fast).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
profile="${QUIVER_PROFILE:-bench-fast}"
cargo build --profile "$profile" -p quiver-cli
py="$(ci/recs-venv.sh)"
OPENBLAS_NUM_THREADS=1 "$py" -W ignore bench/als_bench.py "$CARGO_TARGET_DIR/$profile/quiver" "$CARGO_TARGET_DIR/bench-als"
