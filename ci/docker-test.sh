#!/usr/bin/env bash
# The container image and the compose file, for real:
#   ci/docker-test.sh QUIVER_BINARY
# builds a base image from Debian's packages (debootstrap into a folder, then `docker import`:
# no registry can be pulled from here) unless dockerd already has it, builds Quiver's image from
# the Dockerfile with that base and the given binary, checks its user, entry point and health
# check, then runs the churn demo's repository inside it as compose.yaml does: PostgreSQL as the
# registry (QUIVER__REGISTRY, database quiver_docker on 127.0.0.1:5432) and Redis as the online
# store (QUIVER__ONLINE_STORE, database 12 of 127.0.0.1:6379): apply, train, materialize, then
# `quiver serve` as the image's default command, healthy by its own health check. Features and a
# prediction read from the container over HTTP must equal those of the same binary serving
# outside it. compose.yaml is validated by docker-compose (Debian's 1.29) and its bind mounts
# must exist. Under CI=true a missing Docker engine fails; elsewhere this step says so and
# stops.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
q="$(realpath "${1:?usage: ci/docker-test.sh QUIVER_BINARY}")"
base="${QUIVER_DOCKER_BASE:-quiver-base:bookworm}"
image="quiver:ci"
redis_url="redis://127.0.0.1:6379/12"
pg_db="quiver_docker"
scratch="$(mktemp -d -p "${QUIVER_SCRATCH:-${TMPDIR:-/tmp}}" docker-test.XXXXXX)"
container=""
host_pid=""
cleanup() {
  [ -n "$container" ] && docker rm -f "$container" >/dev/null 2>&1 || true
  # The server writes its last prediction-log files as it stops: wait for it before removing.
  if [ -n "$host_pid" ]; then
    kill "$host_pid" 2>/dev/null || true
    wait "$host_pid" 2>/dev/null || true
  fi
  rm -rf "$scratch" || true
}
trap cleanup EXIT

if ! docker info >/dev/null 2>&1; then
  if [ "${CI:-}" = "true" ]; then
    echo "no Docker engine answers (CI=true): .ci/run installs docker.io and starts dockerd" >&2
    exit 1
  fi
  echo "SKIPPED: no Docker engine answers (start dockerd); under CI=true this fails"
  exit 0
fi

# 1. The base image, from Debian's packages, once per Docker engine.
if ! docker image inspect "$base" >/dev/null 2>&1; then
  echo "building the base image $base with debootstrap (bookworm, minbase)"
  debootstrap --variant=minbase --include=ca-certificates bookworm "$scratch/rootfs" \
    http://deb.debian.org/debian >"$scratch/debootstrap.log" 2>&1 \
    || { tail -20 "$scratch/debootstrap.log" >&2; exit 1; }
  tar -C "$scratch/rootfs" -c . | docker import - "$base" >/dev/null
  rm -rf "$scratch/rootfs"
fi

# 2. Quiver's image from the Dockerfile, with the binary (stripped: a debug build carries line
# tables) as the only file of the build context.
mkdir -p "$scratch/context"
cp "$q" "$scratch/context/quiver"
strip "$scratch/context/quiver"
started=$(date +%s)
docker build -q -f "$root/Dockerfile" --build-arg "BASE=$base" --build-arg QUIVER_BIN=quiver \
  -t "$image" "$scratch/context" >/dev/null
echo "image $image built in $(( $(date +%s) - started )) s: $(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}')"
inspect() { docker image inspect -f "$1" "$image"; }
check() { if [ "$1" != "$2" ]; then echo "image $image: $3 is '$1', expected '$2'" >&2; exit 1; fi; }
check "$(inspect '{{.Config.User}}')" "quiver" "the user"
check "$(inspect '{{json .Config.Entrypoint}}')" '["quiver"]' "the entry point"
check "$(inspect '{{json .Config.Cmd}}')" '["serve"]' "the default command"
check "$(inspect '{{.Config.WorkingDir}}')" "/repo" "the working folder"
inspect '{{json .Config.Healthcheck.Test}}' | grep -q '/health' || { echo "image $image has no /health check" >&2; exit 1; }
check "$(docker run --rm --entrypoint id "$image" -u)" "10001" "the uid"

# 3. The churn demo's repository: data and definitions written on the host, owned by the
# image's user; the stores are the host's PostgreSQL and Redis, reached over the host network.
repo="$scratch/repo"
"$q" -q demo run --dir "$repo" --users 500 >/dev/null
rm -rf "$repo/.quiver"
chown -R 10001 "$repo"
psql -q -h 127.0.0.1 -U postgres -d test -c "DROP DATABASE IF EXISTS $pg_db" -c "CREATE DATABASE $pg_db" >/dev/null
redis-cli -u "$redis_url" flushdb >/dev/null
pg_url="postgresql://postgres@127.0.0.1:5432/$pg_db"
in_image() {
  docker run --rm --network host -v "$repo:/repo" -e "QUIVER__REGISTRY=$pg_url" \
    -e "QUIVER__ONLINE_STORE=$redis_url" "$image" "$@"
}
in_image -q apply
in_image -q train --service churn_v1 --labels data/labels.parquet --label churned --name churn \
  --promote champion
in_image -q materialize 2000-01-01 2025-06-30
[ "$(redis-cli -u "$redis_url" dbsize)" -gt 500 ] || { echo "the container's materialization wrote nothing to Redis" >&2; exit 1; }
[ -z "$(find "$repo" -maxdepth 2 -name registry.db)" ] || { echo "a SQLite registry was written: QUIVER__REGISTRY was not used" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port="$(free_port)"
container="quiver-ci-$$"
docker run -d --name "$container" --network host -v "$repo:/repo" -e "QUIVER__REGISTRY=$pg_url" \
  -e "QUIVER__ONLINE_STORE=$redis_url" -e "QUIVER_PORT=$port" "$image" >/dev/null
health=""
for _ in $(seq 1 90); do
  health="$(docker inspect -f '{{.State.Health.Status}}' "$container")"
  [ "$health" = "healthy" ] && break
  [ "$(docker inspect -f '{{.State.Running}}' "$container")" = "true" ] || break
  sleep 1
done
if [ "$health" != "healthy" ]; then
  echo "the container is '$health' after 90 s:" >&2
  docker logs "$container" 2>&1 | tail -20 >&2
  exit 1
fi
echo "container $container healthy (its own health check on /health), serving on port $port"

host_port="$(free_port)"
QUIVER__REGISTRY="$pg_url" QUIVER__ONLINE_STORE="$redis_url" \
  "$q" --repo "$repo" -q serve --port "$host_port" >/dev/null 2>&1 &
host_pid=$!
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$host_port/health" && break; sleep 0.1; done

python3 - "$port" "$host_port" <<'PY'
import json, sys, urllib.request
def post(port, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=30))
users = list(range(1, 21))
features = {"feature_service": "churn_v1", "entities": {"user_id": users}}
predict = {"model": "churn", "entities": {"user_id": users}}
inside, outside = post(sys.argv[1], "/get-online-features", features), post(sys.argv[2], "/get-online-features", features)
statuses = [s for r in inside["results"][1:] for s in r["statuses"]]
if statuses.count("PRESENT") < len(statuses) // 2:
    sys.exit(f"the container serves few present values: {statuses[:20]}")
# Values and statuses (a request-time feature's timestamp is the moment of the request).
def cells(r):
    return [(x["values"], x["statuses"]) for x in r["results"]]
if inside["metadata"] != outside["metadata"] or cells(inside) != cells(outside):
    diff = [(i, a, b) for i, (a, b) in enumerate(zip(cells(inside), cells(outside))) if a != b]
    sys.exit(f"features from the container differ from the same binary's outside it: {str(diff[:2])[:1500]}")
p_in, p_out = post(sys.argv[1], "/predict", predict), post(sys.argv[2], "/predict", predict)
scores = [p["score"] for p in p_in["predictions"]]
if len(scores) != 20 or not all(0.0 <= s <= 1.0 for s in scores):
    sys.exit(f"bad predictions from the container: {p_in}")
if scores != [p["score"] for p in p_out["predictions"]] or p_in.get("version") != p_out.get("version"):
    sys.exit(f"predictions differ: {p_in} vs {p_out}")
print(f"from the container: {len(inside['results']) - 1} churn_v1 features x 20 users "
      f"({statuses.count('PRESENT')} present) and 20 churn scores (model v{p_in.get('version')}), "
      "equal to the same binary's outside it")
PY

# 4. compose.yaml: valid for docker-compose, every service of the stack, bind mounts present.
if command -v docker-compose >/dev/null 2>&1; then
  (cd "$root" && docker-compose -f compose.yaml config -q)
  services="$(cd "$root" && docker-compose -f compose.yaml config --services | sort | tr '\n' ' ')"
  [ "$services" = "grafana mlflow postgres prometheus quiver redis " ] \
    || { echo "compose.yaml's services: $services" >&2; exit 1; }
  echo "compose.yaml: valid (docker-compose $(docker-compose version --short)); services: $services"
elif [ "${CI:-}" = "true" ]; then
  echo "docker-compose is missing (CI=true): .ci/run installs it" >&2
  exit 1
fi
for mount in $(grep -o '\./deploy/[^:]*' "$root/compose.yaml"); do
  [ -e "$root/$mount" ] || { echo "compose.yaml mounts $mount, which does not exist" >&2; exit 1; }
done
echo "container image: all good"
