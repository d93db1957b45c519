#!/usr/bin/env bash
# POST /recommend throughput and latency over 100k items: a generated power-law interaction
# set (USERS users, ITEMS items, 15 interactions per user), ALS with 64 factors trained by
# `quiver recs train` and promoted to champion, then wrk -t1 -c16 --latency with one random
# user per request (about 9% of ids unknown to the model: popularity; the rest CF, top 10
# over every item with the user's seen items excluded).
#
# usage: bench/recommend_bench.sh [ITEMS] [USERS] [DURATION]    (defaults 100000, 20000, 20s)
# FACTORS=N trains N factors instead of 64 (a second shape: FACTORS=128 with 50000 items).
# USER_FACTORS=memory keeps users in the server instead of reading each one's row from the
# online store (the default, `serving: {user_factors: online}`).
# QUIVER_BIN=... uses that binary instead of building a release one (bench-fast profile).
# needs: wrk, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
items="${1:-100000}"
users="${2:-20000}"
dur="${3:-20s}"
factors="${FACTORS:-64}"
user_factors="${USER_FACTORS:-online}"
out="$CARGO_TARGET_DIR/bench-recommend"
[ -n "${QUIVER_BIN:-}" ] || cargo build --profile bench-fast -q -p quiver-cli
quiver="${QUIVER_BIN:-$CARGO_TARGET_DIR/bench-fast/quiver}"
rm -rf "$out" && mkdir -p "$out/data"
echo "== data: $users users x $items items"
python3 - "$out" "$users" "$items" <<'PY'
import random, sys
out, users, items = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(7)
with open(f"{out}/data/events.csv", "w") as f:
    f.write("user_id,product_id,event_type,event_timestamp\n")
    # Every item appears at least once (so the model has all of them), then a power law.
    for i in range(items):
        f.write(f"{i % users},p{i},view,2026-11-{1 + i % 28:02d}T10:00:00\n")
    for u in range(users):
        for _ in range(15):
            i = min(int(rng.paretovariate(1.1)) - 1, items - 1)
            t = "purchase" if rng.random() < 0.1 else "view"
            f.write(f"{u},p{(i * 7919 + u % 5) % items},{t},2026-11-{rng.randint(1, 28):02d}T10:00:00\n")
PY
cat > "$out/quiver.yaml" <<YAML
project: recommend_bench
sources:
  - name: events
    type: csv
    path: data/events.csv
    timestamp_field: event_timestamp
recommenders:
  - name: bench_recs
    interactions:
      source: events
      user: user_id
      item: product_id
      event_type: event_type
      weights: {view: 1, purchase: 3}
      half_life: 30d
      min_user_interactions: 1
    algorithm: {type: als, factors: $factors, regularization: 0.05, alpha: 10, iterations: 5, seed: 42}
    cold_start: {min_interactions: 5, popularity: {half_life: 7d}}
    serving: {user_factors: $user_factors}
YAML
"$quiver" --repo "$out" -q apply
echo "== train (factors $factors, 5 iterations)"
/usr/bin/time -f "train: %e s, %M KB" "$quiver" --repo "$out" -q recs train bench_recs --promote champion

wait_up() { for _ in $(seq 1 300); do curl -s -o /dev/null "http://127.0.0.1:$1/health" && return 0; sleep 0.1; done; echo "server on $1 did not start"; return 1; }
"$quiver" --repo "$out" -q serve --port 6569 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
wait_up 6569
curl -s -X POST http://127.0.0.1:6569/recommend -d '{"recommender":"bench_recs","user_id":1,"k":3}'; echo
# Warm-up (loads the version), then the run.
USERS="$users" wrk -t1 -c16 -d2s -s bench/recommend_wrk.lua http://127.0.0.1:6569 >/dev/null 2>&1
r=$(USERS="$users" wrk -t1 -c16 -d"$dur" --latency -s bench/recommend_wrk.lua http://127.0.0.1:6569 2>&1)
echo "$r"
rps=$(echo "$r" | awk '/Requests\/sec/ {print $2}')
p50=$(echo "$r" | awk '$1=="50%" {print $2}')
p99=$(echo "$r" | awk '$1=="99%" {print $2}')
errors=$(echo "$r" | awk '/Non-2xx/ {print $5}')
curl -s http://127.0.0.1:6569/metrics | grep -E '^quiver_recommendations_total|^quiver_cold_start_total'
echo
echo "== Summary (/recommend, k 10 over $items items x $factors factors, wrk -t1 -c16 -d$dur --latency)"
printf "%10s %10s %10s %8s\n" req/s p50 p99 non-2xx
printf "%10s %10s %10s %8s\n" "$rps" "$p50" "$p99" "${errors:-0}"
