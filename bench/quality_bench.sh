#!/usr/bin/env bash
# Data-quality benchmark against Great Expectations 1.x (pandas): 10M synthetic events with
# known faults (bench/quality_bench.py), the nine checks of the README's example in one
# `quiver check` (one scan) and the same checks in Great Expectations, in one run; wall time and
# peak RSS from /usr/bin/time -v, and each check's verdict and failing-row count compared.
#   bench/quality_bench.sh [ROWS]            (default 10000000)
# QUIVER_PROFILE=release|bench-fast|dev picks the build (default bench-fast).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
profile="${QUIVER_PROFILE:-bench-fast}"
rows="${1:-10000000}"
cargo build --profile "$profile" -p quiver-cli
dir="$profile"; [ "$profile" = dev ] && dir=debug
q="$CARGO_TARGET_DIR/$dir/quiver"
py="$(ci/quality-venv.sh)"
work="$CARGO_TARGET_DIR/bench-quality"
mkdir -p "$work/repo/data" "$work/repo/features"
data="$work/repo/data/events.parquet"
if [ ! -s "$data" ] || [ "$(cat "$work/rows" 2>/dev/null)" != "$rows" ]; then
  echo "== generating $rows events"
  "$py" bench/quality_bench.py generate "$data" "$rows"
  echo "$rows" > "$work/rows"
fi
cat > "$work/repo/quiver.yaml" <<'YAML'
project: quality_bench
entities:
  - {name: user, join_keys: [user_id]}
sources:
  - {name: events, type: parquet, path: data/events.parquet, timestamp_field: event_timestamp}
feature_views:
  - name: spend
    entities: [user]
    source: events
    features:
      - {name: amount, type: float64}
      - {name: event_type, type: string}
YAML
cat > "$work/repo/features/quality.yaml" <<'YAML'
quality:
  - name: events_checks
    source: events
    checks:
      - {type: schema}
      - {type: not_null, columns: [user_id, event_type]}
      - {type: null_share, column: amount, max: 0.05}
      - {type: range, column: amount, min: 0, max: 10000}
      - {type: allowed_values, column: event_type, values: [view, add_to_cart, purchase]}
      - {type: unique, columns: [event_id]}
      - {type: freshness, max_age: 5m}
      - {type: volume, every: 1h, lookback: 14d, max_z: 4}
      - {type: sql, expr: "amount > 0 OR event_type <> 'purchase'", max_failing_share: 0}
YAML
rm -rf "$work/repo/.quiver"
"$q" --repo "$work/repo" -q apply
echo "== quiver check (nine checks, one scan)"
set +e
/usr/bin/time -v "$q" --repo "$work/repo" --json check --as-of 2025-06-30 > "$work/quiver.json" 2> "$work/quiver.time"
set -e
echo "== Great Expectations (pandas)"
/usr/bin/time -v "$py" -W ignore bench/quality_bench.py ge "$data" "$work/ge.json" > /dev/null 2> "$work/ge.time"
"$py" - "$work" <<'PY'
import json, re, sys
work = sys.argv[1]
def timed(name):
    t = open(f"{work}/{name}.time").read()
    wall = re.search(r"Elapsed \(wall clock\) time.*: (.*)", t).group(1)
    parts = [float(p) for p in wall.split(":")]
    secs = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1024
    return secs, rss
q = json.load(open(f"{work}/quiver.json"))
g = json.load(open(f"{work}/ge.json"))
qs, qm = timed("quiver")
gs, gm = timed("ge")
print(f"rows: {g['rows']:,}   Great Expectations {g['great_expectations']}")
print(f"{'check':16} {'quiver':>8} {'failing rows':>13} {'GE':>8} {'unexpected':>11}")
count_key = {"not_null": "null_rows", "null_share": "null_rows", "range": "out_of_range_rows",
             "allowed_values": "other_rows", "unique": "duplicate_rows", "sql": "failing_rows"}
agree = True
for r in q["results"]:
    t = r["type"]
    ge_r = g["results"][t]
    qpass = r["status"] == "pass"
    n = r["observed"].get(count_key.get(t, ""), "")
    extra = f"z {ge_r['z']:.2f} / {r['observed']['z']:.2f}" if t == "volume" else ge_r.get("unexpected_count", "")
    print(f"{t:16} {r['status']:>8} {str(n):>13} {'pass' if ge_r['success'] else 'fail':>8} {str(extra):>11}")
    agree &= qpass == ge_r["success"]
print(f"verdicts equal: {agree}")
print(f"quiver check: {qs:.2f} s, peak RSS {qm:.0f} MB")
print(f"Great Expectations (read {g['read_seconds']:.2f} s + validate): {gs:.2f} s, peak RSS {gm:.0f} MB")
print(f"speed-up {gs / qs:.1f}x, memory {gm / qm:.1f}x less")
PY
