#!/usr/bin/env bash
# The offline engine on a Ballista cluster started here:
#   tests/cluster/cluster_test.sh QUIVER_BINARY
# starts `quiver cluster scheduler` and two `quiver cluster executor`s on loopback ports, writes
# a repository whose views have a string key, a composite (string + 64-bit int) key and a dense
# int key (TTLs, event-time ties broken by the created time, null keys, entity rows with no
# match), windowed aggregations over a string and a composite key (filters, empty windows, null
# values, decay) and a request-time view over them, and requires `historical` with
# `offline_engine: {type: ballista}` to equal the embedded engine's output exactly, and the
# churn demo's training set (aggregations calling Quiver's text functions on the executors) too;
# then each entity's latest values (what `materialize` and `snapshot` read), `drift` between
# two ranges of a feature service and every `check` of three quality sets must equal the
# embedded engine's, and each of them must fail naming the scheduler when it is not there. Then one executor is killed with SIGKILL in
# the middle of a larger retrieval: the retrieval must either fail naming the cluster or
# succeed with the embedded engine's values, never return partial results.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
q="$(realpath "${1:?usage: tests/cluster/cluster_test.sh QUIVER_BINARY}")"
py="$("$root/ci/s3-venv.sh")"
work="$(mktemp -d -p "${QUIVER_SCRATCH:-${TMPDIR:-/tmp}}" cluster-test.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] || rm -rf "$work" || true
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# An S3 server (moto) for a source in a bucket: the client finds it through `storage:` in
# quiver.yaml, the executors through --storage-endpoint; neither through AWS_ENDPOINT_URL.
mport="$(free_port)"
"$py" -m moto.server -H 127.0.0.1 -p "$mport" >"$work/moto.log" 2>&1 &
pids+=($!)
export AWS_ACCESS_KEY_ID=quiver-test AWS_SECRET_ACCESS_KEY=quiver-test AWS_REGION=us-east-1
unset AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_ENDPOINT
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$mport" && break; sleep 0.1; done

sport="$(free_port)"
"$q" cluster scheduler --port "$sport" >"$work/scheduler.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$sport/healthz" && break; sleep 0.1; done
start_executor() {
  local port
  port="$(free_port)"
  while [ "$(( port + 1 ))" -gt 65535 ] || ! python3 -c "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1', $port + 1))" 2>/dev/null; do port="$(free_port)"; done
  "$q" cluster executor --scheduler "127.0.0.1:$sport" --port "$port" --slots 2 \
    --work-dir "$work/executor-$1" --storage-endpoint "http://127.0.0.1:$mport" >"$work/executor-$1.log" 2>&1 &
  pids+=($!)
  echo $! > "$work/executor-$1.pid"
}
start_executor 1
start_executor 2
sleep 2

repo="$work/keys"
mkdir -p "$repo/data"
"$py" - "$repo" <<'PY'
import sys, numpy as np, pyarrow as pa, pyarrow.parquet as pq
repo = sys.argv[1]
rng = np.random.default_rng(7)
n, m = 200_000, 20_000
def ts(x): return pa.array(x.astype("datetime64[s]").astype("datetime64[us]"), pa.timestamp("us", tz="UTC"))
def keys(count, size):
    k = rng.integers(0, size, count)
    return k, rng.random(count) < 0.01
k, null = keys(n, 5000)
names = pa.array([None if z else f"user-{x:05d}" for x, z in zip(k, null)])
store_country = pa.array([None if z else ["fr", "de", "it"][x % 3] for x, z in zip(k, null)])
store_id = pa.array([None if z else int(x // 3) * 1_000_000_007 for x, z in zip(k, null)], pa.int64())
t = rng.integers(0, 2000, n)
# Rows of one key at one time are common (ties on the event time, broken by the created time);
# exact duplicates of (key, event time, created time) are not: a cluster's tasks read partition
# slices, so they are resolved to either row there (see pit_exec.rs).
created = rng.permutation(n)
v = np.arange(n, dtype="float64")
common = {"ts": ts(t), "created": ts(created), "v": v, "s": pa.array([f"s{i}" for i in range(n)])}
pq.write_table(pa.table({"user_name": names, **common}), f"{repo}/data/named.parquet", row_group_size=20_000)
pq.write_table(pa.table({"country": store_country, "store_id": store_id, **common}), f"{repo}/data/store.parquet", row_group_size=20_000)
pq.write_table(pa.table({"user_id": pa.array(k, pa.int64()), **common}), f"{repo}/data/dense.parquet", row_group_size=20_000)
# Events for windowed aggregations: every time distinct (10 ms apart over 2,000 s), since events
# of one key at one time may be taken in another order on a cluster (see pit_exec.rs).
k, null = keys(n, 5000)
pq.write_table(pa.table({
    "user_name": pa.array([None if z else f"user-{x:05d}" for x, z in zip(k, null)]),
    "country": pa.array([None if z else ["fr", "de", "it"][x % 3] for x, z in zip(k, null)]),
    "store_id": pa.array([None if z else int(x // 3) * 1_000_000_007 for x, z in zip(k, null)], pa.int64()),
    "ts": pa.array((rng.permutation(n) * 10_000).astype("datetime64[us]"), pa.timestamp("us", tz="UTC")),
    "kind": pa.array([["buy", "view", "cart"][x] for x in rng.integers(0, 3, n)]),
    "amount": pa.array([None if z else float(x) / 7 for x, z in zip(rng.integers(0, 1000, n), rng.random(n) < 0.05)], pa.float64()),
}), f"{repo}/data/events.parquet", row_group_size=20_000)
e, enull = keys(m, 5200)
pq.write_table(pa.table({
    "user_name": pa.array([None if z else f"user-{x:05d}" for x, z in zip(e, enull)]),
    "country": pa.array([None if z else ["fr", "de", "it"][x % 3] for x, z in zip(e, enull)]),
    "store_id": pa.array([None if z else int(x // 3) * 1_000_000_007 for x, z in zip(e, enull)], pa.int64()),
    "user_id": pa.array(e, pa.int64()),
    "event_timestamp": ts(rng.integers(0, 2100, m)),
    "basket": rng.random(m) * 100,
}), f"{repo}/data/entities.parquet")
PY
cat > "$repo/quiver.yaml" <<'YAML'
project: cluster_test
entities:
  - {name: named, join_keys: [user_name], value_type: string}
  - {name: store, join_keys: [country, store_id], value_types: [string, int64]}
  - {name: dense, join_keys: [user_id], value_type: int64}
sources:
  - {name: named_src, type: parquet, path: data/named.parquet, timestamp_field: ts, created_timestamp_field: created}
  - {name: store_src, type: parquet, path: data/store.parquet, timestamp_field: ts, created_timestamp_field: created}
  - {name: dense_src, type: parquet, path: data/dense.parquet, timestamp_field: ts, created_timestamp_field: created}
  - {name: events_src, type: parquet, path: data/events.parquet, timestamp_field: ts}
  - {name: dense_s3_src, type: parquet, path: "s3://quiver-cluster/dense.parquet", timestamp_field: ts, created_timestamp_field: created}
feature_views:
  - {name: named, entities: [named], source: named_src, ttl: 300s, features: [{name: v, type: float64}, {name: s, type: string}]}
  - {name: store, entities: [store], source: store_src, ttl: 0, features: [{name: v, type: float64}, {name: s, type: string}]}
  - {name: dense, entities: [dense], source: dense_src, ttl: 90s, features: [{name: v, type: float64}, {name: s, type: string}]}
  - {name: dense_s3, entities: [dense], source: dense_s3_src, ttl: 90s, features: [{name: v, type: float64}, {name: s, type: string}]}
  - name: named_windows
    entities: [named]
    source: events_src
    aggregations:
      - {name: n, function: count, window: 300s}
      - {name: total, function: sum, column: amount, window: 600s, filter: "kind = 'buy'"}
      - {name: last_kind, function: last, column: kind, window: 600s, type: string}
      - {name: kinds, function: count_distinct, column: kind, window: 900s}
      - {name: since, function: time_since_last, window: 2000s}
      - {name: decayed, function: decayed_sum, column: amount, window: 900s, half_life: 120s}
  - name: store_windows
    entities: [store]
    source: events_src
    aggregations:
      - {name: avg, function: mean, column: amount, window: 600s}
      - {name: sd, function: stddev, column: amount, window: 600s}
      - {name: hi, function: max, column: amount, window: 600s, filter: "amount > 100"}
  - name: basket_ctx
    request_data: [{name: basket, type: float64}]
    inputs: [named_windows]
    features:
      - {name: ratio, type: float64, expr: "basket / nullif(named_windows__total, 0)"}
feature_services:
  - {name: named_all, features: ["named:*", "named_windows:*"]}
quality:
  - name: events_q
    on_failure: warn               # reported, never blocking the materialization below
    source: events_src
    checks:
      - {type: not_null, columns: [user_name, country]}
      - {type: range, column: amount, min: 0, max: 100}
      - {type: allowed_values, column: kind, values: [buy, view]}
      - {type: unique, columns: [ts]}
      - {type: unique, columns: [user_name, kind]}
      - {type: sql, expr: "amount > 1 OR kind <> 'buy'", max_failing_share: 0.5}
      - {type: freshness, max_age: 1h}
      - {type: volume, every: 60s, lookback: 20m, max_z: 6}
  - name: dense_q
    on_failure: warn               # reported, never blocking the materialization below
    source: dense_src
    checks:
      - {type: unique, columns: [user_id]}
      - {type: null_share, column: v, max: 0.01}
  - name: named_q
    on_failure: warn               # reported, never blocking the materialization below
    view: named
    checks:
      - {type: not_null, columns: [user_name, v]}
      - {type: unique, columns: [s]}
YAML
printf 'storage: {endpoint: "http://127.0.0.1:%s"}\n' "$mport" >> "$repo/quiver.yaml"
"$py" - "$repo" "$mport" <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[2]}")
s3.create_bucket(Bucket="quiver-cluster")
s3.upload_file(f"{sys.argv[1]}/data/dense.parquet", "quiver-cluster", "dense.parquet")
PY
"$q" --repo "$repo" -q apply
features=(--features named:v --features named:s --features store:v --features store:s --features dense:v --features dense:s
  --features dense_s3:v --features dense_s3:s)
windows=()
for f in named_windows:n named_windows:total named_windows:last_kind named_windows:kinds named_windows:since \
    named_windows:decayed store_windows:avg store_windows:sd store_windows:hi basket_ctx:ratio; do
  windows+=(--features "$f")
done
"$q" --repo "$repo" -q historical "${features[@]}" --full-names --entities "$repo/data/entities.parquet" --out "$work/embedded.parquet"
"$q" --repo "$repo" -q historical "${windows[@]}" --full-names --entities "$repo/data/entities.parquet" --out "$work/windows-embedded.parquet"
# Each entity's latest values (what materialize and snapshot read), plain and aggregated views.
snapshot() {
  QUIVER__OFFLINE_STORE="$work/snapshots-$1" "$q" --repo "$repo" -q snapshot named store dense named_windows store_windows \
    --as-of 1970-01-01T00:20:00Z >/dev/null
}
snapshot embedded
# Drift between two ranges of a service's own rows (their entity rows a DISTINCT over the
# views' sources, then historical): both scans and the joins go to the cluster.
drift() {
  "$q" --repo "$repo" --json drift --reference "service:named_all@1970-01-01T00:00:00Z..1970-01-01T00:12:00Z" \
    --current "service:named_all@1970-01-01T00:12:00Z..1970-01-01T00:40:00Z" > "$work/drift-$1.json"
}
drift embedded
# Every quality set, scanned and folded on the executors (the partial states merged here).
check() {
  "$q" --repo "$repo" --json check --as-of 1970-01-01T00:20:00Z > "$work/check-$1.json" || true
}
check embedded
printf 'offline_engine: {type: ballista, url: "df://127.0.0.1:%s", partitions: 4}\n' "$sport" >> "$repo/quiver.yaml"
"$q" --repo "$repo" -q historical "${features[@]}" --full-names --entities "$repo/data/entities.parquet" --out "$work/cluster.parquet"
"$q" --repo "$repo" -q historical "${windows[@]}" --full-names --entities "$repo/data/entities.parquet" --out "$work/windows-cluster.parquet"
snapshot cluster
# The Python package on the same settings (the wheel ci/python-test.sh installs, which ci/test.sh
# runs before this test): the windows and a plain view in one call, on the cluster.
pyq="$("$root/ci/python-venv.sh")"
if "$pyq" -c "import quiver" 2>/dev/null; then
  "$pyq" - "$repo" "$work" <<'PY'
import sys, pyarrow.parquet as pq, quiver
repo, w = sys.argv[1], sys.argv[2]
entities = pq.read_table(f"{repo}/data/entities.parquet")
features = ["named_windows:total", "named_windows:last_kind", "store_windows:avg", "dense:v"]
got = quiver.FeatureStore(repo).get_historical_features(entities, features, full_feature_names=True)
want = pq.read_table(f"{w}/windows-embedded.parquet")
base = pq.read_table(f"{w}/embedded.parquet")
for f in features:
    name = f.replace(":", "__")
    ref = want if name in want.column_names else base
    if not got[name].equals(ref[name]):
        sys.exit(f"the Python package on the cluster: {name} differs from the embedded engine's")
print(f"the Python package with offline_engine: ballista: {got.num_rows} rows x {len(features)} features equal the embedded engine's")
PY
elif [ "${CI:-}" = true ]; then
  echo "the Python package is not installed in $(dirname "$pyq") (ci/python-test.sh installs it)" >&2
  exit 1
else
  echo "(the Python package is not installed in $(dirname "$pyq"): skipped; ci/python-test.sh installs it)"
fi
drift cluster
check cluster
# materialize on the cluster, then the embedded engine's consistency check: what the cluster
# wrote to the online store must equal the embedded engine's latest values.
"$q" --repo "$repo" -q materialize 1970-01-01T00:00:00Z 1970-01-01T00:20:00Z >/dev/null
cluster_line="$(tail -1 "$repo/quiver.yaml")"
sed -i '$d' "$repo/quiver.yaml"
"$q" --repo "$repo" --json consistency --service named_all --sample 100000 --fail-on-mismatch > "$work/consistency.json" \
  || { echo "materialized on the cluster, the online values differ from the embedded engine's: $(head -c 1500 "$work/consistency.json")" >&2; exit 1; }
echo "$cluster_line" >> "$repo/quiver.yaml"

demo="$work/demo"
"$q" -q demo run --dir "$demo" --users 300 >/dev/null
"$q" --repo "$demo" -q historical --service churn_v1 --entities "$demo/data/labels.parquet" --out "$work/demo-embedded.parquet"
printf 'offline_engine: {type: ballista, url: "df://127.0.0.1:%s"}\n' "$sport" >> "$demo/quiver.yaml"
"$q" --repo "$demo" -q historical --service churn_v1 --entities "$demo/data/labels.parquet" --out "$work/demo-cluster.parquet"

"$py" - "$work" <<'PY'
import sys, pyarrow.parquet as pq
w = sys.argv[1]
for a, b, what in [("embedded", "cluster", "string, composite and dense keys (one source in S3)"), ("windows-embedded", "windows-cluster", "windowed aggregations and a request-time view"), ("demo-embedded", "demo-cluster", "the churn demo's training set")]:
    x, y = pq.read_table(f"{w}/{a}.parquet"), pq.read_table(f"{w}/{b}.parquet")
    if x.num_rows == 0 or not x.equals(y):
        diff = [c for c in x.column_names if not x[c].equals(y[c])]
        sys.exit(f"{what}: the cluster's historical differs from the embedded engine's in {diff}")
    if a == "embedded" and not (x["dense__v"].equals(x["dense_s3__v"]) and x["dense__v"].null_count < x.num_rows):
        sys.exit("the view over the S3 copy of a source does not give the local view's values")
    present = sum(x[c].null_count < x.num_rows for c in x.column_names)
    print(f"{what}: {x.num_rows} rows x {x.num_columns} columns equal on the cluster ({present} columns with values)")
import glob, os
def snapshot(engine):
    files = sorted(glob.glob(f"{w}/snapshots-{engine}/**/*.parquet", recursive=True))
    out = {}
    for f in files:
        t = pq.read_table(f)
        keys = [c for c in t.column_names if c in ("user_name", "country", "store_id", "user_id")]
        out[os.path.relpath(f, f"{w}/snapshots-{engine}")] = t.sort_by([(k, "ascending") for k in keys])
    return out
a, b = snapshot("embedded"), snapshot("cluster")
if len(a) != 5 or sorted(a) != sorted(b):
    sys.exit(f"snapshots: {sorted(a)} embedded, {sorted(b)} on the cluster")
for f in a:
    if a[f].num_rows == 0 or not a[f].equals(b[f]):
        sys.exit(f"snapshot {f}: the cluster's latest values differ from the embedded engine's")
print(f"latest values (materialize, snapshot) of 5 views equal on the cluster: {sum(t.num_rows for t in a.values())} rows")
import json
da, db = (json.load(open(f"{w}/drift-{e}.json")) for e in ("embedded", "cluster"))
if da != db or not da.get("features"):
    sys.exit(f"drift on the cluster differs from the embedded engine's: {str(da)[:600]} against {str(db)[:600]}")
print(f"drift of service named_all between two ranges equal on the cluster: {len(da['features'])} features")
# Quality: every result equal but the examples (the first failing rows found, which depend on
# the order partitions finish in), which must be as many.
def results(engine):
    out = json.load(open(f"{w}/check-{engine}.json"))["results"]
    for r in out:
        r["examples"] = len(r["examples"])
        for k in ("seconds", "checked_us", "checked_at"):
            r.pop(k, None)
    return out
ca, cb = results("embedded"), results("cluster")
if not ca or ca != cb:
    diff = [(x, y) for x, y in zip(ca, cb) if x != y]
    sys.exit(f"quality checks on the cluster differ from the embedded engine's: {str(diff)[:1500]}")
failing = sum(r["status"] != "pass" for r in ca)
print(f"quality: {len(ca)} checks of 3 sets equal on the cluster ({failing} not passing, as the data makes them)")
c = json.load(open(f"{w}/consistency.json"))
compared = sum(f["compared"] for f in c["features"])
equal = sum(f["equal"] for f in c["features"])
if compared == 0 or compared != equal or any(v["missing_rows"] for v in c["views"]):
    sys.exit(f"materialized on the cluster: {compared} online values compared, {equal} equal to the embedded engine's: {str(c)[:1500]}")
print(f"materialized on the cluster: {equal} of {compared} online values ({len(c['features'])} features of {len(c['views'])} views) equal the embedded engine's latest values")
PY

# An executor killed in the middle of a retrieval: failure with a message, or the whole answer.
"$q" --repo "$repo" -q historical "${features[@]}" --full-names --entities "$repo/data/entities.parquet" \
  --out "$work/killed.parquet" >"$work/killed.log" 2>&1 &
hist=$!
sleep 1
kill -0 "$hist" 2>/dev/null || { echo "the retrieval ended within 1 s, before the kill: make it larger" >&2; exit 1; }
started=$SECONDS
kill -9 "$(cat "$work/executor-2.pid")"
if wait "$hist"; then
  "$py" - "$work" <<'PY'
import sys, pyarrow.parquet as pq
w = sys.argv[1]
if not pq.read_table(f"{w}/embedded.parquet").equals(pq.read_table(f"{w}/killed.parquet")):
    sys.exit("with an executor killed, historical succeeded with other values")
print("an executor killed mid-retrieval: its tasks (or the job) ran again on the other, the answer is whole")
PY
  echo "(the retrieval ended $(( SECONDS - started )) s after the kill)"
else
  grep -qi "cluster" "$work/killed.log" || { echo "the failure does not name the cluster: $(cat "$work/killed.log")" >&2; exit 1; }
  [ ! -e "$work/killed.parquet" ] || { echo "a failed retrieval left an output file" >&2; exit 1; }
  echo "an executor killed mid-retrieval: historical failed $(( SECONDS - started )) s after the kill with: $(grep -v '^[[:space:]]*$' "$work/killed.log" | tail -2 | cut -c1-300)"
fi
# Bad settings and a scheduler that is not there fail naming the setting or the scheduler.
sed -i '$d' "$repo/quiver.yaml"
for engine in '{type: spark}' '{type: ballista}' "{type: ballista, url: \"df://127.0.0.1:$(free_port)\"}"; do
  printf 'offline_engine: %s\n' "$engine" >> "$repo/quiver.yaml"
  if out="$(timeout 120 "$q" --repo "$repo" historical "${features[@]}" --full-names --entities "$repo/data/entities.parquet" \
      --out "$work/bad.parquet" 2>&1)"; then
    echo "historical with offline_engine: $engine succeeded" >&2
    exit 1
  fi
  echo "$out" | grep -Eq "offline_engine|Ballista scheduler" \
    || { echo "offline_engine: $engine: the error names neither the setting nor the scheduler: $out" >&2; exit 1; }
  echo "offline_engine: $engine -> $(echo "$out" | tail -1 | cut -c1-160)"
  sed -i '$d' "$repo/quiver.yaml"
done
# With no scheduler there, the aggregations and the latest values fail too: they go to the
# cluster, not quietly to the embedded engine.
printf 'offline_engine: {type: ballista, url: "df://127.0.0.1:%s"}\n' "$(free_port)" >> "$repo/quiver.yaml"
for what in "historical --features named_windows:total --entities $repo/data/entities.parquet --out $work/bad.parquet" \
    "snapshot dense --as-of 1970-01-01T00:20:00Z" "snapshot store_windows --as-of 1970-01-01T00:20:00Z" \
    "drift --reference service:named_all@1970-01-01T00:00:00Z..1970-01-01T00:12:00Z --current service:named_all@1970-01-01T00:12:00Z..1970-01-01T00:40:00Z" \
    "check events_q --as-of 1970-01-01T00:20:00Z"; do
  # shellcheck disable=SC2086
  if out="$(QUIVER__OFFLINE_STORE="$work/snapshots-bad" timeout 120 "$q" --repo "$repo" $what 2>&1)"; then
    echo "$what succeeded with no scheduler" >&2
    exit 1
  fi
  echo "$out" | grep -q "Ballista scheduler" || { echo "$what: the error does not name the scheduler: $out" >&2; exit 1; }
done
echo "with no scheduler, windowed aggregations, latest values (snapshot), drift and check fail naming it"
echo "cluster: all good"
