#!/usr/bin/env bash
# The Quiver side of lightgbm_parity.py: registers a LightGBM text model with
# `quiver models import` (in a throwaway repository whose service has the model's features) and
# scores a CSV with `quiver models score`, printing {"pred": [...], "contrib": {"v__x0": ..., "bias": ...}}
# per row (multiclass: a list of such objects, one per class).
# usage: quiver_import_score.sh QUIVER_BINARY model.txt test.csv
set -euo pipefail
q="$1"; model="$2"; csv="$3"
dir="$(mktemp -d)"; trap 'rm -rf "$dir"' EXIT
features=""
for n in $(sed -n 's/^feature_names=//p' "$model"); do features="$features{name: $n, type: float64}, "; done
cat > "$dir/quiver.yaml" <<YAML
project: parity
entities: [{name: row, join_keys: [row_id]}]
sources: [{name: src, type: parquet, path: none.parquet, timestamp_field: ts}]
feature_views:
  - {name: v, entities: [row], source: src, features: [${features%, }]}
feature_services: [{name: s, features: ["v:*"]}]
YAML
"$q" --repo "$dir" -q apply --skip-source-check
"$q" --repo "$dir" -q models import "$model" --service s --name m
"$q" --repo "$dir" models score m:1 "$csv"
