"""Drift benchmark: quiver drift vs Evidently 0.7 DataDriftPreset (see drift_bench.sh).

usage: drift_bench.py QUIVER DIR ROWS [NUM CAT]   (numeric and categorical columns, default 40 10)
       drift_bench.py --evidently REF CUR OUT_JSON   (the Evidently run, timed by the driver)
"""

import json
import os
import re
import subprocess
import sys
import time
import warnings

warnings.filterwarnings("ignore")

N_NUM, N_CAT = 40, 10


def evidently_main(ref_path, cur_path, out_path):
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    t0 = time.time()
    ref = pd.read_parquet(ref_path)
    cur = pd.read_parquet(cur_path)
    t1 = time.time()
    snap = Report([DataDriftPreset()]).run(cur, ref)
    d = snap.dict()
    t2 = time.time()
    out = {}
    for m in d["metrics"]:
        cfg = m["config"]
        if cfg["type"].endswith("ValueDrift"):
            out[cfg["column"]] = {"score": float(m["value"]), "method": cfg.get("method"), "threshold": cfg.get("threshold")}
    json.dump({"columns": out, "read_s": t1 - t0, "drift_s": t2 - t1}, open(out_path, "w"))


def generate(dir_, rows):
    """Reference and current sets of `rows` rows, N_NUM numeric and N_CAT categorical columns
    (every third numeric column and every other categorical one shifted in the current set)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(dir_, exist_ok=True)
    shape = f"{rows}_{N_NUM}n{N_CAT}c"
    ref_path, cur_path = f"{dir_}/ref_{shape}.parquet", f"{dir_}/cur_{shape}.parquet"
    if os.path.exists(ref_path) and os.path.exists(cur_path):
        return ref_path, cur_path
    rng = np.random.default_rng(7)
    cats = [np.array([f"c{j}_{k}" for k in range(5 + 5 * (j % 10))]) for j in range(N_CAT)]
    for path, drifted in [(ref_path, False), (cur_path, True)]:
        cols = {}
        for i in range(N_NUM):
            shift = 0.15 if drifted and i % 3 == 0 else 0.0
            if i % 4 == 0:
                cols[f"num_{i}"] = rng.normal(shift, 1.0, rows)
            elif i % 4 == 1:
                cols[f"num_{i}"] = rng.exponential(1.0 + shift, rows)
            elif i % 4 == 2:
                cols[f"num_{i}"] = rng.uniform(shift, 10.0, rows)
            else:
                cols[f"num_{i}"] = rng.lognormal(shift, 0.5, rows)
        for j in range(N_CAT):
            k = len(cats[j])
            p = np.arange(1, k + 1, dtype=float)
            if drifted and j % 2 == 0:
                p = p[::-1].copy()
            p /= p.sum()
            cols[f"cat_{j}"] = cats[j][rng.choice(k, rows, p=p)]
        pq.write_table(pa.table(cols), path)
    return ref_path, cur_path


def timed(cmd):
    t0 = time.time()
    p = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    wall = time.time() - t0
    if p.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed:\n{p.stderr[-3000:]}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1))
    return wall, rss_kb / 1024, p.stdout


def main():
    global N_NUM, N_CAT
    quiver, dir_, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if len(sys.argv) > 5:
        N_NUM, N_CAT = int(sys.argv[4]), int(sys.argv[5])
    ref, cur = generate(dir_, rows)
    print(f"data: {rows:,} rows x {N_NUM + N_CAT} columns ({N_NUM} numeric, {N_CAT} categorical); {os.path.getsize(ref) / 1e6:.0f} MB + {os.path.getsize(cur) / 1e6:.0f} MB Parquet")
    q_wall, q_rss, q_out = timed([quiver, "drift", "--reference", ref, "--current", cur, "--json"])
    ev_json = f"{dir_}/evidently_{rows}_{N_NUM}n{N_CAT}c.json"
    e_wall, e_rss, _ = timed([sys.executable, "-W", "ignore", __file__, "--evidently", ref, cur, ev_json])
    q = {f["name"]: f for f in json.loads(q_out)["features"]}
    ev = json.load(open(ev_json))
    worst, flags_equal = 0.0, True
    for col, e in ev["columns"].items():
        f = q[col]
        rel = abs(e["score"] - f["score"]) / max(abs(e["score"]), abs(f["score"]), 1e-300)
        worst = max(worst, rel)
        t = e["threshold"]
        ev_drift = e["score"] >= t if f["stattest"] not in ("ks", "chisquare", "z") else e["score"] < t
        flags_equal &= ev_drift == f["drifted"]
    print(f"quiver drift:           {q_wall:7.2f} s  peak RSS {q_rss:8.0f} MB")
    print(f"Evidently DataDriftPreset: {e_wall:7.2f} s  peak RSS {e_rss:8.0f} MB  (pandas read {ev['read_s']:.2f} s, drift {ev['drift_s']:.2f} s)")
    print(f"speed-up {e_wall / q_wall:.1f}x, memory {q_rss / e_rss:.2f} of Evidently's")
    print(f"columns compared: {len(ev['columns'])}; largest relative score difference {worst:.2e}; drift flags equal: {flags_equal}; drifted: quiver {sum(f['drifted'] for f in q.values())}")


if __name__ == "__main__":
    if sys.argv[1] == "--evidently":
        evidently_main(*sys.argv[2:5])
    else:
        main()
