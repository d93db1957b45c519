"""Point-in-time retrieval matrix: Quiver vs DuckDB's own ASOF JOIN vs Feast 0.67 (duckdb), per shape.

usage: python bench/pit_matrix.py QUIVER_BIN OUTDIR [--shapes a,b,...] [--no-feast] [--repeat R] [--data-only]

Shapes (1M entity rows unless said otherwise; timestamps in microseconds over 180 days, so
that exact (key, time) ties, which the peers break arbitrarily, do not occur):
  dense      1 view, 10M rows, int64 key over 100k dense ids, 5 float64 features, TTL 30 days
  string     1 view, 5M rows, string key (250k distinct ids), 5 float64 features, TTL 30 days
  composite  1 view, 5M rows, string user (50k) + sparse 63-bit int64 merchant, 250k pairs
  three      3 views in one call: dense int (5M rows, TTL 30d), string (5M, TTL 7d),
             composite string + int (5M, TTL 90d)
  wide       1 view, 1M rows x 200 float64 features, 20k int ids; 200k entity rows
  skewed     1 view, 10M rows, 100k int ids, one id holding 10% of feature and entity rows
  big        1 view, 10M rows, 1M int ids; 10M entity rows

Every side reads the same Parquet files and writes a Parquet file. Quiver's time is the whole
`quiver historical` process (start, read, join, write); DuckDB's is read + join + write inside its
process (the SQL of ../shared/anchors/duckdb_asof.py, generalized: one ASOF LEFT JOIN per view,
duplicates on (keys, time) resolved by the created timestamp, the TTL applied by a CASE); Feast's
is its own timing of get_historical_features(...).to_df(). Peak RSS is per process (wait4).
Every value of Quiver's output is compared with DuckDB's (rows matched by an entity row id).
"""
import json, os, subprocess, sys, textwrap, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_common  # noqa: E402

here = os.path.dirname(os.path.abspath(__file__))
args = sys.argv[1:]

DAY = 86_400_000_000  # microseconds
SPAN = 180 * DAY


def opt(name, default=None):
    if name in args:
        i = args.index(name)
        v = args[i + 1]
        del args[i:i + 2]
        return v
    return default


# --------------------------------------------------------------------------------------------
# Sub-commands run in their own process (so that their peak RSS is their own).

def run_duckdb(spec_path):
    import duckdb
    spec = json.load(open(spec_path))
    con = duckdb.connect()
    con.execute("SET threads=2")
    withs, selects, joins = [], [], []
    for i, v in enumerate(spec["views"]):
        keys = ", ".join(v["keys"])
        withs.append(f"f{i} AS (SELECT * FROM '{v['file']}' QUALIFY row_number() OVER "
                     f"(PARTITION BY {keys}, event_timestamp ORDER BY created DESC) = 1)")
        for f in v["features"]:
            if v["ttl_days"]:
                selects.append(f"CASE WHEN f{i}.event_timestamp >= e.event_timestamp - INTERVAL {v['ttl_days']} DAY "
                               f"THEN f{i}.{f} END {f}")
            else:
                selects.append(f"f{i}.{f} {f}")
        on = " AND ".join(f"e.{k} = f{i}.{k}" for k in v["keys"])
        joins.append(f"ASOF LEFT JOIN f{i} ON {on} AND e.event_timestamp >= f{i}.event_timestamp")
    q = (f"COPY (WITH {', '.join(withs)} SELECT e.*, {', '.join(selects)} "
         f"FROM '{spec['entities']}' e {' '.join(joins)}) TO '{spec['dir']}/duck_out.parquet' (FORMAT parquet)")
    t = time.perf_counter()
    con.execute(q)
    print(f"seconds={time.perf_counter() - t:.3f}")


def run_feast(spec_path):
    import warnings
    warnings.filterwarnings("ignore")
    from datetime import timedelta
    import pandas as pd
    from feast import Entity, FeatureView, Field, FileSource, FeatureStore, ValueType
    from feast.types import Float64
    spec = json.load(open(spec_path))
    repo = f"{spec['dir']}/feast_repo"
    os.makedirs(repo, exist_ok=True)
    open(f"{repo}/feature_store.yaml", "w").write(textwrap.dedent(f"""
        project: bench
        registry: {repo}/registry.db
        provider: local
        offline_store:
            type: duckdb
        online_store:
            type: sqlite
            path: {repo}/online.db
        entity_key_serialization_version: 3
    """))
    objs, ents, refs = [], {}, []
    for v in spec["views"]:
        es = []
        for k, t in zip(v["keys"], v["key_types"]):
            if k not in ents:
                ents[k] = Entity(name=k, join_keys=[k],
                                 value_type=ValueType.STRING if t == "string" else ValueType.INT64)
            es.append(ents[k])
        src = FileSource(name=f"{v['name']}_src", path=v["file"], timestamp_field="event_timestamp",
                         created_timestamp_column="created")
        ttl = timedelta(days=v["ttl_days"]) if v["ttl_days"] else timedelta(0)
        objs.append(FeatureView(name=v["name"], entities=es, ttl=ttl, source=src,
                                schema=[Field(name=f, dtype=Float64) for f in v["features"]]))
        refs += [f"{v['name']}:{f}" for f in v["features"]]
    store = FeatureStore(repo_path=repo)
    store.apply(list(ents.values()) + objs)
    ent = pd.read_parquet(spec["entities"])
    t = time.perf_counter()
    df = store.get_historical_features(entity_df=ent, features=refs).to_df()
    dt = time.perf_counter() - t
    df.to_parquet(f"{spec['dir']}/feast_out.parquet", index=False)
    print(f"seconds={dt:.3f}")


if args and args[0] in ("--duckdb", "--feast"):
    (run_duckdb if args[0] == "--duckdb" else run_feast)(args[1])
    sys.exit(0)

# --------------------------------------------------------------------------------------------
# Data.

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

shapes_arg = opt("--shapes", "dense,string,composite,three,wide,skewed,big")
repeat = int(opt("--repeat", "1"))
feast = "--no-feast" not in args
if not feast:
    args.remove("--no-feast")
data_only = "--data-only" in args
if data_only:
    args.remove("--data-only")
quiver, out = args[0], os.path.abspath(args[1])
T0 = np.datetime64("2025-01-01T00:00:00", "us")


def ts_array(us):
    return pa.array(T0 + us.astype("timedelta64[us]"), pa.timestamp("us", tz="UTC"))


def write_features(path, rng, n, keys, features, chunk=2_500_000):
    """`keys(rng, n) -> {name: array}`; `features` float64 columns named as given."""
    if os.path.exists(path):
        return
    writer = None
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        ts = rng.integers(0, SPAN, m)
        cols = dict(keys(rng, m))
        cols["event_timestamp"] = ts_array(ts)
        cols["created"] = ts_array(ts + rng.integers(0, 3_600_000_000, m))
        for f in features:
            cols[f] = rng.normal(size=m)
        tbl = pa.table(cols)
        writer = writer or pq.ParquetWriter(path + ".tmp", tbl.schema)
        writer.write_table(tbl, row_group_size=1 << 20)
    writer.close()
    os.rename(path + ".tmp", path)


def write_entities(path, rng, n, keys):
    if os.path.exists(path):
        return
    cols = {"eid": np.arange(n, dtype=np.int64)}
    cols.update(keys(rng, n))
    cols["event_timestamp"] = ts_array(rng.integers(0, SPAN + 10 * DAY, n))
    pq.write_table(pa.table(cols), path + ".tmp", row_group_size=1 << 20)
    os.rename(path + ".tmp", path)


def dense_ids(n_ids, skew=0.0):
    def keys(rng, m):
        ids = rng.integers(0, n_ids, m, dtype=np.int64)
        if skew:
            ids[rng.random(m) < skew] = 0
        return {"user_id": ids}
    return keys


USER_NAMES = np.array([f"user-{i:07d}-{(i * 2654435761) % 10007:05d}" for i in range(250_000)], dtype=object)


def string_ids(n_ids, col="user_name"):
    def keys(rng, m):
        return {col: pa.array(USER_NAMES[rng.integers(0, n_ids, m)], pa.string())}
    return keys


MERCHANTS = np.random.default_rng(99).integers(1, 2**63 - 1, 5_000, dtype=np.int64)


def composite_ids(n_pairs=250_000):
    # Pair p: user p % 50k, merchant from a fixed pool (sparse 63-bit ids).
    def keys(rng, m):
        p = rng.integers(0, n_pairs, m)
        return {"shopper": pa.array(USER_NAMES[p % 50_000], pa.string()),
                "merchant_id": MERCHANTS[(p * 7919) % len(MERCHANTS)]}
    return keys


def fnames(prefix, n):
    return [f"{prefix}{i}" for i in range(n)]


M = 1_000_000
SHAPES = {
    # name: (entity rows, entity key generator, [views]); a view: (name, rows, keys, key types, key gen, ttl days, features)
    "dense": (M, dense_ids(100_000), [("stats", 10 * M, ["user_id"], ["int64"], dense_ids(100_000), 30, fnames("f", 5))]),
    "string": (M, string_ids(250_000), [("stats", 5 * M, ["user_name"], ["string"], string_ids(250_000), 30, fnames("f", 5))]),
    "composite": (M, composite_ids(), [("stats", 5 * M, ["shopper", "merchant_id"], ["string", "int64"], composite_ids(), 30, fnames("f", 5))]),
    "three": (M, lambda rng, m: {**dense_ids(100_000)(rng, m), **string_ids(250_000)(rng, m), **composite_ids()(rng, m)}, [
        ("users", 5 * M, ["user_id"], ["int64"], dense_ids(100_000), 30, fnames("a", 3)),
        ("names", 5 * M, ["user_name"], ["string"], string_ids(250_000), 7, fnames("b", 3)),
        ("pairs", 5 * M, ["shopper", "merchant_id"], ["string", "int64"], composite_ids(), 90, fnames("c", 3)),
    ]),
    "wide": (200_000, dense_ids(20_000), [("wide", M, ["user_id"], ["int64"], dense_ids(20_000), 30, fnames("w", 200))]),
    "skewed": (M, dense_ids(100_000, 0.1), [("stats", 10 * M, ["user_id"], ["int64"], dense_ids(100_000, 0.1), 30, fnames("f", 5))]),
    "big": (10 * M, dense_ids(M), [("stats", 10 * M, ["user_id"], ["int64"], dense_ids(M), 30, fnames("f", 5))]),
}


def run(cmd):
    """Runs a command; (wall seconds, peak RSS MiB, stdout), or None when it failed (printed)."""
    return bench_common.run(cmd, check=False)


def secs(stdout):
    return float(stdout.strip().split("seconds=")[-1])


def quiver_repo(d, spec):
    ents, views = {}, []
    for v in spec["views"]:
        names = []
        for k, t in zip(v["keys"], v["key_types"]):
            ents[k] = f"  - {{name: {k}, join_keys: [{k}], value_type: {t}}}"
            names.append(k)
        feats = ", ".join(f"{{name: {f}, type: float64}}" for f in v["features"])
        views.append(f"  - {{name: {v['name']}, entities: [{', '.join(names)}], source: {v['name']}_src, "
                     f"ttl: {v['ttl_days']}d, features: [{feats}]}}")
    srcs = "\n".join(f"  - {{name: {v['name']}_src, type: parquet, path: {v['file']}, timestamp_field: event_timestamp, "
                     f"created_timestamp_field: created}}" for v in spec["views"])
    repo = f"{d}/quiver_repo"
    os.makedirs(repo, exist_ok=True)
    open(f"{repo}/quiver.yaml", "w").write("project: bench\nentities:\n" + "\n".join(ents.values()) +
                                           "\nsources:\n" + srcs + "\nfeature_views:\n" + "\n".join(views) + "\n")
    if run([quiver, "--repo", repo, "--quiet", "apply"]) is None:
        sys.exit(1)
    return repo


def compare(d, spec, other):
    feats = [f for v in spec["views"] for f in v["features"]]
    q = pq.read_table(f"{d}/quiver_out.parquet", columns=["eid"] + feats).sort_by("eid")
    o = pq.read_table(f"{d}/{other}", columns=["eid"] + feats).sort_by("eid")
    if q.num_rows != o.num_rows:
        return f"row counts differ: {q.num_rows} vs {o.num_rows}", 0
    diff = 0
    for f in feats:
        a = q.column(f).to_numpy(zero_copy_only=False)
        b = o.column(f).to_numpy(zero_copy_only=False)
        an, bn = np.isnan(a), np.isnan(b)
        diff += int(((an != bn) | (~an & ~bn & (a != b))).sum())
    matched = int(np.count_nonzero(~np.isnan(q.column(feats[0]).to_numpy(zero_copy_only=False))))
    return diff, q.num_rows * len(feats), matched


rows = []
py = sys.executable
for name in shapes_arg.split(","):
    n_ent, ent_keys, views = SHAPES[name]
    d = f"{out}/{name}"
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(sum(map(ord, name)))
    spec = {"dir": d, "entities": f"{d}/entities.parquet", "views": []}
    t = time.perf_counter()
    for (vname, n, keys, types, gen, ttl, feats) in views:
        path = f"{d}/{vname}.parquet"
        write_features(path, rng, n, gen, feats, chunk=250_000 if len(feats) > 50 else 2_500_000)
        spec["views"].append({"name": vname, "file": path, "keys": keys, "key_types": types,
                              "ttl_days": ttl, "features": feats})
    write_entities(spec["entities"], rng, n_ent, ent_keys)
    json.dump(spec, open(f"{d}/spec.json", "w"))
    print(f"== {name}: data ready ({time.perf_counter() - t:.1f} s)", flush=True)
    if data_only:
        continue
    repo = quiver_repo(d, spec)
    refs = ",".join(f"{v['name']}:{f}" for v in spec["views"] for f in v["features"])
    for r in range(repeat):
        qr = run([quiver, "--repo", repo, "--quiet", "historical", "--entities", spec["entities"],
                  "--features", refs, "--out", f"{d}/quiver_out.parquet"])
        dr = run([py, "-W", "ignore", os.path.abspath(__file__), "--duckdb", f"{d}/spec.json"])
        # Feast is not run on `big` (10M entity rows: its pandas entity frame alone is minutes) nor on
        # `skewed`: its duckdb query joins every feature row of a key with every entity row of it
        # before filtering (10^11 pairs for the hot key), which filled the disk with spill files.
        fr = run([py, "-W", "ignore", os.path.abspath(__file__), "--feast", f"{d}/spec.json"]) \
            if feast and name not in ("big", "skewed") else None
        diff = compare(d, spec, "duck_out.parquet") if qr and dr else ("not compared", 0, 0)
        row = {
            "shape": name, "quiver_s": qr and qr[0], "quiver_rss": qr and qr[1],
            "duckdb_s": dr and secs(dr[2]), "duckdb_rss": dr and dr[1],
            "feast_s": fr and secs(fr[2]), "feast_rss": fr and fr[1],
            "values": diff[1], "differ": diff[0], "matched": diff[2],
        }
        if fr and qr:
            row["feast_differ"] = compare(d, spec, "feast_out.parquet")[0]
        rows.append(row)
        fx = f"{row['feast_s']:.2f} s ({row['feast_s'] / row['quiver_s']:.1f}x), {row['feast_rss']:,.0f} MiB" if fr else "not run"
        print(f"{name}: quiver {row['quiver_s']:.2f} s {row['quiver_rss']:,.0f} MiB | duckdb {row['duckdb_s']:.2f} s "
              f"({row['duckdb_s'] / row['quiver_s']:.1f}x) {row['duckdb_rss']:,.0f} MiB | feast {fx} | "
              f"values {row['values']:,} compared, {row['differ']} differ vs duckdb"
              + (f", {row['feast_differ']} vs feast" if 'feast_differ' in row else "") , flush=True)
        json.dump(rows, open(f"{out}/matrix.json", "w"), indent=1)

print("\n| shape | Quiver | DuckDB ASOF JOIN | vs DuckDB | Feast 0.67 duckdb | vs Feast | values |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    fe = f"{r['feast_s']:.2f} s, {r['feast_rss']:,.0f} MiB" if r["feast_s"] else "not run"
    fx = f"{r['feast_s'] / r['quiver_s']:.1f}x" if r["feast_s"] else ""
    print(f"| {r['shape']} | {r['quiver_s']:.2f} s, {r['quiver_rss']:,.0f} MiB | {r['duckdb_s']:.2f} s, {r['duckdb_rss']:,.0f} MiB "
          f"| {r['duckdb_s'] / r['quiver_s']:.1f}x | {fe} | {fx} | {r['values']:,} compared, {r['differ']} differ |")
