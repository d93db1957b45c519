"""The Python package against Feast: the 10M x 1M point-in-time benchmark into pandas.

usage: python bench/python_bench.py OUTDIR [N_FEATURE_ROWS N_ENTITY_ROWS] [--repeat R]

Run by bench/python_bench.sh in the Feast peer venv with the quiver-fs wheel installed (an
optimized build). Each side runs in its own process, so its peak RSS is its own:
1. ../shared/anchors/feast_pit.py writes features.parquet and entities.parquet and times Feast
   0.67's `get_historical_features(...).to_df()` (duckdb offline store), its own figure.
2. A child process times `quiver.FeatureStore(repo).get_historical_features(entity_df, ...)`
   where entity_df is the same entities as a pandas DataFrame (read before the clock starts,
   as Feast's is) and the result is a pandas DataFrame (what a notebook gets).
3. Every value is compared with Feast's (sorted by key, time and values: Feast reorders rows).
--repeat R (default 3) runs the pair R times in turn and prints the median ratio: this
machine's speed drifts by a third within minutes.
"""
import os, sys, time

import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import run, write_stats_repo  # noqa: E402

here = os.path.dirname(os.path.abspath(__file__))
anchors = os.path.normpath(os.path.join(here, "..", "..", "shared", "anchors"))
args = sys.argv[1:]
repeat = 3
if "--repeat" in args:
    i = args.index("--repeat")
    repeat = max(1, int(args[i + 1]))
    del args[i:i + 2]
if args and args[0] == "--child":
    # The Quiver side, alone in this process: timed from the call to the pandas frame.
    import quiver
    repo, entities, result = args[1:4]
    ent = pd.read_parquet(entities)
    store = quiver.FeatureStore(repo)
    t = time.perf_counter()
    df = store.get_historical_features(ent, features=[f"stats:f{i}" for i in range(5)])
    dt = time.perf_counter() - t
    assert isinstance(df, pd.DataFrame), type(df)
    df.to_parquet(result, index=False)
    print(f"quiver rows_out={len(df)} seconds={dt:.3f}")
    sys.exit(0)

out = os.path.abspath(args[0])
n_feat = int(args[1]) if len(args) > 1 else 10_000_000
n_ent = int(args[2]) if len(args) > 2 else 1_000_000
os.makedirs(out, exist_ok=True)


def quiver_repo(path, features_file):
    write_stats_repo(path, features_file)
    import quiver
    quiver.FeatureStore(path).apply()


repo = f"{out}/quiver_repo"
pairs = []
for r in range(1, repeat + 1):
    print(f"== pair {r}/{repeat}: Feast duckdb, then the quiver package: {n_feat:,} feature rows x {n_ent:,} entity rows")
    f_wall, f_rss, f_out = run([sys.executable, "-W", "ignore", f"{anchors}/feast_pit.py", out, str(n_feat), str(n_ent), "duckdb"])
    f_secs = float(f_out.strip().split("seconds=")[-1])
    print(f"feast: get_historical_features().to_df() {f_secs:.2f} s (peak RSS of the whole script, data generation included: {f_rss:,.0f} MiB)")
    if r == 1:
        quiver_repo(repo, f"{out}/features.parquet")
    q_wall, q_rss, q_out = run([sys.executable, "-W", "ignore", __file__, "--child", repo, f"{out}/entities.parquet", f"{out}/quiver_result.parquet"])
    q_secs = float(q_out.strip().split("seconds=")[-1])
    print(f"quiver: get_historical_features() into pandas {q_secs:.2f} s (process {q_wall:.1f} s with imports and reading the entities), peak RSS {q_rss:,.0f} MiB")
    print(f"pair {r}: {f_secs / q_secs:.1f}x")
    pairs.append((f_secs, q_secs, f_rss, q_rss))

cols = ["user_id", "event_timestamp", "f0", "f1", "f2", "f3", "f4"]
fr = pd.read_parquet(f"{out}/feast_result_duckdb.parquet")[cols]
qr = pd.read_parquet(f"{out}/quiver_result.parquet")[cols]
fr["event_timestamp"] = pd.to_datetime(fr["event_timestamp"], utc=True)
qr["event_timestamp"] = pd.to_datetime(qr["event_timestamp"], utc=True)
assert len(fr) == len(qr) == n_ent, (len(fr), len(qr), n_ent)
fr = fr.sort_values(cols, na_position="first").reset_index(drop=True)
qr = qr.sort_values(cols, na_position="first").reset_index(drop=True)
diff = 0
for c in cols:
    a, b = fr[c], qr[c]
    diff += int((~(a.isna() & b.isna()) & (a != b)).sum())
print(f"values: {len(qr) * 5:,} compared, {diff} differ")
ratios = sorted(f / q for f, q, _, _ in pairs)
print("pairs: " + ", ".join(f"Feast {f:.2f} s / quiver {q:.2f} s = {f / q:.1f}x" for f, q, _, _ in pairs))
print(f"speedup: median {ratios[len(ratios) // 2]:.1f}x (min {ratios[0]:.1f}x, max {ratios[-1]:.1f}x); "
      f"peak RSS quiver {max(p[3] for p in pairs):,.0f} MiB vs Feast {max(p[2] for p in pairs):,.0f} MiB "
      f"(ratio {max(p[3] for p in pairs) / max(p[2] for p in pairs):.2f})")
if diff:
    sys.exit(1)
