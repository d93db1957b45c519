"""Parity test: a Feast 0.67 client reading from Quiver's feature server gets the same online
values as from Feast's own feature server over the same data.

usage: python tests/parity/feast_online_parity.py PATH_TO_QUIVER

Writes 300 users x (float, int, string) features with nulls, plus a second view; Feast applies and
materializes them into its SQLite online store and runs `feast serve`; Quiver applies,
materializes into its embedded store and runs `quiver serve`. Then one Feast SDK client configured
with `online_store: {type: remote, path: http://127.0.0.1:PORT}` is pointed at each server in turn
and asked for the same features of the same entity rows (including unknown users), by feature list
and by feature service. Every value must be equal. Exits non-zero on any difference.
"""
import os, socket, subprocess, sys, tempfile, textwrap, time, urllib.request
from datetime import timedelta

import numpy as np
import pandas as pd

quiver = sys.argv[1]
out = tempfile.mkdtemp(prefix="quiver-online-parity-")
rng = np.random.default_rng(5)
now = pd.Timestamp.now(tz="UTC").floor("s")
n_users, n_rows = 300, 3000

ts = now - pd.to_timedelta(rng.integers(60, 5 * 86400, n_rows), unit="s")
f0 = pd.array(rng.normal(size=n_rows), dtype="Float64")
f0[rng.random(n_rows) < 0.1] = pd.NA
f1 = pd.array(rng.integers(-1000, 1000, n_rows), dtype="Int64")
f1[rng.random(n_rows) < 0.1] = pd.NA
f2 = pd.Series([f"s{i}" for i in rng.integers(0, 50, n_rows)], dtype="object")
f2[rng.random(n_rows) < 0.1] = None
users = rng.integers(0, n_users, n_rows, dtype=np.int64)
# Unique timestamps per user, so "latest" is unambiguous for both.
df = pd.DataFrame({"user_id": users, "event_timestamp": ts, "f0": f0, "f1": f1, "f2": f2})
df = df.drop_duplicates(["user_id", "event_timestamp"])
df.to_parquet(f"{out}/stats.parquet", index=False)
prof = pd.DataFrame({"user_id": np.arange(0, n_users, 2, dtype=np.int64),
                     "event_timestamp": now - pd.Timedelta(hours=1),
                     "g0": rng.normal(size=n_users // 2)})
prof.to_parquet(f"{out}/profile.parquet", index=False)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_up(port, proc, what):
    for _ in range(600):
        if proc.poll() is not None:
            sys.exit(f"{what} exited with {proc.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            return
        except Exception:
            time.sleep(0.1)
    sys.exit(f"{what} did not come up on port {port}")


# Feast: definitions, apply, materialize, serve.
feast_repo = f"{out}/feast_repo"
os.makedirs(feast_repo)
open(f"{feast_repo}/feature_store.yaml", "w").write(textwrap.dedent(f"""
    project: parity
    registry: {feast_repo}/registry.db
    provider: local
    online_store:
        type: sqlite
        path: {feast_repo}/online.db
    entity_key_serialization_version: 3
"""))
from feast import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64, String

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
stats = FeatureView(name="stats", entities=[user], ttl=timedelta(days=30),
                    schema=[Field(name="f0", dtype=Float64), Field(name="f1", dtype=Int64),
                            Field(name="f2", dtype=String)],
                    source=FileSource(path=f"{out}/stats.parquet", timestamp_field="event_timestamp"))
profile = FeatureView(name="profile", entities=[user], ttl=timedelta(days=30),
                      schema=[Field(name="g0", dtype=Float64)],
                      source=FileSource(path=f"{out}/profile.parquet", timestamp_field="event_timestamp"))
svc = FeatureService(name="svc", features=[stats[["f2", "f0"]], profile])
store = FeatureStore(repo_path=feast_repo)
store.apply([user, stats, profile, svc])
store.materialize(start_date=(now - pd.Timedelta(days=10)).to_pydatetime(),
                  end_date=(now + pd.Timedelta(seconds=1)).to_pydatetime())

# Quiver: the same definitions.
qrepo = f"{out}/quiver_repo"
os.makedirs(qrepo)
open(f"{qrepo}/quiver.yaml", "w").write(textwrap.dedent(f"""
    project: parity
    entities:
      - {{name: user, join_keys: [user_id]}}
    sources:
      - {{name: stats_src, type: parquet, path: {out}/stats.parquet, timestamp_field: event_timestamp}}
      - {{name: profile_src, type: parquet, path: {out}/profile.parquet, timestamp_field: event_timestamp}}
    feature_views:
      - name: stats
        entities: [user]
        source: stats_src
        ttl: 30d
        features: [{{name: f0, type: float64}}, {{name: f1, type: int64}}, {{name: f2, type: string}}]
      - name: profile
        entities: [user]
        source: profile_src
        ttl: 30d
        features: [{{name: g0, type: float64}}]
    feature_services:
      - name: svc
        features: ["stats:f2", "stats:f0", "profile:*"]
"""))
run = lambda *a: subprocess.run([quiver, "--repo", qrepo, "--quiet", *a], check=True)
run("apply")
run("materialize", str((now - pd.Timedelta(days=10)).isoformat()), "now")

feast_port, quiver_port = free_port(), free_port()
procs = []
try:
    procs.append(subprocess.Popen(["feast", "-c", feast_repo, "serve", "-h", "127.0.0.1", "-p", str(feast_port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  env={**os.environ, "PATH": os.path.dirname(sys.executable) + ":" + os.environ["PATH"]}))
    procs.append(subprocess.Popen([quiver, "--repo", qrepo, "--quiet", "serve", "--port", str(quiver_port)]))
    wait_up(quiver_port, procs[1], "quiver serve")
    wait_up(feast_port, procs[0], "feast serve")

    def client(port):
        d = f"{out}/client_{port}"
        os.makedirs(d, exist_ok=True)
        open(f"{d}/feature_store.yaml", "w").write(textwrap.dedent(f"""
            project: parity
            registry: {feast_repo}/registry.db
            provider: local
            online_store:
                type: remote
                path: http://127.0.0.1:{port}
            entity_key_serialization_version: 3
        """))
        return FeatureStore(repo_path=d)

    rows = [{"user_id": int(u)} for u in list(range(0, n_users, 3)) + [n_users + 5, n_users + 77]]
    requests = [
        dict(features=["stats:f0", "stats:f1", "stats:f2", "profile:g0"], entity_rows=rows),
        dict(features=svc, entity_rows=rows),
        dict(features=["stats:f2", "profile:g0"], entity_rows=rows, full_feature_names=True),
    ]
    failed = compared = 0
    for i, req in enumerate(requests):
        results = {}
        for name, port in [("feast", feast_port), ("quiver", quiver_port)]:
            fs = client(port)
            r = dict(req)
            if not isinstance(r["features"], list):
                r["features"] = fs.get_feature_service("svc")
            results[name] = fs.get_online_features(**r).to_dict()
        a, b = results["feast"], results["quiver"]
        if sorted(a) != sorted(b):
            print(f"request {i}: columns differ: feast {sorted(a)} quiver {sorted(b)}")
            failed += 1
            continue
        for col in a:
            for j, (x, y) in enumerate(zip(a[col], b[col])):
                compared += 1
                same = (x is None and y is None) or (x == y) or (
                    isinstance(x, float) and isinstance(y, float) and np.isnan(x) and np.isnan(y))
                if not same:
                    failed += 1
                    if failed <= 10:
                        print(f"request {i} {col} row {j}: feast {x!r} quiver {y!r}")
        present = sum(v is not None for col in a if col != "user_id" for v in a[col])
        print(f"request {i}: {len(rows)} rows x {len(a) - 1} features, {present} non-null values")
    print(f"online parity: {compared} values compared, {failed} differ")
    sys.exit(1 if failed else 0)
finally:
    for p in procs:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
