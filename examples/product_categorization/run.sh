#!/usr/bin/env bash
# The product categorization example, end to end, in one command:
#   examples/product_categorization/run.sh [QUIVER_BINARY] [WORK_DIR] [USERS]
# generates the synthetic catalog (`quiver demo data`: USERS/2 products, at least 2,000; the
# default 20,000 users gives 10,000 products from 5,000 sellers), applies the definitions, trains
# a multiclass GBDT on `categorize_v1` (features computed from each product's fields), prints
# the test accuracy and per-class F1, then serves it and categorizes a new product sent as request
# data. Exits non-zero when the test accuracy is under 80% or the new product is misfiled.
# Needs python3 (standard library only) and curl.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
q="${1:-quiver}"
work="${2:-$(mktemp -d)}"
users="${3:-20000}"
mkdir -p "$work"
cp -r "$here/quiver.yaml" "$here/features" "$work/"
"$q" -q demo data --out "$work/data" --users "$users"
"$q" --repo "$work" apply
"$q" --repo "$work" --json train --service categorize_v1 --labels "$work/data/products.parquet" \
  --timestamp-column created_at --label category --name categorize --promote champion \
  > "$work/train.json"
"$q" --repo "$work" --json models show categorize > "$work/model.json"
python3 - "$work/train.json" "$work/model.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
classes = json.load(open(sys.argv[2]))["details"]["label"]["classes"]
print(f"test accuracy {m['accuracy']:.3f}, macro F1 {m['macro_f1']:.3f} on {m['n_rows']} products "
      f"({len(classes)} categories: {', '.join(classes)})")
if m["accuracy"] < 0.8:
    sys.exit(f"test accuracy {m['accuracy']:.3f} is under 0.8")
PY
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$q" --repo "$work" -q serve --port "$port" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/health" && break; sleep 0.1; done
echo "== a new product, categorized from its fields (request data)"
answer="$(curl -s -X POST "http://127.0.0.1:$port/predict" -d '{
  "model": "categorize",
  "entities": {"product_id": [987654321]},
  "request_data": {"title": "Initech Deluxe espresso kettle", "brand": "Initech", "seller_id": 4711, "price": 39.9}}')"
echo "$answer"
python3 - "$answer" <<'PY'
import json, sys
p = json.loads(sys.argv[1])["predictions"][0]
print(f"new product -> {p['class']} ({p['probabilities'][p['class']]:.2f})")
if p["class"] != "home":
    sys.exit("a kettle belongs to home")
PY
