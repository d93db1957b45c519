"""Pieces the point-in-time benchmarks share (bench/pit_bench.py, bench/python_bench.py)."""
import os, subprocess, sys, textwrap, time


def run(cmd, check=True):
    """Runs a command; returns (wall seconds, peak RSS MiB of the child, stdout). A failure
    exits with its output when `check`, else returns None."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    stdout, stderr = p.stdout.read(), p.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        message = f"failed: {' '.join(cmd)}\n{stdout}\n{stderr[-3000:]}"
        if check:
            sys.exit(message)
        print(message)
        return None
    return wall, usage.ru_maxrss / 1024, stdout


def write_stats_repo(path, features_file):
    """The Quiver repository of ../shared/anchors/feast_pit.py's data: one view `stats` (f0..f4,
    TTL 30 days, created-timestamp tie-break) keyed by user_id, as Feast's definition."""
    os.makedirs(path, exist_ok=True)
    open(f"{path}/quiver.yaml", "w").write(textwrap.dedent(f"""
        project: bench
        entities: [{{name: user, join_keys: [user_id]}}]
        sources:
          - {{name: src, type: parquet, path: {features_file}, timestamp_field: event_timestamp, created_timestamp_field: created}}
        feature_views:
          - name: stats
            entities: [user]
            source: src
            ttl: 30d
            features: [{{name: f0, type: float64}}, {{name: f1, type: float64}}, {{name: f2, type: float64}}, {{name: f3, type: float64}}, {{name: f4, type: float64}}]
    """))
