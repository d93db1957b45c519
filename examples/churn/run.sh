#!/usr/bin/env bash
# The churn example, end to end, in one command:
#   examples/churn/run.sh [QUIVER_BINARY] [WORK_DIR] [USERS]
# generates the synthetic shop (users, products, events, reviews, churn labels), applies every
# definition (including the review embedding mean, which needs the all-MiniLM-L6-v2 files:
# fetched with scripts/fetch-minilm.sh into $QUIVER_MINILM_DIR, default
# ~/.cache/quiver/minilm, when missing), trains the GBDT churn model on `churn_v1` and a second
# one, `churn_text`, on `churn_v2` (the same features plus the 384 components of the mean review
# embedding), builds the `churn_semantic` training set, materializes everything, starts the
# server, predicts churn, checks that `churn_text`'s offline scores (`models predict`) equal
# `/predict`'s, and reads the first 50 users' embedding means online. Exits non-zero if a model
# is no better than chance, if offline and online scores differ, or if a served embedding mean
# is not a 384-number vector, or if a data-quality check of the clickstream fails (run before
# materializing). It also serves the ranking features (features/ranking.yaml: a decayed,
# weighted product popularity and each user's decayed category shares) and checks them online
# against `historical` as of the materialization (`quiver consistency`). Needs python3 and curl.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
q="${1:-quiver}"
work="${2:-$(mktemp -d)}"
users="${3:-5000}"
export QUIVER_MINILM_DIR="${QUIVER_MINILM_DIR:-$HOME/.cache/quiver/minilm}"
if [ ! -s "$QUIVER_MINILM_DIR/model.safetensors" ]; then
  "$root/scripts/fetch-minilm.sh" "$QUIVER_MINILM_DIR"
fi
mkdir -p "$work"
cp -r "$here/quiver.yaml" "$here/features" "$here/.gitignore" "$work/"
"$q" -q demo data --out "$work/data" --users "$users"
"$q" --repo "$work" apply
"$q" --repo "$work" --json train --service churn_v1 --labels "$work/data/labels.parquet" \
  --label churned --model gbdt --name churn --promote champion > "$work/train.json"
python3 - "$work/train.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
print(f"churn GBDT, test: ROC-AUC {m['roc_auc']:.3f}  PR-AUC {m['pr_auc']:.3f}  ({m['n_rows']} test rows)")
if m["roc_auc"] < 0.7:
    sys.exit(f"ROC-AUC {m['roc_auc']:.3f}: the churn features should do far better than chance")
PY
"$q" --repo "$work" --json train --service churn_v2 --labels "$work/data/labels.parquet" \
  --label churned --model gbdt --name churn_text --promote champion > "$work/train_v2.json"
python3 - "$work/train_v2.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
m = r["metrics"]
print(f"churn GBDT with the review embedding mean (churn_v2, 384 more inputs), test: "
      f"ROC-AUC {m['roc_auc']:.3f}  PR-AUC {m['pr_auc']:.3f}")
if m["roc_auc"] < 0.7:
    sys.exit(f"ROC-AUC {m['roc_auc']:.3f}: far worse than expected")
PY
"$q" --repo "$work" historical --entities "$work/data/labels.parquet" --service churn_semantic \
  --out "$work/semantic.parquet"
echo "== data-quality checks on the clickstream (materialize runs them again, and stops on a failure)"
"$q" --repo "$work" check --as-of 2025-06-30
"$q" --repo "$work" -q materialize 2000-01-01 2025-06-30
echo "== drift of the clickstream, May against April (quiver drift, with its HTML report)"
"$q" --repo "$work" drift --reference "$work/data/events.parquet@2025-04-01..2025-05-01" \
  --current "$work/data/events.parquet@2025-05-01..2025-06-01" --features event_type,amount,product_id \
  --out "$work/drift.html"
grep -q "<svg" "$work/drift.html" || { echo "the drift report has no plot" >&2; exit 1; }
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$q" --repo "$work" -q serve --port "$port" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/health" && break; sleep 0.1; done
echo "== churn predictions for users 1 and 2"
curl -s -X POST "http://127.0.0.1:$port/predict" -d '{"model": "churn", "entities": {"user_id": [1, 2]}}'
echo
echo "== churn_text (with embeddings): offline scores (models predict at the materialization's end) equal /predict's"
python3 -c 'print("user_id,event_timestamp"); [print(f"{u},2025-06-30T00:00:00Z") for u in range(1, 41)]' > "$work/at_end.csv"
"$q" --repo "$work" -q models predict churn_text --entities "$work/at_end.csv" --out "$work/at_end_scores.csv"
python3 - "$work/at_end_scores.csv" "$port" <<'PY'
import csv, json, sys, urllib.request
offline = [float(r[-1]) for r in list(csv.reader(open(sys.argv[1])))[1:]]
body = json.dumps({"model": "churn_text", "entities": {"user_id": list(range(1, 41))}}).encode()
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[2]}/predict", data=body)
online = [p["score"] for p in json.load(urllib.request.urlopen(req))["predictions"]]
differ = [(u, a, b) for u, a, b in zip(range(1, 41), offline, online) if a != b]
if len(offline) != 40 or differ:
    sys.exit(f"offline and online scores differ: {differ[:3]}")
print(f"40 users: offline == online for every score (first: {online[0]:.4f})")
PY
echo "== review embedding means served for the first 50 users"
python3 - "$work" "$port" <<'PY'
import json, math, sys, urllib.request
work, port = sys.argv[1], sys.argv[2]
# Every user with a review in the 90 days before the end (2025-06-30) must get a 384-number
# mean of unit vectors; the others get null.
body = json.dumps({"features": ["user_review_embeddings:review_embedding_mean_90d",
                                "user_review_embeddings:embedded_reviews_90d"],
                   "entities": {"user_id": list(range(1, 51))}}).encode()
req = urllib.request.Request(f"http://127.0.0.1:{port}/get-online-features", data=body)
res = json.load(urllib.request.urlopen(req))
vectors, counts = res["results"][1]["values"], res["results"][2]["values"]
with_reviews = [(u, v, c) for u, v, c in zip(range(1, 51), vectors, counts) if c]
if not with_reviews:
    sys.exit("no user among the first 50 has a review in the last 90 days")
for u, v, c in with_reviews:
    if v is None or len(v) != 384:
        sys.exit(f"user {u}: {c} reviews in 90 days but the served mean is {v!r:.80}")
    norm = math.sqrt(sum(x * x for x in v))
    if not 0 < norm <= 1.0001:
        sys.exit(f"user {u}: the mean of unit vectors has norm {norm}")
for u, v, c in zip(range(1, 51), vectors, counts):
    if not c and v is not None:
        sys.exit(f"user {u}: no review in 90 days but a mean embedding is served")
u, v, c = with_reviews[0]
print(f"user {u}: {c} reviews in 90 days, mean embedding served ({len(v)} numbers, norm "
      f"{math.sqrt(sum(x * x for x in v)):.3f}); {len(with_reviews)} of 50 users have one")
PY
echo "== ranking features (features/ranking.yaml): decayed product popularity and user category affinity, served"
python3 - "$port" <<'PY'
import json, sys, urllib.request
port = sys.argv[1]
body = json.dumps({"feature_service": "ranking_v1",
                   "entities": {"product_id": list(range(1, 201)), "user_id": list(range(1, 201))}}).encode()
req = urllib.request.Request(f"http://127.0.0.1:{port}/get-online-features", data=body)
res = json.load(urllib.request.urlopen(req))
names = res["metadata"]["feature_names"]
col = {n: r["values"] for n, r in zip(names, res["results"])}
pop, seen, aff = col["popularity_90d"], col["interactions_90d"], col["category_affinity_90d"]
for p, v, n in zip(range(1, 201), pop, seen):
    # Weights 1 to 3, each decayed to at most 1: 0 < popularity <= 3 x interactions (null: none).
    if (n == 0) != (v is None) or (v is not None and not 0 < v <= 3 * n + 1e-9):
        sys.exit(f"product {p}: popularity {v} with {n} interactions in 90 days")
with_events = [(u, a) for u, a in zip(range(1, 201), aff) if a is not None]
if not with_events:
    sys.exit("no user among the first 200 has a category affinity")
for u, a in with_events:
    if len(a) != 6 or min(a) < 0 or abs(sum(a) - 1) > 1e-9:
        sys.exit(f"user {u}: category affinity {a} is not 6 shares summing to 1")
top = max(range(1, 201), key=lambda p: pop[p - 1] or 0)
u, a = with_events[0]
cats = ["electronics", "home", "fashion", "grocery", "sports", "beauty"]
print(f"most popular of products 1-200: {top} ({pop[top - 1]:.2f}, {seen[top - 1]} interactions in 90 days); "
      f"user {u}'s affinity: " + ", ".join(f"{c} {x:.2f}" for c, x in zip(cats, a)))
PY
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
echo "== the ranking features online equal historical's as of the materialization (quiver consistency)"
"$q" --repo "$work" consistency --service ranking_v1 --fail-on-mismatch
echo "== the jobs of features/jobs.yaml, each run once (quiver jobs run), then their history"
"$q" --repo "$work" jobs list
for job in sync_online ranking_nightly snapshot_daily retrain_weekly export_scores; do
  "$q" --repo "$work" jobs run "$job"
done
# The shop's data stops on 2025-06-30: checked now, the clickstream is stale, and the check job
# reports the timeliness warnings (events_checks' error-severity checks still pass).
"$q" --repo "$work" jobs run quality_hourly
"$q" --repo "$work" --json jobs history > "$work/history.json"
python3 - "$work/history.json" <<'PY'
import json, sys
runs = json.load(open(sys.argv[1]))
done = {r["job"]: r for r in runs}
for job in ("sync_online", "ranking_nightly", "snapshot_daily", "retrain_weekly", "export_scores",
            "quality_hourly"):
    r = done.get(job)
    if r is None or r["status"] != "succeeded":
        sys.exit(f"job {job}: {r}")
d = done["retrain_weekly"]["summary"]["deployment"]
gate = next(s for s in d["steps"] if s["step"].startswith("gate"))
print(f"{len(runs)} recorded runs; every job succeeded (retrain_weekly registered churn version "
      f"{d['version']}: roc_auc {d['steps'][0]['challenger']:.4f} against the champion's "
      f"{d['steps'][0]['champion']:.4f} on the same test rows, {gate['step']}, {d['status']})")
if d["status"] not in ("rolling_out", "rejected"):
    sys.exit(f"retrain_weekly: unexpected deployment {d}")
PY
"$q" --repo "$work" models deployments churn
