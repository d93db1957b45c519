#!/usr/bin/env bash
# Sources and entity files in object storage, against a local S3 server:
#   tests/s3/s3_test.sh QUIVER_BINARY
# starts moto's S3 server (ci/s3-venv.sh) on a loopback port, uploads the churn demo's Parquet
# files to s3://quiver-test/data/, and runs the same repository twice: once on the local files
# and once with every source at its s3:// URL (credentials and endpoint from the AWS_*
# variables). `apply`, `historical` (entities read from S3 too), `train` (labels from S3),
# `materialize` and the online reads after it must give equal values, and `historical --out
# s3://...` must upload the same file. The S3 repository keeps its model files in the bucket too
# (`artifacts: s3://quiver-test/artifacts`): a third repository with the same registry and online
# store but no local model files serves `/predict` from them, equal to the local run. A missing
# bucket and an unsupported scheme must fail naming the source and the URL. Offline snapshots
# (`offline_store: s3://...`) are written to the bucket and read back by `historical`, and a
# served repository's prediction log (`server: {prediction_log: {path: s3://...}}`) goes there
# and is read back by `consistency --log` and `drift`, with the endpoint given by
# `storage: {endpoint}` in quiver.yaml instead of AWS_ENDPOINT_URL. MLflow runs whose artifact
# location is in the bucket get the version's files written there.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
q="$(realpath "${1:?usage: tests/s3/s3_test.sh QUIVER_BINARY}")"
py="$("$root/ci/s3-venv.sh")"
work="$(mktemp -d -p "${QUIVER_SCRATCH:-${TMPDIR:-/tmp}}" s3-test.XXXXXX)"
moto=""
mlflow=""
cleanup() {
  for p in $mlflow $moto; do
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$work" || true
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$py" -m moto.server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto=$!
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port" && break; sleep 0.1; done
export AWS_ACCESS_KEY_ID=quiver-test AWS_SECRET_ACCESS_KEY=quiver-test AWS_REGION=us-east-1
export AWS_ENDPOINT_URL="http://127.0.0.1:$port"

local_repo="$work/local"
"$q" -q demo run --dir "$local_repo" --users 300 >/dev/null
"$py" - "$local_repo/data" <<'PY'
import os, sys, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
s3.create_bucket(Bucket="quiver-test")
for name in sorted(os.listdir(sys.argv[1])):
    if name.endswith(".parquet"):
        s3.upload_file(os.path.join(sys.argv[1], name), "quiver-test", f"data/{name}")
print("uploaded:", [o["Key"] for o in s3.list_objects_v2(Bucket="quiver-test")["Contents"]])
PY

# The same definitions with every source in the bucket, and no local data at all.
remote_repo="$work/remote"
mkdir -p "$remote_repo"
cp -r "$local_repo/quiver.yaml" "$local_repo/features" "$remote_repo/"
sed -i 's#path: data/#path: s3://quiver-test/data/#' "$remote_repo/quiver.yaml"
grep -q 's3://quiver-test/data/events.parquet' "$remote_repo/quiver.yaml"
echo "artifacts: s3://quiver-test/artifacts" >> "$remote_repo/quiver.yaml"

"$q" --repo "$remote_repo" -q apply
for side in local remote; do
  repo="$work/$side"
  labels="$local_repo/data/labels.parquet"
  [ "$side" = remote ] && labels="s3://quiver-test/data/labels.parquet"
  "$q" --repo "$repo" -q historical --service churn_v1 --entities "$labels" --out "$work/$side.parquet"
  [ "$side" = remote ] && "$q" --repo "$repo" -q historical --service churn_v1 --entities "$labels" \
    --out "s3://quiver-test/out/train.parquet"
  "$q" --repo "$repo" --json train --service churn_v1 --labels "$labels" --label churned \
    --name churn_s3 > "$work/$side-train.json"
  "$q" --repo "$repo" -q online clear
  "$q" --repo "$repo" -q materialize 2000-01-01 2025-06-30
done

serve_and_read() {
  local repo="$1" out="$2" p
  p="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  "$q" --repo "$repo" -q serve --port "$p" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$p/health" && break; sleep 0.1; done
  curl -s -X POST "http://127.0.0.1:$p/get-online-features" \
    -d "{\"feature_service\": \"churn_v1\", \"entities\": {\"user_id\": [$(seq -s, 1 50)]}}" > "$out"
  curl -s -X POST "http://127.0.0.1:$p/predict" \
    -d "{\"model\": \"churn_s3\", \"version\": 1, \"entities\": {\"user_id\": [$(seq -s, 1 50)]}}" > "${out%.json}-predict.json"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}
serve_and_read "$local_repo" "$work/local-online.json"
serve_and_read "$remote_repo" "$work/remote-online.json"

# From here on the endpoint comes from `storage:` in quiver.yaml alone, and the S3 repository
# keeps its offline snapshots in the bucket too.
endpoint="$AWS_ENDPOINT_URL"
unset AWS_ENDPOINT_URL
printf 'offline_store: s3://quiver-test/offline\nstorage: {endpoint: "%s", region: us-east-1}\n' \
  "$endpoint" >> "$remote_repo/quiver.yaml"
as_of=2025-06-01T00:00:00Z
"$q" --repo "$remote_repo" --json snapshot --service churn_v1 --as-of "$as_of" > "$work/snapshot.json"
"$py" - "$work/entities.parquet" "$as_of" <<'PY'
import sys, datetime, pyarrow as pa, pyarrow.parquet as pq
at = datetime.datetime.fromisoformat(sys.argv[2].replace("Z", "+00:00"))
pq.write_table(pa.table({"user_id": pa.array(range(1, 51), pa.int64()),
                         "event_timestamp": pa.array([at] * 50, pa.timestamp("us", tz="UTC"))}),
               sys.argv[1])
PY
"$q" --repo "$local_repo" -q historical --service churn_v1 --entities "$work/entities.parquet" \
  --no-snapshots --out "$work/at-local.parquet"
"$q" --repo "$remote_repo" -q historical --service churn_v1 --entities "$work/entities.parquet" \
  --out "$work/at-snapshot.parquet"
# Read from the bucket, not recomputed: a user's value of one feature, changed in its snapshot
# file in S3, is what historical then returns.
"$py" - "$work" "$endpoint" <<'PY'
import io, json, sys, boto3, pyarrow as pa, pyarrow.parquet as pq, pyarrow.compute as pc
w, endpoint = sys.argv[1], sys.argv[2]
a, b = pq.read_table(f"{w}/at-local.parquet"), pq.read_table(f"{w}/at-snapshot.parquet")
if a.num_rows != 50 or not a.equals(b):
    sys.exit(f"historical from snapshots in S3 differs from the local recompute:\n{a.slice(0, 3)}\n{b.slice(0, 3)}")
snaps = json.load(open(f"{w}/snapshot.json"))["snapshots"]
s3 = boto3.client("s3", endpoint_url=endpoint)
keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="quiver-test", Prefix="offline/")["Contents"])
for s in snaps:
    if not s["path"].startswith("s3://quiver-test/offline/"):
        sys.exit(f"snapshot not written to the bucket: {s}")
    part = s["path"][len("s3://quiver-test/"):]
    if part not in keys or part.replace("part-0.parquet", "_SUCCESS") not in keys:
        sys.exit(f"{part} or its _SUCCESS marker is not in the bucket: {keys}")
# user_purchases declares `offline: {snapshots: daily}`: historical reads it from its snapshots.
snap = next(s for s in snaps if s["view"] == "user_purchases")
key = snap["path"][len("s3://quiver-test/"):]
t = pq.read_table(io.BytesIO(s3.get_object(Bucket="quiver-test", Key=key)["Body"].read()))
users, counts = t["user_id"].to_pylist(), t["purchase_count_30d"].to_pylist()
row = next(r for r, u in enumerate(users) if 1 <= u <= 50)
open(f"{w}/changed-user", "w").write(str(users[row]))
i = t.schema.get_field_index("purchase_count_30d")
counts[row] = 999
t = t.set_column(i, t.schema.field(i), pa.array(counts, t.schema.field(i).type))
buf = io.BytesIO(); pq.write_table(t, buf)
s3.put_object(Bucket="quiver-test", Key=key, Body=buf.getvalue())
print(f"{len(snaps)} snapshots in S3 ({len(keys)} objects); historical at their time equals the local recompute")
PY
"$q" --repo "$remote_repo" -q historical --service churn_v1 --entities "$work/entities.parquet" \
  --out "$work/at-changed.parquet"
"$py" - "$work" <<'PY'
import sys, pyarrow.parquet as pq
w = sys.argv[1]
t = pq.read_table(f"{w}/at-changed.parquet")
user = int(open(f"{w}/changed-user").read())
col = next(c for c in t.column_names if c.endswith("purchase_count_30d"))
counts = dict(zip(t["user_id"].to_pylist(), t[col].to_pylist()))
if counts[user] != 999:
    sys.exit(f"historical did not read user {user}'s purchase_count_30d from the snapshot in S3: {counts[user]}")
print(f"user {user}'s purchase_count_30d changed in the S3 snapshot is what historical returns")
PY

# Another machine: the S3 repository's registry and online store, no model files of its own;
# its prediction log goes to the bucket.
serving_repo="$work/serving"
mkdir -p "$serving_repo"
cp -r "$remote_repo/quiver.yaml" "$remote_repo/features" "$remote_repo/.quiver" "$serving_repo/"
rm -rf "$serving_repo/.quiver/artifacts" "$serving_repo/.quiver/prediction_log"
printf 'server:\n  prediction_log: {path: s3://quiver-test/predlog, flush_interval_ms: 200}\n' \
  >> "$serving_repo/quiver.yaml"
serve_and_read "$serving_repo" "$work/serving-online.json"
[ ! -e "$serving_repo/.quiver/prediction_log" ] \
  || { echo "the prediction log was written locally, not to S3" >&2; exit 1; }
"$q" --repo "$serving_repo" --json consistency --log "churn_s3@2000-01-01..2100-01-01" \
  > "$work/log-consistency.json"
"$q" --repo "$serving_repo" --json drift --reference model:churn_s3 \
  --current "log:churn_s3@2000-01-01..2100-01-01" --features user_profile__age > "$work/log-drift.json"
"$py" - "$work" "$endpoint" <<'PY'
import json, sys, boto3
w, endpoint = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=endpoint)
keys = [o["Key"] for o in s3.list_objects_v2(Bucket="quiver-test", Prefix="predlog/").get("Contents", [])]
if not any(k.startswith("predlog/model=churn_s3/version=1/date=") and k.endswith(".parquet") for k in keys):
    sys.exit(f"no prediction log file in S3: {keys}")
c = json.load(open(f"{w}/log-consistency.json"))
logged = sum(v["logged"] for v in c["versions"])
d = json.load(open(f"{w}/log-drift.json"))
age = next(f for f in d["features"] if f["name"] == "user_profile__age")
if logged != 50 or age["current_rows"] != 50:
    sys.exit(f"the prediction log in S3 was not read back whole: consistency {logged} rows, drift {age['current_rows']}")
print(f"prediction log in S3 ({len(keys)} files): 50 predictions read back by consistency and drift")
PY
[ -f "$(ls -d "$serving_repo"/.quiver/artifacts/models/churn_s3/*/ | head -n1)model.json" ] \
  || { echo "the serving repository did not fetch churn_s3's files from S3" >&2; exit 1; }

"$py" - "$work" "$endpoint" <<'PY'
import json, os, sys
import pyarrow.parquet as pq
w = sys.argv[1]
a, b = pq.read_table(f"{w}/local.parquet"), pq.read_table(f"{w}/remote.parquet")
if a.num_rows == 0 or not a.equals(b):
    sys.exit(f"historical differs between local files and S3: {a.num_rows} vs {b.num_rows} rows")
import boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[2])
s3.download_file("quiver-test", "out/train.parquet", f"{w}/uploaded.parquet")
if not pq.read_table(f"{w}/uploaded.parquet").equals(a):
    sys.exit("historical --out s3://... differs from the local output")
ma, mb = (json.load(open(f"{w}/{s}-train.json"))["metrics"] for s in ("local", "remote"))
if ma != mb:
    sys.exit(f"training on S3 gave other metrics: {ma} vs {mb}")
oa, ob = (json.load(open(f"{w}/{s}-online.json")) for s in ("local", "remote"))
# Values and statuses (a request-time feature's timestamp is the moment of the request).
def cells(r):
    return [(x["values"], x["statuses"]) for x in r["results"]]
present = sum(s == "PRESENT" for r in oa["results"][1:] for s in r["statuses"])
if present == 0 or cells(oa) != cells(ob):
    diff = [(i, x, y) for i, (x, y) in enumerate(zip(cells(oa), cells(ob))) if x != y]
    sys.exit(f"online values after materializing from S3 differ from the local run's: {str(diff[:2])[:1500]}")
keys = [o["Key"] for o in s3.list_objects_v2(Bucket="quiver-test", Prefix="artifacts/")["Contents"]]
if not any(k.startswith("artifacts/models/churn_s3/") and k.endswith("/model.json") for k in keys):
    sys.exit(f"train did not upload churn_s3's model files: {keys}")
pa_, pb, pc = (json.load(open(f"{w}/{s}-online-predict.json")) for s in ("local", "remote", "serving"))
scores = lambda r: [p["score"] for p in r["predictions"]]
if len(scores(pa_)) != 50 or not (scores(pa_) == scores(pb) == scores(pc)):
    sys.exit(f"/predict differs: local {str(pa_)[:300]} / S3 {str(pb)[:300]} / served from S3 artifacts {str(pc)[:300]}")
print(f"S3 equals local files: historical {a.num_rows} rows x {a.num_columns} columns (also written to S3), "
      f"train ROC-AUC {ma['roc_auc']:.4f}, {present} present online values of 50 users, "
      f"{len(keys)} artifact files in S3, /predict of 50 users equal from a repository with no local model files")
PY

# MLflow runs whose artifact location is in the bucket (a tracking server started with
# `--default-artifact-root s3://...` and no artifact proxy): `models track` writes the version's
# files there directly, as MLflow's own clients do.
mlpy="$("$root/ci/ml-venv.sh")"
mport="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$(dirname "$mlpy")/mlflow" server --host 127.0.0.1 --port "$mport" \
  --backend-store-uri "sqlite:///$work/mlflow.db" --default-artifact-root s3://quiver-test/mlruns \
  --no-serve-artifacts >"$work/mlflow.log" 2>&1 &
mlflow=$!
for _ in $(seq 1 300); do curl -s -o /dev/null "http://127.0.0.1:$mport/health" && break; sleep 0.2; done
printf 'tracking: {mlflow: "http://127.0.0.1:%s", experiment: s3_test}\n' "$mport" >> "$remote_repo/quiver.yaml"
"$q" --repo "$remote_repo" --json models track churn_s3:1 > "$work/track.json"
"$py" - "$work" "$endpoint" "$remote_repo" <<'PY'
import glob, json, sys, boto3
w, endpoint, repo = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=endpoint)
keys = [o["Key"] for o in s3.list_objects_v2(Bucket="quiver-test", Prefix="mlruns/").get("Contents", [])]
model = [k for k in keys if k.endswith("/artifacts/model/model.json")]
if len(model) != 1 or not any(k.endswith("/artifacts/report.html") for k in keys):
    sys.exit(f"models track did not write the run's artifacts to the bucket: {keys}")
local = open(glob.glob(f"{repo}/.quiver/artifacts/models/churn_s3/*/model.json")[0], "rb").read()
if s3.get_object(Bucket="quiver-test", Key=model[0])["Body"].read() != local:
    sys.exit("the MLflow artifact in S3 differs from the version's model.json")
print(f"MLflow run artifacts in S3: {len(keys)} objects, model.json equal to the version's")
PY

# Bad locations fail naming the source and the URL, and the stored registry is kept.
sed 's#s3://quiver-test/data/users.parquet#s3://no-such-bucket/users.parquet#' \
  "$remote_repo/quiver.yaml" > "$work/bad.yaml"
cp "$work/bad.yaml" "$remote_repo/quiver.yaml"
if out="$("$q" --repo "$remote_repo" apply 2>&1)"; then
  echo "apply with a missing bucket succeeded: $out" >&2
  exit 1
fi
echo "$out" | grep -q "users" && echo "$out" | grep -q "no-such-bucket" \
  || { echo "the error names neither the source nor the bucket: $out" >&2; exit 1; }
sed -i 's#s3://no-such-bucket/users.parquet#gs://quiver-test/data/users.parquet#' "$remote_repo/quiver.yaml"
if out="$("$q" --repo "$remote_repo" apply 2>&1)"; then
  echo "apply with a gs:// source succeeded: $out" >&2
  exit 1
fi
echo "$out" | grep -q "unsupported scheme 'gs://'" \
  || { echo "the error does not name the scheme: $out" >&2; exit 1; }
echo "object storage: all good"
