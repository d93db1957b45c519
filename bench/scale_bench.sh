#!/usr/bin/env bash
# Per-node figures for the scaling model of docs/scaling.md, on this machine:
#   bench/scale_bench.sh [N_FEATURE_ROWS N_ENTITY_ROWS] [--users N] [--duration 20s]
# 1. Offline: `quiver historical` on the point-in-time benchmark (10M feature rows x 1M entity
#    rows by default, the data of ../shared/anchors/feast_pit.py) pinned to one core and on
#    both: throughput per core and how it scales within a node; then the same retrieval on a
#    Ballista cluster of 1 and 2 executors on this machine (`quiver cluster`), the overhead of
#    distribution (SCALE_NO_BALLISTA=1 skips it).
# 2. Online: 100k users x 10 float features materialized into one Redis (127.0.0.1:6379) and
#    into a 3-master + 3-replica Redis Cluster started for the bench on ports 7200-7205
#    (ci/redis-cluster.sh), Redis memory per entity row, then `quiver serve` on each driven by
#    the same wrk scripts as bench/online_bench.sh (1 and 100 entities per request).
# 3. A master of the cluster killed (kill -9) during a wrk run: errors, the failover window, and
#    every materialized value read back after it (--failover-only runs this phase alone;
#    --offline-only runs phase 1 alone).
# needs: wrk, redis-server / redis-cli, the s3 venv's pyarrow (ci/s3-venv.sh). Not a test: run it
# on an idle machine, never alongside CI.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
profile="${QUIVER_BENCH_PROFILE:-bench-fast}"
cargo build --profile "$profile" -q -p quiver-cli
py="$(ci/s3-venv.sh)"
out="$CARGO_TARGET_DIR/bench-scale"
cluster_base=7200
stop() { ci/redis-cluster.sh stop "$cluster_base" >/dev/null 2>&1 || true; }
trap stop EXIT
ci/redis-cluster.sh start "$cluster_base" >/dev/null
"$py" bench/scale_bench.py "$CARGO_TARGET_DIR/$profile/quiver" "$out" "$cluster_base" "$@"
