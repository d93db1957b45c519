#!/usr/bin/env bash
# Gradient-boosted trees training: LightGBM vs Quiver on the data of
# ../shared/anchors/lgbm_train.py (N rows x 30 features, binary, 80/20 split), matched settings:
# 200 trees, 63 leaves, learning rate 0.1, 255 bins, 2 threads.
#
# usage: bench/gbdt_bench.sh [N_ROWS]        (default 1000000)
# env:   VENV (default $CARGO_TARGET_DIR/ml-venv; created with numpy, lightgbm, scikit-learn)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
n="${1:-1000000}"
venv="${VENV:-$CARGO_TARGET_DIR/ml-venv}"
out="$CARGO_TARGET_DIR/bench-gbdt"
if ! "$venv/bin/python" -c 'import numpy, lightgbm, sklearn' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q numpy lightgbm scikit-learn
fi
cargo build --release -q -p quiver-ml --example gbdt_bench

echo "== data ($n rows) and LightGBM"
lgbm=$("$venv/bin/python" bench/gbdt_data_and_lgbm.py "$n" "$out" | grep '^lightgbm')
echo "$lgbm"
echo "== Quiver"
quiver=$(cargo run --release -q -p quiver-ml --example gbdt_bench -- "$out" | grep '^quiver')
echo "$quiver"

field() { sed -n "s/.*$2=\([0-9.]*\).*/\1/p" <<<"$1"; }
ls=$(field "$lgbm" train_seconds); la=$(field "$lgbm" test_auc)
qs=$(field "$quiver" train_seconds); qa=$(field "$quiver" test_auc)
echo
printf '%-10s %14s %10s\n' "" "train seconds" "test AUC"
printf '%-10s %14s %10s\n' "LightGBM" "$ls" "$la"
printf '%-10s %14s %10s\n' "Quiver" "$qs" "$qa"
awk -v qs="$qs" -v ls="$ls" -v qa="$qa" -v la="$la" \
  'BEGIN { printf "%-10s %13.2fx %+10.4f\n", "ratio/diff", qs / ls, qa - la }'
