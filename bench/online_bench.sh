#!/usr/bin/env bash
# Online serving and materialization: Feast 0.67 (Redis) vs Quiver (Redis and embedded) on the
# same 100k users x 10 float features (../shared/anchors/feast_online.py), each server driven by
# the same wrk script in turn on this machine.
#
# usage: bench/online_bench.sh [N_USERS] [DURATION]     (defaults 100000, 20s)
# needs: wrk (apt-get install wrk), Redis at 127.0.0.1:6379, the peer venv (ci/peer-venv.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
users="${1:-100000}"
dur="${2:-20s}"
anchors="$(cd .. && pwd)/shared/anchors"
out="$CARGO_TARGET_DIR/bench-online"
py="$(ci/peer-venv.sh)"
export PATH="$(dirname "$py"):$PATH"
cargo build --release -q -p quiver-cli
quiver="$CARGO_TARGET_DIR/release/quiver"
rm -rf "$out" && mkdir -p "$out"

echo "== Feast: materialize $users users x 10 features into Redis"
feast_mat=$(PYTHONWARNINGS=ignore "$py" "$anchors/feast_online.py" "$out" "$users" 2>/dev/null | grep '^materialize')
echo "$feast_mat"

make_repo() { # dir online_store_yaml
  mkdir -p "$1/data"
  cp "$out/online_features.parquet" "$1/data/"
  cat > "$1/quiver.yaml" <<YAML
project: bench
$2
entities:
  - {name: user, join_keys: [user_id]}
sources:
  - {name: src, type: parquet, path: data, timestamp_field: event_timestamp}
feature_views:
  - name: stats
    entities: [user]
    source: src
    ttl: 2d
    features: [{name: f0, type: float64}, {name: f1, type: float64}, {name: f2, type: float64}, {name: f3, type: float64}, {name: f4, type: float64}, {name: f5, type: float64}, {name: f6, type: float64}, {name: f7, type: float64}, {name: f8, type: float64}, {name: f9, type: float64}]
YAML
  "$quiver" --repo "$1" -q apply
}
make_repo "$out/q_redis" "online_store: {type: redis, url: 'redis://127.0.0.1:6379'}"
make_repo "$out/q_embedded" ""
# Quiver's keys from an earlier run are removed first, so the first run loads an empty store; the
# second run writes every row again over the loaded store (every key exists, every row is
# compared, and is the same as stored), as re-running a job does; the third writes a newer row
# for every entity (event time + 1 s, every feature + 1), as an incremental run over a live store
# whose entities all changed does.
redis-cli eval "for _,k in ipairs(redis.call('keys','quiver:bench:*')) do redis.call('unlink',k) end" 0 >/dev/null
newer() { # dir: every row of the repo's data one second newer, every feature + 1
  "$py" - "$1/data/online_features.parquet" <<'PY'
import sys, pyarrow as pa, pyarrow.compute as pc, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
cols = {}
for name in t.column_names:
    c = t[name]
    if name == "event_timestamp":
        c = pc.add(c, pa.scalar(1_000_000, pa.duration("us")).cast(pa.duration(c.type.unit)))
    elif name.startswith("f"):
        c = pc.add(c, 1.0)
    cols[name] = c
pq.write_table(pa.table(cols), sys.argv[1])
PY
}
declare -A mat
for kind in redis embedded; do
  for pass in empty loaded newer; do
    [ "$pass" = newer ] && newer "$out/q_$kind"
    echo "== Quiver: materialize into $kind ($pass store)"
    line=$("$quiver" --repo "$out/q_$kind" materialize 2000-01-01 now 2>&1 | grep '^materialized')
    echo "$line"
    mat[$kind $pass]="$line"
  done
done

wait_up() { for _ in $(seq 1 300); do curl -s -o /dev/null "http://127.0.0.1:$1/health" && return 0; sleep 0.1; done; echo "server on $1 did not start"; return 1; }
declare -A result
run_wrk() { # label port script
  local r
  r=$(wrk -t1 -c16 -d"$dur" --latency -s "$3" "http://127.0.0.1:$2" 2>&1)
  local rps p50 p99 errors
  rps=$(echo "$r" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$r" | awk '$1=="50%" {print $2}')
  p99=$(echo "$r" | awk '$1=="99%" {print $2}')
  errors=$(echo "$r" | awk '/Non-2xx/ {print $5}')
  result[$1]="$rps|$p50|$p99|${errors:-0}"
  echo "$1: $rps req/s, p50 $p50, p99 $p99, non-2xx ${errors:-0}"
}
single="$anchors/feast_online_wrk.lua"
batch="bench/online_batch_wrk.lua"

echo "== feast serve (Redis)"
feast -c "$out/feast_online" serve -h 127.0.0.1 -p 6566 >/dev/null 2>&1 &
pid=$!; wait_up 6566
run_wrk "feast, 1 entity" 6566 "$single"
run_wrk "feast, 100 entities" 6566 "$batch"
kill $pid; wait $pid 2>/dev/null || true

# Each store twice: the default worker threads (one per core, less one for a Redis on this
# machine) and the other choice on 2 cores.
cores=$(nproc)
for kind in redis embedded; do
  if [ "$kind" = redis ]; then alt=$cores; else alt=1; fi
  for workers in default "$alt"; do
    flag=(); label="quiver $kind"
    if [ "$workers" != default ]; then flag=(--workers "$workers"); label="quiver $kind (--workers $workers)"; fi
    echo "== quiver serve ($kind, workers: $workers)"
    "$quiver" --repo "$out/q_$kind" -q serve --port 6567 "${flag[@]}" &
    pid=$!; wait_up 6567
    run_wrk "$label, 1 entity" 6567 "$single"
    run_wrk "$label, 100 entities" 6567 "$batch"
    kill $pid; wait $pid 2>/dev/null || true
  done
done

echo
echo "== Summary ($users users x 10 float features; wrk -t1 -c16 -d$dur --latency)"
printf "%-44s %12s %10s %10s %8s\n" "server" "req/s" "p50" "p99" "non-2xx"
for k in "feast, 1 entity" "quiver redis, 1 entity" "quiver redis (--workers $cores), 1 entity" "quiver embedded, 1 entity" "quiver embedded (--workers 1), 1 entity" \
  "feast, 100 entities" "quiver redis, 100 entities" "quiver redis (--workers $cores), 100 entities" "quiver embedded, 100 entities" "quiver embedded (--workers 1), 100 entities"; do
  IFS='|' read -r a b c d <<< "${result[$k]}"
  printf "%-44s %12s %10s %10s %8s\n" "$k" "$a" "$b" "$c" "$d"
done
echo "materialize: feast: $feast_mat"
for k in "redis empty" "redis loaded" "redis newer" "embedded empty" "embedded loaded" "embedded newer"; do
  echo "materialize: quiver $k store: ${mat[$k]}"
done
