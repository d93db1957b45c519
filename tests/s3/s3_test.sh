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
# bucket and an unsupported scheme must fail naming the source and the URL.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
q="$(realpath "${1:?usage: tests/s3/s3_test.sh QUIVER_BINARY}")"
py="$("$root/ci/s3-venv.sh")"
work="$(mktemp -d -p "${QUIVER_SCRATCH:-${TMPDIR:-/tmp}}" s3-test.XXXXXX)"
moto=""
cleanup() {
  if [ -n "$moto" ]; then
    kill "$moto" 2>/dev/null || true
    wait "$moto" 2>/dev/null || true
  fi
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
# Another machine: the S3 repository's registry and online store, no model files of its own.
serving_repo="$work/serving"
mkdir -p "$serving_repo"
cp -r "$remote_repo/quiver.yaml" "$remote_repo/features" "$remote_repo/.quiver" "$serving_repo/"
rm -rf "$serving_repo/.quiver/artifacts"
serve_and_read "$serving_repo" "$work/serving-online.json"
[ -f "$(ls -d "$serving_repo"/.quiver/artifacts/models/churn_s3/*/ | head -n1)model.json" ] \
  || { echo "the serving repository did not fetch churn_s3's files from S3" >&2; exit 1; }

"$py" - "$work" <<'PY'
import json, os, sys
import pyarrow.parquet as pq
w = sys.argv[1]
a, b = pq.read_table(f"{w}/local.parquet"), pq.read_table(f"{w}/remote.parquet")
if a.num_rows == 0 or not a.equals(b):
    sys.exit(f"historical differs between local files and S3: {a.num_rows} vs {b.num_rows} rows")
import boto3
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
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
