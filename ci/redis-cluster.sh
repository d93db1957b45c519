#!/usr/bin/env bash
# A local Redis Cluster for the tests of the `redis_cluster` online store: 3 masters and 3
# replicas (one each) on ports BASE..BASE+5 (BASE defaults to 7000), data in a temporary folder,
# no persistence.
#
#   ci/redis-cluster.sh start [BASE]   start it (idempotent: a healthy cluster is left as it is, a
#                                      node that died is started again and rejoins)
#   ci/redis-cluster.sh stop [BASE]    stop its nodes and remove its folder
#   ci/redis-cluster.sh status [BASE]  exit 0 when `cluster info` says cluster_state:ok
#
# The node timeout is 2 s (Redis' default is 15 s), so a replica takes over a failed master
# within a few seconds. Nodes listen on 127.0.0.1 only.
set -euo pipefail

cmd="${1:-start}"
base="${2:-${QUIVER_REDIS_CLUSTER_BASE:-7000}}"
ports=()
for i in 0 1 2 3 4 5; do ports+=($((base + i))); done
dir="${TMPDIR:-/tmp}/quiver-redis-cluster-$base"

cli() { redis-cli -h 127.0.0.1 -p "$1" "${@:2}"; }
up() { cli "$1" ping >/dev/null 2>&1; }
state_ok() { cli "$base" cluster info 2>/dev/null | tr -d '\r' | grep -qx 'cluster_state:ok'; }

start_node() {
  local port=$1
  mkdir -p "$dir/$port"
  # nodes.conf survives a crash: a restarted node rejoins the cluster it belonged to (as a
  # replica of the master that took over from it).
  redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes \
    --cluster-config-file "$dir/$port/nodes.conf" --cluster-node-timeout 2000 \
    --dir "$dir/$port" --save "" --appendonly no --daemonize yes \
    --pidfile "$dir/$port/redis.pid" --logfile "$dir/$port/redis.log"
}

wait_ok() {
  for _ in $(seq 1 "$1"); do
    state_ok && return 0
    sleep 0.5
  done
  return 1
}

case "$cmd" in
  start)
    command -v redis-server >/dev/null || { echo "redis-server is not installed" >&2; exit 1; }
    for p in "${ports[@]}"; do up "$p" || start_node "$p"; done
    for p in "${ports[@]}"; do
      for _ in $(seq 1 50); do up "$p" && break; sleep 0.1; done
      up "$p" || { echo "redis node $p did not start (see $dir/$p/redis.log)" >&2; exit 1; }
    done
    # A fresh set of nodes knows no slots: create the cluster. Nodes that were part of one
    # already (a restart after a crash) rejoin by themselves.
    known=$(cli "$base" cluster info | tr -d '\r' | sed -n 's/^cluster_slots_assigned://p')
    if [ "$known" = "0" ]; then
      addrs=()
      for p in "${ports[@]}"; do addrs+=("127.0.0.1:$p"); done
      redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 \
        || { cat "$dir/create.log" >&2; exit 1; }
    fi
    wait_ok 120 || { echo "redis cluster on $base.. did not reach cluster_state:ok" >&2; cli "$base" cluster info >&2; exit 1; }
    # Every node sees the cluster as healthy, not only the first.
    for p in "${ports[@]}"; do
      for _ in $(seq 1 60); do
        cli "$p" cluster info | tr -d '\r' | grep -qx 'cluster_state:ok' && break
        sleep 0.5
      done
    done
    # Replicas have finished their first sync with their master (so WAIT answers at once).
    for p in "${ports[@]}"; do
      for _ in $(seq 1 60); do
        info=$(cli "$p" info replication | tr -d '\r')
        grep -qx 'role:master' <<<"$info" && break
        grep -qx 'master_link_status:up' <<<"$info" && break
        sleep 0.5
      done
    done
    echo "redis cluster up on 127.0.0.1:${ports[0]}-${ports[5]} ($dir)"
    ;;
  stop)
    for p in "${ports[@]}"; do
      if up "$p"; then cli "$p" shutdown nosave >/dev/null 2>&1 || true; fi
    done
    for p in "${ports[@]}"; do
      for _ in $(seq 1 50); do up "$p" || break; sleep 0.1; done
    done
    rm -rf "$dir"
    ;;
  status)
    state_ok
    ;;
  *)
    echo "usage: $0 start|stop|status [BASE_PORT]" >&2
    exit 2
    ;;
esac
