"""Quiver's ALS against implicit 0.7 (CPU): training time and precision@10, same data, same split.

Usage: python als_bench.py QUIVER_BINARY WORK_DIR
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import json
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp
import implicit
from implicit.evaluation import ranking_metrics_at_k

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "parity"))
from recs_parity import generate as movielens_style  # noqa: E402

FACTORS, ITERS, THREADS, K = 64, 15, 2, 10


def power_law(n_users, n_items, n_inter, seed=3):
    """Zipf user activity and item popularity; 64 taste clusters, 70% of a user's picks in theirs."""
    rng = np.random.default_rng(seed)
    clusters = 64
    upop = 1.0 / np.arange(1, n_users + 1) ** 0.8
    upop /= upop.sum()
    users = rng.choice(n_users, size=n_inter, p=upop)
    ipop = 1.0 / np.arange(1, n_items + 1) ** 0.8
    ipop /= ipop.sum()
    per = n_items // clusters
    own = rng.random(n_inter) < 0.7
    ranked = rng.choice(per, size=n_inter, p=ipop[:per] / ipop[:per].sum())
    items = np.where(own, (users % clusters) * per + ranked, rng.choice(n_items, size=n_inter, p=ipop))
    weights = rng.choice(np.array([1.0, 2.0, 3.0], np.float32), size=n_inter, p=[0.7, 0.2, 0.1])
    return users, items, weights


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return r.stdout


def bench(name, quiver, work, users, items, weights, reg, alpha):
    os.makedirs(f"{work}/{name}/data", exist_ok=True)
    d = f"{work}/{name}"
    # Sum duplicates, then split (user, item) pairs 80/20 at random.
    m = sp.coo_matrix((weights, (users, items))).tocsr()
    m.sum_duplicates()
    coo = m.tocoo()
    rng = np.random.default_rng(5)
    test = rng.random(coo.nnz) < 0.2
    tr_u, tr_i, tr_w = coo.row[~test], coo.col[~test], coo.data[~test].astype(np.float32)
    known_u = np.zeros(m.shape[0], bool); known_u[tr_u] = True
    known_i = np.zeros(m.shape[1], bool); known_i[tr_i] = True
    te = test & known_u[coo.row] & known_i[coo.col]
    te_u, te_i = coo.row[te], coo.col[te]
    test_users = np.unique(te_u)
    if len(test_users) > 20000:
        keep = np.isin(te_u, rng.choice(test_users, 20000, replace=False))
        te_u, te_i = te_u[keep], te_i[keep]
    pq.write_table(pa.table({"user_id": tr_u.astype(np.int64), "item_id": tr_i.astype(np.int64), "weight": tr_w}), f"{d}/data/train.parquet")
    pq.write_table(pa.table({"user_id": te_u.astype(np.int64), "item_id": te_i.astype(np.int64)}), f"{d}/data/test.parquet")
    with open(f"{d}/quiver.yaml", "w") as f:
        f.write(f"""project: als_bench
sources:
  - {{name: inter, type: parquet, path: data/train.parquet, timestamp_field: ts}}
recommenders:
  - name: r
    interactions: {{source: inter, user: user_id, item: item_id, weight: weight}}
    algorithm: {{type: als, factors: {FACTORS}, regularization: {reg}, alpha: {alpha}, iterations: {ITERS}, seed: 42}}
""")
    # implicit, in its own index space (the same matrix: ids are already 0..n).
    train = sp.csr_matrix((tr_w, (tr_u, tr_i)), shape=m.shape, dtype=np.float32)
    testm = sp.csr_matrix((np.ones(len(te_u), np.float32), (te_u, te_i)), shape=m.shape)
    model = implicit.cpu.als.AlternatingLeastSquares(factors=FACTORS, regularization=reg, alpha=alpha,
                                                     iterations=ITERS, random_state=42, num_threads=THREADS)
    t0 = time.time()
    model.fit(train, show_progress=False)
    t_imp = time.time() - t0
    ref = ranking_metrics_at_k(model, train, testm, K=K, show_progress=False, num_threads=THREADS)
    # Quiver through the CLI (--skip-source-check: the bench source has no timestamp column).
    run([quiver, "--repo", d, "apply", "--skip-source-check"])
    t0 = time.time()
    out = json.loads(run([quiver, "--repo", d, "--json", "recs", "train", "r", "--interactions", f"{d}/data/train.parquet", "--threads", str(THREADS)]))
    t_cli = time.time() - t0
    ev = json.loads(run([quiver, "--repo", d, "--json", "recs", "evaluate", "r", "--test", f"{d}/data/test.parquet", "--k", str(K)]))
    row = {
        "set": name, "users": int(m.shape[0]), "items": int(m.shape[1]), "train_nnz": int(train.nnz),
        "implicit_fit_s": round(t_imp, 2), "quiver_fit_s": round(out["train_seconds"], 2), "quiver_cli_s": round(t_cli, 2),
        "implicit_p@10": round(ref["precision"], 5), "quiver_p@10": round(ev[f"precision@{K}"], 5),
        "popularity_p@10": round(ev["baseline"][f"precision@{K}"], 5), "test_users": ev["users"],
    }
    print(json.dumps(row), flush=True)
    return row


def main():
    quiver, work = os.path.abspath(sys.argv[1]), sys.argv[2]
    os.makedirs(work, exist_ok=True)
    print(f"implicit {implicit.__version__}, {THREADS} threads, factors {FACTORS}, {ITERS} iterations", flush=True)
    u, i, r, _ = movielens_style(6040, 3706, 1_000_000)
    bench("movielens_style", quiver, work, u, i, r, 0.05, 2.0)
    u, i, w = power_law(200_000, 50_000, 5_000_000)
    bench("power_law", quiver, work, u, i, w, 0.05, 10.0)


if __name__ == "__main__":
    main()
