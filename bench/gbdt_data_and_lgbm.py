"""Data and LightGBM side of bench/gbdt_bench.sh.

Generates exactly the data of shared/anchors/lgbm_train.py (same seed, same formula), writes the
80/20 train/test split as raw little-endian f64 files into OUTDIR (features row-major), trains
LightGBM with the anchor's settings and prints its train seconds and test AUC.

usage: python gbdt_data_and_lgbm.py N_ROWS OUTDIR
"""
import os, sys, time
import numpy as np
import lightgbm as lgb
from sklearn.metrics import roc_auc_score

n = int(sys.argv[1])
out = sys.argv[2]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(1)
X = rng.normal(size=(n, 30)).astype(np.float64)
logit = X[:, 0] * 1.5 - X[:, 1] + 0.8 * X[:, 2] * X[:, 3] + np.sin(X[:, 4] * 2) + 0.5 * (X[:, 5] > 0.5) - 0.3 * X[:, 6] ** 2
y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
cut = int(n * 0.8)
for name, a in [("x_train", X[:cut]), ("x_test", X[cut:]), ("y_train", y[:cut]), ("y_test", y[cut:])]:
    np.ascontiguousarray(a, dtype="<f8").tofile(os.path.join(out, name + ".f64"))
with open(os.path.join(out, "shape.txt"), "w") as f:
    f.write(f"{cut} {n - cut} {X.shape[1]}\n")

params = dict(objective="binary", num_leaves=63, learning_rate=0.1, max_bin=255, num_threads=2, verbose=-1, seed=1)
t = time.perf_counter()
b = lgb.train(params, lgb.Dataset(X[:cut], y[:cut]), num_boost_round=200)
dt = time.perf_counter() - t
auc = roc_auc_score(y[cut:], b.predict(X[cut:]))
print(f"lightgbm train_seconds={dt:.2f} test_auc={auc:.4f}")
