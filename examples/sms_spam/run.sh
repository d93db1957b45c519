#!/usr/bin/env bash
# The SMS spam example, end to end, in one command:
#   examples/sms_spam/run.sh [QUIVER_BINARY] [WORK_DIR] [LIMIT]
# generates the tables from the real SMS Spam Collection subset, applies the definitions,
# builds the training set (historical retrieval), trains a logistic regression on the text
# statistics and registers it as `spam` (champion), materializes the stored messages' statistics,
# starts the server and scores two new messages sent as request data. Prints test precision,
# recall and ROC-AUC; exits non-zero if the model is not clearly better than chance or the
# server's answers are wrong. Needs python3 (standard library only) and curl.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
q="${1:-quiver}"
work="${2:-$(mktemp -d)}"
limit="${3:-}"
mkdir -p "$work"
cp -r "$here/quiver.yaml" "$here/features" "$work/"
python3 "$here/generate.py" "$here/data/sms_spam_collection_subset.tsv" "$work/data" $limit
"$q" --repo "$work" apply
"$q" --repo "$work" -q historical --entities "$work/data/labels.csv" --service spam_v1 \
  --out "$work/train.parquet"
"$q" --repo "$work" --json train --service spam_v1 --labels "$work/data/labels.csv" \
  --label is_spam --model logistic --name spam --promote champion > "$work/train.json"
python3 - "$work/train.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
print(f"test: precision {m['precision']:.3f}  recall {m['recall']:.3f}  ROC-AUC {m['roc_auc']:.3f}  "
      f"accuracy {m['accuracy']:.3f}  ({m['n_rows']} test messages)")
if m["roc_auc"] < 0.85:
    sys.exit(f"ROC-AUC {m['roc_auc']:.3f}: the text statistics should separate spam far better")
PY
"$q" --repo "$work" -q materialize 2000-01-01 now
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$q" --repo "$work" -q serve --port "$port" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/health" && break; sleep 0.1; done
echo "== stored message 2, statistics from the online store"
curl -s -X POST "http://127.0.0.1:$port/get-online-features" \
  -d '{"features": ["message_stats:length", "message_stats:spam_words"], "entities": {"message_id": [2]}}'
echo
echo "== two new messages, scored from their text (request data)"
answer="$(curl -s -X POST "http://127.0.0.1:$port/predict" -d '{
  "model": "spam",
  "entities": {"message_id": [900001, 900002]},
  "request_data": {"text": ["WINNER!! You have won a FREE prize. Call 09061701461 now to claim your CASH award!",
                            "Are we still meeting for lunch tomorrow? I can pick you up at noon."]}}')"
echo "$answer"
python3 - "$answer" <<'PY'
import json, sys
p = json.loads(sys.argv[1])["predictions"]
spam, ham = p[0]["score"], p[1]["score"]
print(f"spam-like message: {spam:.3f}, ordinary message: {ham:.3f}")
if not (spam > 0.5 > ham):
    sys.exit("the spam-like message should score above 0.5 and the ordinary one below")
PY
