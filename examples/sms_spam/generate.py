"""Turns the SMS Spam Collection subset (label<TAB>text, no header) into the example's tables,
giving each message an id and an event time, as a Feast user would before registering it:

  messages.csv  message_id, event_timestamp, text             (the source of `message_stats`)
  labels.csv    message_id, event_timestamp, text, is_spam    (label rows for `quiver train`)

Message i is received at 2025-01-01 00:00 UTC + i * 7 minutes (deterministic).
usage: generate.py SMS.tsv OUT_DIR [LIMIT]
"""

import csv
import datetime
import os
import sys

src, out = sys.argv[1], sys.argv[2]
limit = int(sys.argv[3]) if len(sys.argv) > 3 else None
os.makedirs(out, exist_ok=True)
start = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
rows = []
with open(src, encoding="utf-8") as f:
    for i, line in enumerate(f):
        label, _, text = line.rstrip("\n").partition("\t")
        if label not in ("ham", "spam"):
            sys.exit(f"{src} line {i + 1}: label {label!r} is neither ham nor spam")
        ts = (start + datetime.timedelta(minutes=7 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows.append((i + 1, ts, text, int(label == "spam")))
        if limit and len(rows) >= limit:
            break
with open(os.path.join(out, "messages.csv"), "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    w.writerow(["message_id", "event_timestamp", "text"])
    w.writerows(r[:3] for r in rows)
with open(os.path.join(out, "labels.csv"), "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    w.writerow(["message_id", "event_timestamp", "text", "is_spam"])
    w.writerows(rows)
print(f"{len(rows)} messages ({sum(r[3] for r in rows)} spam) -> {out}")
