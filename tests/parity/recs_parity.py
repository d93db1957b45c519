"""Quiver's ALS recommender against `implicit` 0.7 (CPU) on the same split.

Generates MovieLens-style implicit data (power-law item popularity and user activity, users in
taste clusters, ratings 1-5 used as interaction weights, timestamps), splits it at random by
(user, item) pair (test users and items all appear in training), then

1. trains `implicit.als.AlternatingLeastSquares(factors=64, regularization, alpha, iterations=15,
   random_state=42)` and evaluates it with `implicit.evaluation.ranking_metrics_at_k(K=10)`;
2. trains the same recommender with `quiver recs train` (a repository declaring it, the training
   rows as its source) and evaluates it with `quiver recs evaluate --test`;
3. asserts Quiver's precision@10 is within 2% (relative) of implicit's, and MAP/NDCG within 5%;
4. writes implicit's own factors in Quiver's recommender layout and evaluates them with
   `quiver recs evaluate --model-dir`: the metric code must give implicit's numbers to 1e-9.

Usage: python recs_parity.py QUIVER_BINARY [users items interactions]
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads OpenBLAS (implicit asks)

import json
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import scipy.sparse as sp

import implicit  # noqa: E402
from implicit.evaluation import ranking_metrics_at_k  # noqa: E402

FACTORS, REG, ALPHA, ITERS, K = 64, 0.05, 2.0, 15, 10


def generate(n_users, n_items, n_inter, seed=7):
    """MovieLens-style: Zipf item popularity, log-normal user activity, 24 taste clusters."""
    rng = np.random.default_rng(seed)
    clusters = 24
    user_c = rng.integers(0, clusters, n_users)
    item_c = rng.integers(0, clusters, n_items)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.7
    rng.shuffle(pop)
    activity = rng.lognormal(0.0, 1.0, n_users)
    activity = np.maximum(1, np.round(activity / activity.sum() * n_inter)).astype(int)
    users, items, ratings = [], [], []
    for c in range(clusters):
        # Items of the user's cluster are 40x as likely, on top of their popularity.
        w = pop * np.where(item_c == c, 40.0, 1.0)
        w = w / w.sum()
        members = np.flatnonzero(user_c == c)
        for u in members:
            n = min(activity[u], n_items // 2)
            chosen = rng.choice(n_items, size=n, replace=False, p=w)
            liked = item_c[chosen] == c
            r = np.clip(np.round(rng.normal(np.where(liked, 4.0, 2.7), 0.9)), 1, 5)
            users.append(np.full(n, u))
            items.append(chosen)
            ratings.append(r)
    users = np.concatenate(users)
    items = np.concatenate(items)
    ratings = np.concatenate(ratings).astype(np.float32)
    ts = rng.integers(1_700_000_000, 1_700_000_000 + 180 * 86400, len(users))
    return users, items, ratings, ts


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return r.stdout


def write_factors(path, a):
    a = np.ascontiguousarray(a, dtype="<f4")
    header = b"QVRSFAC1" + struct.pack("<QQI", a.shape[0], a.shape[1], 1)
    with open(path, "wb") as f:
        f.write(header.ljust(64, b"\0"))
        f.write(a.tobytes())


def write_csr(path, m):
    m = m.tocsr()
    m.sort_indices()
    header = b"QVRSCSR1" + struct.pack("<QQQ", m.shape[0], m.shape[1], m.nnz)
    with open(path, "wb") as f:
        f.write(header.ljust(64, b"\0"))
        f.write(m.indptr.astype("<u8").tobytes())
        f.write(m.indices.astype("<u4").tobytes())
        f.write(m.data.astype("<f4").tobytes())


def main():
    quiver = os.path.abspath(sys.argv[1])
    n_users, n_items, n_inter = (int(x) for x in (sys.argv[2:5] or (6000, 3000, 300_000)))
    users, items, ratings, ts = generate(n_users, n_items, n_inter)
    # Random split by (user, item) pair: 20% of pairs to test.
    rng = np.random.default_rng(11)
    test_mask = rng.random(len(users)) < 0.2
    train_users = set(users[~test_mask])
    train_items = set(items[~test_mask])
    keep_test = test_mask & np.isin(users, list(train_users)) & np.isin(items, list(train_items))
    tr = ~test_mask
    print(f"data: {len(users):,} interactions, {n_users:,} users x {n_items:,} items; "
          f"train {tr.sum():,}, test {keep_test.sum():,}")

    work = tempfile.mkdtemp(prefix="recs_parity_")
    os.makedirs(f"{work}/data")
    pacsv.write_csv(pa.table({"user_id": users[tr], "item_id": items[tr], "rating": ratings[tr],
                              "event_timestamp": pa.array(ts[tr] * 1_000_000, pa.timestamp("us"))}),
                    f"{work}/data/train.csv")
    pacsv.write_csv(pa.table({"user_id": users[keep_test], "item_id": items[keep_test]}),
                    f"{work}/data/test.csv")
    with open(f"{work}/quiver.yaml", "w") as f:
        f.write(f"""project: recs_parity
sources:
  - name: ratings
    type: csv
    path: data/train.csv
    timestamp_field: event_timestamp
recommenders:
  - name: movies
    interactions: {{source: ratings, user: user_id, item: item_id, weight: rating}}
    algorithm: {{type: als, factors: {FACTORS}, regularization: {REG}, alpha: {ALPHA}, iterations: {ITERS}, seed: 42}}
""")

    # implicit on the same training matrix (its own index space).
    uid = {u: i for i, u in enumerate(sorted(train_users))}
    iid = {v: i for i, v in enumerate(sorted(train_items))}
    rows = np.array([uid[u] for u in users[tr]])
    cols = np.array([iid[v] for v in items[tr]])
    train_m = sp.csr_matrix((ratings[tr], (rows, cols)), shape=(len(uid), len(iid)), dtype=np.float32)
    train_m.sum_duplicates()
    trows = np.array([uid[u] for u in users[keep_test]])
    tcols = np.array([iid[v] for v in items[keep_test]])
    test_m = sp.csr_matrix((np.ones(len(trows), np.float32), (trows, tcols)), shape=train_m.shape)
    test_m.sum_duplicates()
    test_m.data[:] = 1.0
    model = implicit.cpu.als.AlternatingLeastSquares(
        factors=FACTORS, regularization=REG, alpha=ALPHA, iterations=ITERS, random_state=42)
    t0 = time.time()
    model.fit(train_m, show_progress=False)
    t_implicit = time.time() - t0
    ref = ranking_metrics_at_k(model, train_m, test_m, K=K, show_progress=False)
    print(f"implicit {implicit.__version__}: fit {t_implicit:.2f} s, " + ", ".join(f"{k}@{K} {v:.5f}" for k, v in ref.items()))

    # Quiver, through the CLI.
    run([quiver, "--repo", work, "apply"])
    t0 = time.time()
    run([quiver, "--repo", work, "recs", "train", "movies"] + sys.argv[5:])
    t_quiver = time.time() - t0
    ours = json.loads(run([quiver, "--repo", work, "--json", "recs", "evaluate", "movies", "--test", f"{work}/data/test.csv", "--k", str(K)]))
    print(f"quiver: train (CLI, reading the CSV included) {t_quiver:.2f} s, " + ", ".join(
        f"{k}@{K} {ours[f'{k}@{K}']:.5f}" for k in ("precision", "map", "ndcg", "auc"))
        + f"; popularity baseline precision@{K} {ours['baseline'][f'precision@{K}']:.5f}")
    failures = []
    rel = abs(ours[f"precision@{K}"] - ref["precision"]) / ref["precision"]
    if rel > 0.02:
        failures.append(f"precision@{K}: quiver {ours[f'precision@{K}']:.5f} vs implicit {ref['precision']:.5f} ({rel:.2%} apart, more than 2%)")
    for k in ("map", "ndcg"):
        r = abs(ours[f"{k}@{K}"] - ref[k]) / ref[k]
        if r > 0.05:
            failures.append(f"{k}@{K}: quiver {ours[f'{k}@{K}']:.5f} vs implicit {ref[k]:.5f} ({r:.2%} apart)")
    if ours["users"] != int((np.diff(test_m.indptr) > 0).sum()):
        failures.append(f"users: {ours['users']} vs {(np.diff(test_m.indptr) > 0).sum()}")
    if not ours["baseline"][f"precision@{K}"] < ours[f"precision@{K}"]:
        failures.append("the model does not beat popularity")

    # implicit's own factors through Quiver's evaluator: the metric code, bit for bit.
    d = f"{work}/implicit_model"
    os.makedirs(d)
    inv_u = [str(u) for u in sorted(train_users)]
    inv_i = [str(v) for v in sorted(train_items)]
    write_factors(f"{d}/user_factors.qvf", model.user_factors)
    write_factors(f"{d}/item_factors.qvf", model.item_factors)
    write_factors(f"{d}/popularity.qvf", np.asarray(train_m.sum(axis=0)).reshape(-1, 1))
    write_csr(f"{d}/seen.qvc", train_m)
    json.dump(inv_u, open(f"{d}/users.json", "w"))
    json.dump(inv_i, open(f"{d}/items.json", "w"))
    json.dump({"format": 1, "recommender": "movies", "algorithm": "als", "factors": FACTORS,
               "regularization": REG, "alpha": ALPHA, "iterations": ITERS, "seed": 42, "solver": "cg",
               "users": len(inv_u), "items": len(inv_i), "interactions": int(train_m.nnz),
               "min_interactions": 5, "train_seconds": t_implicit}, open(f"{d}/recommender.json", "w"))
    fed = json.loads(run([quiver, "--repo", work, "--json", "recs", "evaluate", "--model-dir", d, "--test", f"{work}/data/test.csv", "--k", str(K)]))
    for k in ("precision", "map", "ndcg", "auc"):
        diff = abs(fed[f"{k}@{K}"] - ref[k])
        print(f"  implicit's factors, Quiver's evaluator: {k}@{K} {fed[f'{k}@{K}']!r} vs implicit {ref[k]!r} (|diff| {diff:.1e})")
        if diff > 1e-9:
            failures.append(f"metric code: {k}@{K} {fed[f'{k}@{K}']!r} vs implicit's {ref[k]!r}")
    if failures:
        sys.exit("FAILED:\n  " + "\n  ".join(failures))
    print(f"OK: precision@{K} within {rel:.2%} of implicit's; implicit's factors give implicit's metrics to 1e-9")


if __name__ == "__main__":
    main()
