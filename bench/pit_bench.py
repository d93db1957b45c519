"""Point-in-time retrieval: Quiver vs Feast (duckdb offline store), same files, same run.

usage: python bench/pit_bench.py QUIVER_BIN OUTDIR [N_FEATURE_ROWS N_ENTITY_ROWS] [--repeat R] [--big N]

1. Runs ../shared/anchors/feast_pit.py OUTDIR N_FEAT N_ENT duckdb: it writes features.parquet and
   entities.parquet and times Feast's get_historical_features (its own figure).
2. Runs `quiver historical` on the same files, timing the whole process (read, join, write).
3. Checks that every value equals Feast's (as multisets per (user_id, event_timestamp): Feast
   reorders rows) and prints wall time and peak RSS of each side.
--repeat R (default 3) runs the pair (Feast, then Quiver) R times in turn and prints each pair's
ratio and their median: this machine's speed drifts by a third within minutes, so one ratio
says as much about the moment as about the two programs; a pair measured back to back does not.
--big N additionally writes an N-row feature table in chunks and times Quiver alone on it
(memory stays bounded: the join streams the feature table).
"""
import os, sys

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import run, write_stats_repo  # noqa: E402

here = os.path.dirname(os.path.abspath(__file__))
anchors = os.path.normpath(os.path.join(here, "..", "..", "shared", "anchors"))
args = [a for a in sys.argv[1:]]
big = None
repeat = 3
if "--repeat" in args:
    i = args.index("--repeat")
    repeat = max(1, int(args[i + 1]))
    del args[i:i + 2]
if "--big" in args:
    i = args.index("--big")
    big = int(args[i + 1])
    del args[i:i + 2]
quiver, out = args[0], os.path.abspath(args[1])
n_feat = int(args[2]) if len(args) > 2 else 10_000_000
n_ent = int(args[3]) if len(args) > 3 else 1_000_000
os.makedirs(out, exist_ok=True)


def quiver_repo(path, features_file):
    write_stats_repo(path, features_file)
    run([quiver, "--repo", path, "--quiet", "apply"])


repo = f"{out}/quiver_repo"
pairs = []
for r in range(1, repeat + 1):
    print(f"== pair {r}/{repeat}: Feast duckdb, then Quiver: {n_feat:,} feature rows x {n_ent:,} entity rows")
    f_wall, f_rss, f_out = run([sys.executable, "-W", "ignore", f"{anchors}/feast_pit.py", out, str(n_feat), str(n_ent), "duckdb"])
    f_secs = float(f_out.strip().split("seconds=")[-1])
    print(f"feast: get_historical_features {f_secs:.2f} s (whole script incl. data generation {f_wall:.1f} s, peak RSS {f_rss:,.0f} MiB)")
    if r == 1:
        quiver_repo(repo, f"{out}/features.parquet")
    q_wall, q_rss, _ = run([quiver, "--repo", repo, "--quiet", "historical", "--entities", f"{out}/entities.parquet",
                            "--features", "stats:f0,stats:f1,stats:f2,stats:f3,stats:f4", "--out", f"{out}/quiver_result.parquet"])
    print(f"quiver: historical {q_wall:.2f} s (whole process: read, join, write), peak RSS {q_rss:,.0f} MiB")
    print(f"pair {r}: {f_secs / q_wall:.1f}x")
    pairs.append((f_secs, q_wall, f_rss, q_rss))

# Values: Feast reorders rows; compare sorted by key, time and values.
cols = ["user_id", "event_timestamp", "f0", "f1", "f2", "f3", "f4"]
fr = pd.read_parquet(f"{out}/feast_result_duckdb.parquet")[cols]
qr = pd.read_parquet(f"{out}/quiver_result.parquet")[cols]
fr["event_timestamp"] = pd.to_datetime(fr["event_timestamp"], utc=True)
qr["event_timestamp"] = pd.to_datetime(qr["event_timestamp"], utc=True)
assert len(fr) == len(qr) == n_ent, (len(fr), len(qr), n_ent)
key = cols
fr = fr.sort_values(key, na_position="first").reset_index(drop=True)
qr = qr.sort_values(key, na_position="first").reset_index(drop=True)
diff = 0
for c in cols:
    a, b = fr[c], qr[c]
    both_null = a.isna() & b.isna()
    diff += int((~both_null & (a != b)).sum())
matched = int(qr["f0"].notna().sum())
print(f"values: {len(qr) * 5:,} compared, {diff} differ ({matched:,} rows matched a feature row)")
ratios = sorted(f / q for f, q, _, _ in pairs)
print("pairs: " + ", ".join(f"Feast {f:.2f} s / Quiver {q:.2f} s = {f / q:.1f}x" for f, q, _, _ in pairs))
print(f"speedup: median {ratios[len(ratios) // 2]:.1f}x faster than Feast duckdb over {len(pairs)} pair(s) "
      f"(min {ratios[0]:.1f}x, max {ratios[-1]:.1f}x); peak RSS {max(p[3] for p in pairs):,.0f} MiB vs {max(p[2] for p in pairs):,.0f} MiB")
if diff:
    sys.exit(1)

if big:
    print(f"== Quiver alone: {big:,} feature rows x {n_ent:,} entity rows")
    import pyarrow as pa, pyarrow.parquet as pq
    path = f"{out}/big_features.parquet"
    if not os.path.exists(path):
        rng = np.random.default_rng(7)
        n_users = max(1000, big // 100)
        t0 = np.datetime64("2025-01-01T00:00:00", "us")
        writer = None
        chunk = 10_000_000
        for start in range(0, big, chunk):
            n = min(chunk, big - start)
            ts = t0 + rng.integers(0, 180 * 86400, n).astype("timedelta64[s]")
            tbl = pa.table({
                "user_id": rng.integers(0, n_users, n, dtype=np.int64),
                "event_timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
                "created": pa.array(ts + rng.integers(0, 3600, n).astype("timedelta64[s]"), pa.timestamp("us", tz="UTC")),
                **{f"f{i}": rng.normal(size=n) for i in range(5)},
            })
            writer = writer or pq.ParquetWriter(path, tbl.schema)
            writer.write_table(tbl, row_group_size=1 << 20)
        writer.close()
        ent = pd.DataFrame({"user_id": rng.integers(0, n_users, n_ent, dtype=np.int64),
                            "event_timestamp": pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 190 * 86400, n_ent), unit="s")})
        ent.to_parquet(f"{out}/big_entities.parquet", index=False)
    repo = f"{out}/quiver_big"
    quiver_repo(repo, path)
    b_wall, b_rss, _ = run([quiver, "--repo", repo, "--quiet", "historical", "--entities", f"{out}/big_entities.parquet",
                            "--features", "stats:f0,stats:f1,stats:f2,stats:f3,stats:f4", "--out", f"{out}/quiver_big.parquet"])
    print(f"quiver big: {big:,} x {n_ent:,} in {b_wall:.1f} s, peak RSS {b_rss:,.0f} MiB")
