"""The churn example from a notebook: a training set from Quiver, a LightGBM model trained in
Python, imported into Quiver and served by `quiver serve`'s /predict.

Run it cell by cell in Jupyter, or as a script (ci/python-test.sh does):

    python examples/churn/notebook.py REPO QUIVER_BIN

REPO is an applied churn repository with a materialized online store (`quiver demo run --dir
REPO` makes one); QUIVER_BIN the quiver binary that serves it.
"""

# %% Setup
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

import quiver

repo = Path(sys.argv[1] if len(sys.argv) > 1 else "quiver-demo")
quiver_bin = sys.argv[2] if len(sys.argv) > 2 else "quiver"
store = quiver.FeatureStore(repo)

# %% A point-in-time training set: every label row with the churn_v1 features as of its time
labels = pd.read_parquet(repo / "data" / "labels.parquet")
service = store.get_feature_service("churn_v1")
train = store.get_historical_features(labels, features=service)
print(f"training set: {train.shape[0]} rows x {train.shape[1]} columns")

# %% LightGBM in Python on the numeric features (an imported LightGBM model reads numbers)
names = [f.split(":")[1] for f in service.features]
numeric = [n for n in names if pd.api.types.is_numeric_dtype(train[n]) or pd.api.types.is_bool_dtype(train[n])]
X = train[numeric].astype("float64")
y = train["churned"].astype(int)
order = np.argsort(train["event_timestamp"].to_numpy(), kind="stable")
cut = int(len(order) * 0.8)
tr, te = order[:cut], order[cut:]
params = {"objective": "binary", "num_leaves": 15, "learning_rate": 0.1, "min_data_in_leaf": 5, "verbose": -1, "seed": 7}
booster = lgb.train(params, lgb.Dataset(X.iloc[tr], y.iloc[tr]), num_boost_round=60)


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    ranks = pd.Series(score).rank().to_numpy()
    pos = y_true == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


auc = roc_auc(y.iloc[te].to_numpy(), booster.predict(X.iloc[te]))
print(f"LightGBM test ROC-AUC on the newest 20%: {auc:.3f}")
assert auc > 0.6, auc

# %% Import it into Quiver's model registry as the champion of churn_lgbm
model_file = repo / ".quiver" / "python" / "churn_lgbm.txt"
model_file.parent.mkdir(parents=True, exist_ok=True)
booster.save_model(str(model_file))
imported = store.import_model(model_file, service, name="churn_lgbm", promote="champion")
print(f"imported as {imported['name']} version {imported['version']} ({imported['task']})")

# %% Offline scoring through Quiver equals LightGBM's on the same features
scored = store.predict(f"churn_lgbm:{imported['version']}", labels)
np.testing.assert_allclose(scored["score"].to_numpy(), booster.predict(X), rtol=1e-9, atol=1e-12)
print("offline scores (store.predict) equal Booster.predict")

# %% Serve it: quiver serve, then POST /predict; the scores equal LightGBM on the online values
users = [1, 2, 3, 4, 5]
online = store.get_online_features(features=[f for f in service.features if f.split(":")[1] in numeric],
                                   entity_rows=[{"user_id": u} for u in users]).to_dict()
X_online = pd.DataFrame({n: online[n] for n in numeric}).astype("float64")
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
server = subprocess.Popen([quiver_bin, "--repo", str(repo), "--quiet", "serve", "--port", str(port)])
try:
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    body = json.dumps({"model": "churn_lgbm", "entities": {"user_id": users}}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=body), timeout=30) as r:
        answer = json.loads(r.read())
finally:
    server.terminate()
    server.wait(timeout=30)
served = np.array([p["score"] for p in answer["predictions"]])
np.testing.assert_allclose(served, booster.predict(X_online), rtol=1e-9, atol=1e-12)
print(f"/predict (model {answer['model']} v{answer['version']}): {np.round(served, 3).tolist()} = Booster.predict")
