"""Per-node figures for docs/scaling.md (driven by bench/scale_bench.sh, which builds Quiver and
starts a Redis Cluster on CLUSTER_BASE..+5).

usage: python bench/scale_bench.py QUIVER_BIN OUTDIR CLUSTER_BASE [N_FEAT N_ENT] [--users N] [--duration D] [--failover-only | --offline-only]

The last phase kills a master of the cluster (kill -9) in the middle of a wrk run against the
cluster-backed server and reports the non-2xx answers, the window in which probe requests failed,
and whether every materialized value reads back after the failover (rows were written with
replica_acks: 1, so acknowledged means replicated). --failover-only skips the other phases.
"""
import json, os, re, socket, subprocess, sys, time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import run, write_stats_repo  # noqa: E402

here = os.path.dirname(os.path.abspath(__file__))
anchors = os.path.normpath(os.path.join(here, "..", "..", "shared", "anchors"))
args = sys.argv[1:]
users, duration = 100_000, "20s"
failover_only = "--failover-only" in args
if failover_only:
    args.remove("--failover-only")
offline_only = "--offline-only" in args
if offline_only:
    args.remove("--offline-only")
for flag in ("--users", "--duration"):
    if flag in args:
        i = args.index(flag)
        if flag == "--users":
            users = int(args[i + 1])
        else:
            duration = args[i + 1]
        del args[i:i + 2]
quiver, out, cluster_base = args[0], os.path.abspath(args[1]), int(args[2])
n_feat = int(args[3]) if len(args) > 3 else 10_000_000
n_ent = int(args[4]) if len(args) > 4 else 1_000_000
os.makedirs(out, exist_ok=True)
T0 = 1_735_689_600  # 2025-01-01T00:00:00Z
SPAN = 180 * 86400


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def timestamps(seconds):
    return pa.array(seconds.astype("datetime64[s]").astype("datetime64[us]"), pa.timestamp("us", tz="UTC"))


# 1. Offline: the point-in-time benchmark's data (same generator parameters as
# ../shared/anchors/feast_pit.py: 1 row per 100 feature rows is a user, 5 float features).
rng = np.random.default_rng(7)
n_users = max(1000, n_feat // 100)
if failover_only:
    n_feat = n_ent = 0
feat_file, ent_file = f"{out}/features.parquet", f"{out}/entities.parquet"
if n_feat and not (os.path.exists(feat_file) and pq.read_metadata(feat_file).num_rows == n_feat):
    ts = T0 + rng.integers(0, SPAN, n_feat)
    cols = {"user_id": pa.array(rng.integers(0, n_users, n_feat, dtype=np.int64)),
            "event_timestamp": timestamps(ts),
            "created": timestamps(ts + rng.integers(0, 3600, n_feat))}
    for i in range(5):
        cols[f"f{i}"] = pa.array(rng.normal(size=n_feat))
    pq.write_table(pa.table(cols), feat_file)
    pq.write_table(pa.table({
        "user_id": pa.array(rng.integers(0, n_users, n_ent, dtype=np.int64)),
        "event_timestamp": timestamps(T0 + rng.integers(0, SPAN + 86400 * 10, n_ent)),
    }), ent_file)
repo = f"{out}/pit_repo"
offline = {}
if n_feat:
    write_stats_repo(repo, feat_file)
    run([quiver, "--repo", repo, "-q", "apply"])
for label, pin in (("1 core", ["taskset", "-c", "0"]), ("2 cores", [])) if n_feat else ():
    best = None
    for _ in range(3):
        r = run(pin + [quiver, "--repo", repo, "-q", "historical", "--entities", ent_file,
                       "--features", "stats:*", "--out", f"{out}/train.parquet"])
        if best is None or r[0] < best[0]:
            best = r
    offline[label] = best
    print(f"historical {n_feat:,} x {n_ent:,}, {label}: {best[0]:.2f} s (best of 3), peak RSS {best[1]:,.0f} MiB")


def ballista_historical(executors):
    """`historical` of the same retrieval on a Ballista cluster of `executors` executors on this
    machine (`quiver cluster scheduler` / `executor`, 2 task slots in all): best of 3, and the
    output compared with the embedded engine's."""
    sport = free_port()
    procs = [subprocess.Popen([quiver, "cluster", "scheduler", "--port", str(sport)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    wait_for_port(sport)
    for i in range(executors):
        while True:
            port = free_port()
            try:
                socket.socket().bind(("127.0.0.1", port + 1))
                break
            except OSError:
                continue
        procs.append(subprocess.Popen(
            [quiver, "cluster", "executor", "--scheduler", f"127.0.0.1:{sport}", "--port", str(port),
             "--slots", str(max(1, 2 // executors)), "--work-dir", f"{out}/executor-{i}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(3)
    cluster_repo = f"{out}/pit_repo_ballista"
    subprocess.run(["rm", "-rf", cluster_repo])
    subprocess.run(["cp", "-r", repo, cluster_repo], check=True)
    with open(f"{cluster_repo}/quiver.yaml", "a") as f:
        f.write(f'offline_engine: {{type: ballista, url: "df://127.0.0.1:{sport}", partitions: 8}}\n')
    best = None
    try:
        for _ in range(3):
            r = run([quiver, "--repo", cluster_repo, "-q", "historical", "--entities", ent_file,
                     "--features", "stats:*", "--out", f"{out}/train-ballista.parquet"])
            if best is None or r[0] < best[0]:
                best = r
    finally:
        for p in procs:
            p.kill()
            p.wait()
    equal = pq.read_table(f"{out}/train.parquet").equals(pq.read_table(f"{out}/train-ballista.parquet"))
    label = f"Ballista, {executors} executor{'s' if executors > 1 else ''}"
    offline[label] = best
    print(f"historical {n_feat:,} x {n_ent:,}, {label}: {best[0]:.2f} s (best of 3), client peak RSS "
          f"{best[1]:,.0f} MiB, output equal to the embedded engine's: {equal}")


if n_feat and not os.environ.get("SCALE_NO_BALLISTA"):
    for executors in (1, 2):
        ballista_historical(executors)

if offline_only:
    for label, (wall, rss, _) in offline.items():
        print(f"historical {n_feat:,} feature rows x {n_ent:,} entity rows, {label}: {wall:.2f} s, "
              f"{n_feat / wall / 1e6:.1f}M feature rows/s, peak RSS {rss:,.0f} MiB")
    sys.exit(0)

# 2. Online: one Redis and the cluster.
online_file = f"{out}/online/data/features.parquet"
os.makedirs(os.path.dirname(online_file), exist_ok=True)
rng = np.random.default_rng(11)
cols = {"user_id": pa.array(np.arange(users, dtype=np.int64)),
        "event_timestamp": timestamps(np.full(users, int(time.time()) - 3600))}
for i in range(10):
    cols[f"f{i}"] = pa.array(rng.normal(size=users))
pq.write_table(pa.table(cols), online_file)
features = ", ".join(f"{{name: f{i}, type: float64}}" for i in range(10))
stores = {
    "redis": "online_store: {type: redis, url: 'redis://127.0.0.1:6379/5', timeout_ms: 5000}",
    "redis_cluster": "online_store: {type: redis_cluster, nodes: ['redis://127.0.0.1:%d'], timeout_ms: 5000, replica_acks: 1}" % cluster_base,
}
if failover_only:
    stores.pop("redis")


def redis_memory(kind):
    ports = [6379] if kind == "redis" else [cluster_base + i for i in range(6)]
    total = 0
    for p in ports:
        info = subprocess.run(["redis-cli", "-p", str(p), "info", "memory"], capture_output=True, text=True).stdout
        role = subprocess.run(["redis-cli", "-p", str(p), "info", "replication"], capture_output=True, text=True).stdout
        if kind == "redis_cluster" and "role:slave" in role:
            continue  # masters only: replicas double it
        total += int(re.search(r"used_memory:(\d+)", info).group(1))
    return total


def serve(repo):
    """`quiver serve` on a free port, once it accepts connections: (process, port)."""
    port = free_port()
    server = subprocess.Popen([quiver, "--repo", repo, "-q", "serve", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port)
    return server, port


def wait_for_port(port):
    """Returns once something accepts connections on `port` of 127.0.0.1 (30 s at the most)."""
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)


def wrk(port, script):
    r = subprocess.run(["wrk", "-t1", "-c16", f"-d{duration}", "--latency", "-s", script, f"http://127.0.0.1:{port}"],
                       capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", r).group(1))
    p50 = re.search(r"\s50%\s+(\S+)", r).group(1)
    p99 = re.search(r"\s99%\s+(\S+)", r).group(1)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", r)
    return rps, p50, p99, int(non2xx.group(1)) if non2xx else 0


subprocess.run(["redis-cli", "-n", "5", "flushdb"], capture_output=True)
online = {}
for kind, store in stores.items():
    r = f"{out}/online_{kind}"
    os.makedirs(r, exist_ok=True)
    open(f"{r}/quiver.yaml", "w").write(f"""project: scale
{store}
entities:
  - {{name: user, join_keys: [user_id]}}
sources:
  - {{name: src, type: parquet, path: {online_file}, timestamp_field: event_timestamp}}
feature_views:
  - name: stats
    entities: [user]
    source: src
    ttl: 2d
    features: [{features}]
""")
    run([quiver, "--repo", r, "-q", "apply"])
    run([quiver, "--repo", r, "-q", "online", "clear"])
    before = redis_memory(kind)
    wall, _, _ = run([quiver, "--repo", r, "-q", "materialize", "2000-01-01", "now"])
    per_row = (redis_memory(kind) - before) / users
    if failover_only:
        continue
    server, port = serve(r)
    one = wrk(port, f"{anchors}/feast_online_wrk.lua")
    hundred = wrk(port, f"{here}/online_batch_wrk.lua")
    server.terminate()
    server.wait()
    online[kind] = (wall, per_row, one, hundred)
    print(f"{kind}: materialize {users:,} rows in {wall:.2f} s ({users / wall:,.0f} rows/s), "
          f"{per_row:,.0f} B of Redis memory per entity row; 1 entity: {one[0]:,.0f} req/s p99 {one[2]}; "
          f"100 entities: {hundred[0]:,.0f} req/s p99 {hundred[2]} (non-2xx {one[3] + hundred[3]})")



# 3. A master killed during a wrk run on the cluster-backed server.
def post(port, body):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("POST", "/get-online-features", body=json.dumps(body))
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"null")
    except Exception as e:  # a timeout or a reset counts as a failure
        return 0, str(e)
    finally:
        c.close()


def masters():
    nodes = subprocess.run(["redis-cli", "-p", str(cluster_base), "cluster", "nodes"], capture_output=True, text=True).stdout
    return [int(re.search(r":(\d+)@", l).group(1)) for l in nodes.splitlines() if " master " in l and "fail" not in l]


server, port = serve(f"{out}/online_redis_cluster")
check = {"features": [f"stats:f{i}" for i in range(10)], "entities": {"user_id": list(range(0, users, max(1, users // 1000)))}}
status, before = post(port, check)
assert status == 200, before
fail_secs = 40
wrk_proc = subprocess.Popen(["wrk", "-t1", "-c16", f"-d{fail_secs}s", "--latency", "-s", f"{anchors}/feast_online_wrk.lua",
                             f"http://127.0.0.1:{port}"], stdout=subprocess.PIPE, text=True)
time.sleep(5)
victim = masters()[0]
pid = re.search(r"process_id:(\d+)", subprocess.run(["redis-cli", "-p", str(victim), "info", "server"],
                                                    capture_output=True, text=True).stdout).group(1)
killed = time.time()
subprocess.run(["kill", "-9", pid])
probes = []
while wrk_proc.poll() is None:
    t = time.time()
    status, _ = post(port, {"features": ["stats:f0"], "entities": {"user_id": [int(np.random.randint(0, users))]}})
    probes.append((t - killed, status, time.time() - t))
    time.sleep(0.05)
wrk_out = wrk_proc.stdout.read()
failed = [t for t, s, _ in probes if s != 200]
slow = [(t, d) for t, _, d in probes if d > 0.5]
status, after = post(port, check)
server.terminate()
server.wait()
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", wrk_out)
socket_errors = re.search(r"Socket errors: (.*)", wrk_out)
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", wrk_out).group(1))
same = status == 200 and after["results"] == before["results"]
answered_after = sum(1 for t, s, _ in probes if failed and t > failed[-1] and s == 200)
print(f"failover: master {victim} killed 5 s into a {fail_secs} s wrk run: {rps:,.0f} req/s overall, "
      f"non-2xx {int(non2xx.group(1)) if non2xx else 0}, socket errors: {socket_errors.group(1) if socket_errors else 'none'}; "
      f"probes: {len(failed)} of {len(probes)} failed, "
      + (f"from {failed[0]:.1f} s to {failed[-1]:.1f} s after the kill, then {answered_after} answered; " if failed else "none failed; ")
      + (f"{len(slow)} probes took over 0.5 s (the slowest {max(d for _, d in slow):.1f} s, sent {slow[0][0]:.1f} to {slow[-1][0]:.1f} s after the kill); " if slow else "no probe took over 0.5 s; ")
      + f"all {len(check['entities']['user_id'])} checked users' 10 values equal before and after: {same}")
subprocess.run([os.path.join(here, "..", "ci", "redis-cluster.sh"), "start", str(cluster_base)], capture_output=True)
if failover_only:
    sys.exit(0 if same else 1)

print()
print(f"== Summary ({os.cpu_count()} cores; wrk -t1 -c16 -d{duration})")
for label, (wall, rss, _) in offline.items():
    print(f"historical {n_feat:,} feature rows x {n_ent:,} entity rows, {label}: {wall:.2f} s, "
          f"{n_feat / wall / 1e6:.1f}M feature rows/s, peak RSS {rss:,.0f} MiB")
print(f"{'online store':<16} {'materialize rows/s':>18} {'B/row':>7} {'1 entity req/s':>15} {'p99':>8} {'100 entities req/s':>19} {'p99':>8} {'entity reads/s':>15}")
for kind, (wall, per_row, one, hundred) in online.items():
    print(f"{kind:<16} {users / wall:>18,.0f} {per_row:>7,.0f} {one[0]:>15,.0f} {one[2]:>8} {hundred[0]:>19,.0f} {hundred[2]:>8} {hundred[0] * 100:>15,.0f}")
json.dump({"offline": {k: v[:2] for k, v in offline.items()}, "online": online}, open(f"{out}/scale.json", "w"), indent=1)
