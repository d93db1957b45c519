#!/usr/bin/env bash
# /predict throughput and latency: the demo's churn GBDT (20 features of service churn_v1) on
# 10k demo users, served from the embedded store and from Redis, driven by
# wrk -t1 -c16 --latency with one random user per request.
#
# usage: bench/predict_bench.sh [USERS] [DURATION]     (defaults 10000, 20s)
# QUIVER_BIN=... uses that binary instead of building one.
# needs: wrk (apt-get install wrk), Redis at 127.0.0.1:6379 for the Redis run.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
users="${1:-10000}"
dur="${2:-20s}"
out="$CARGO_TARGET_DIR/bench-predict"
# QUIVER_BIN=path skips the build (a release build takes long on 2 cores).
[ -n "${QUIVER_BIN:-}" ] || cargo build --release -q -p quiver-cli
quiver="${QUIVER_BIN:-$CARGO_TARGET_DIR/release/quiver}"
rm -rf "$out" && mkdir -p "$out"
echo "== demo run with $users users (data, apply, train churn, materialize)"
"$quiver" demo run --dir "$out/demo" --users "$users" | grep -E "registered model|Demo done"

wait_up() { for _ in $(seq 1 300); do curl -s -o /dev/null "http://127.0.0.1:$1/health" && return 0; sleep 0.1; done; echo "server on $1 did not start"; return 1; }
declare -A result
run() { # label
  "$quiver" --repo "$out/demo" -q serve --port 6568 &
  local pid=$!; wait_up 6568
  curl -s -X POST http://127.0.0.1:6568/predict -d '{"model":"churn","entities":{"user_id":[1]}}'; echo
  local r
  r=$(USERS="$users" wrk -t1 -c16 -d"$dur" --latency -s bench/predict_wrk.lua http://127.0.0.1:6568 2>&1)
  kill $pid; wait $pid 2>/dev/null || true
  local rps p50 p99 errors
  rps=$(echo "$r" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$r" | awk '$1=="50%" {print $2}')
  p99=$(echo "$r" | awk '$1=="99%" {print $2}')
  errors=$(echo "$r" | awk '/Non-2xx/ {print $5}')
  result[$1]="$rps|$p50|$p99|${errors:-0}"
  echo "$1: $rps req/s, p50 $p50, p99 $p99, non-2xx ${errors:-0}"
}
echo "== /predict, embedded online store"
run "embedded"
echo "== /predict, Redis online store"
printf "\nonline_store: {type: redis, url: 'redis://127.0.0.1:6379'}\n" >> "$out/demo/quiver.yaml"
"$quiver" --repo "$out/demo" -q materialize 2000-01-01 2025-06-30
run "redis"

echo
echo "== Summary (/predict, 1 user x 20 features per request; wrk -t1 -c16 -d$dur --latency)"
printf "%-12s %10s %10s %10s %8s\n" store req/s p50 p99 non-2xx
for k in embedded redis; do
  IFS='|' read -r rps p50 p99 err <<< "${result[$k]}"
  printf "%-12s %10s %10s %10s %8s\n" "$k" "$rps" "$p50" "$p99" "$err"
done
