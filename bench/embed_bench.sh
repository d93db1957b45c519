#!/usr/bin/env bash
# all-MiniLM-L6-v2 sentence embeddings on the CPU, batch 64, the first 200 fine-foods reviews
# repeated to 2,000 texts: quiver-embed (release build) beside sentence-transformers (PyTorch).
#
#   bench/embed_bench.sh [MODEL_DIR]
#
# MODEL_DIR: the three model files (default $QUIVER_MINILM_DIR, else $CARGO_TARGET_DIR/minilm,
# fetched there with scripts/fetch-minilm.sh if missing). sentence-transformers is installed once
# into a venv ($ST_VENV, default $CARGO_TARGET_DIR/st-venv; PyTorch from PyPI is a few GB).
# CSV: $QUIVER_REVIEWS_CSV, default ../shared/data/modeldata_small_fine_foods_reviews.csv.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
model_dir="${1:-${QUIVER_MINILM_DIR:-$CARGO_TARGET_DIR/minilm}}"
csv="${QUIVER_REVIEWS_CSV:-$PWD/../shared/data/modeldata_small_fine_foods_reviews.csv}"
n="${N_TEXTS:-2000}"
venv="${ST_VENV:-$CARGO_TARGET_DIR/st-venv}"

if [ ! -s "$model_dir/model.safetensors" ] || [ ! -s "$model_dir/tokenizer.json" ] || [ ! -s "$model_dir/config.json" ]; then
  scripts/fetch-minilm.sh "$model_dir"
fi
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import sentence_transformers" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check sentence-transformers
fi

echo "== $(nproc --all) cores; $n texts; batch 64"
cargo run --quiet --release -p quiver-embed --example embed_bench -- "$model_dir" "$csv" "$n"
"$venv/bin/python" bench/embed_bench.py "$model_dir" "$csv" "$n" 2>/dev/null
