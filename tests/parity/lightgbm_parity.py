#!/usr/bin/env python3
"""LightGBM parity: Quiver's LightGBM import, predictions and TreeSHAP against LightGBM itself.

Usage:
    python tests/parity/lightgbm_parity.py CMD...
    python tests/parity/lightgbm_parity.py --write-fixtures DIR

Trains seeded LightGBM models on synthetic data (binary with NaNs, a many-category categorical
feature that gets bitset splits and a 3-category one that gets one-hot splits; 3-class
multiclass; L2 regression; huber regression with zero_as_missing), saves each as model.txt
with a test set (~2,000 rows with NaNs, unseen, negative and fractional categories, values
exactly on split thresholds, zeros, tiny values and infinities) as CSV, runs
`CMD... model.txt test.csv`, which must print one JSON object per test row,
`{"pred": [...], "contrib": {"feature": value, ..., "bias": value}}` (for multiclass, a list of
such objects, one per class; the values in order are one row of LightGBM's
`predict(pred_contrib=True)`), and compares with LightGBM's `predict` and
`predict(pred_contrib=True)` on the same model file. Tolerance 1e-9 (relative to the value's
magnitude when it exceeds 1 for contributions). Prints
"lightgbm parity: N models, M rows, max |diff| pred=... contrib=..." and exits 1 on any failure.

Set QUIVER_PARITY_DIR to keep the models and test sets in that directory.

--write-fixtures DIR writes the small model and expected values Quiver's unit tests embed
(DIR/lgbm_tiny_binary.txt and DIR/lgbm_tiny_binary_expected.json).

Needs the venv from ci/ml-venv.sh (lightgbm 4.x, numpy).
"""

import json
import math
import os
import subprocess
import sys
import tempfile

import lightgbm as lgb
import numpy as np

N_TRAIN = 4000
N_TEST = 2000
TOL = 1e-9


def make_features(rng, n, nan_train=True):
    """Numerical x0..x3 (x0, x1 with NaNs; x2 never NaN in training; x3 with many zeros),
    cat_big (12 categories), cat_small (3 categories)."""
    x0 = rng.normal(size=n)
    x1 = rng.uniform(-2, 2, size=n)
    x2 = rng.normal(size=n) * 2
    x3 = np.where(rng.random(n) < 0.4, 0.0, rng.normal(size=n))
    cat_big = rng.integers(0, 12, size=n).astype(float)
    cat_small = rng.integers(0, 3, size=n).astype(float)
    if nan_train:
        x0[rng.random(n) < 0.15] = np.nan
        x1[rng.random(n) < 0.10] = np.nan
        cat_big[rng.random(n) < 0.05] = np.nan
    X = np.column_stack([x0, x1, x2, x3, cat_big, cat_small])
    names = ["x0", "x1", "x2", "x3", "cat_big", "cat_small"]
    return X, names, [4, 5]


CAT_EFFECT = np.array([1.5, -1.0, 0.3, 2.0, -2.0, 0.0, 0.8, -0.5, 1.0, -1.5, 0.4, -0.2])
SMALL_EFFECT = np.array([0.7, -0.7, 0.0])


def signal(X):
    x0 = np.nan_to_num(X[:, 0], nan=0.5)
    x1 = np.nan_to_num(X[:, 1], nan=-1.0)
    cb = np.nan_to_num(X[:, 4], nan=0).astype(int)
    cs = X[:, 5].astype(int)
    return x0 + np.sin(2 * x1) + 0.3 * X[:, 2] + 0.5 * X[:, 3] + CAT_EFFECT[cb] + SMALL_EFFECT[cs]


def params(**kw):
    p = dict(
        num_leaves=15,
        learning_rate=0.1,
        min_data_in_leaf=20,
        min_data_per_group=20,
        cat_smooth=5,
        max_cat_to_onehot=4,
        seed=7,
        deterministic=True,
        num_threads=1,
        verbose=-1,
    )
    p.update(kw)
    return p


def train_models(workdir):
    """(name, model path, test X, names) for each model."""
    rng = np.random.default_rng(20240601)
    out = []

    def fit(name, X, y, names, cats, rounds, **kw):
        ds = lgb.Dataset(X, y, feature_name=names, categorical_feature=cats, free_raw_data=False)
        booster = lgb.train(params(**kw), ds, num_boost_round=rounds)
        path = os.path.join(workdir, f"{name}.txt")
        booster.save_model(path)
        return path

    # Binary.
    X, names, cats = make_features(rng, N_TRAIN)
    y = (signal(X) + rng.logistic(size=N_TRAIN) * 0.7 > 0.3).astype(float)
    out.append(("binary", fit("binary", X, y, names, cats, 40, objective="binary", sigmoid=1.3), names))

    # Multiclass, 3 classes.
    X, names, cats = make_features(rng, N_TRAIN)
    s = signal(X) + rng.normal(size=N_TRAIN) * 0.5
    y = np.digitize(s, [-0.5, 1.0]).astype(float)
    out.append(("multiclass", fit("multiclass", X, y, names, cats, 25, objective="multiclass", num_class=3), names))

    # Regression (L2).
    X, names, cats = make_features(rng, N_TRAIN)
    y = 3 * signal(X) + rng.normal(size=N_TRAIN) + 10
    out.append(("regression", fit("regression", X, y, names, cats, 50, objective="regression"), names))

    # Huber regression with zeros as missing (missing type Zero splits).
    X, names, cats = make_features(rng, N_TRAIN)
    y = 3 * signal(X) + rng.normal(size=N_TRAIN)
    out.append(
        (
            "huber_zero_missing",
            fit("huber_zero_missing", X, y, names, cats, 30, objective="huber", zero_as_missing=True),
            names,
        )
    )
    return out


def numeric_thresholds(booster):
    """Per feature index, the thresholds of its numerical splits."""
    th = {}

    def walk(node):
        if "split_index" not in node:
            return
        if node["decision_type"] == "<=":
            th.setdefault(node["split_feature"], set()).add(float(node["threshold"]))
        walk(node["left_child"])
        walk(node["right_child"])

    for t in booster.dump_model()["tree_info"]:
        walk(t["tree_structure"])
    return {k: sorted(v) for k, v in th.items()}


def make_test_set(booster, seed):
    rng = np.random.default_rng(seed)
    X, _, _ = make_features(rng, N_TEST, nan_train=False)
    n = N_TEST
    for j in range(X.shape[1]):
        X[rng.random(n) < 0.06, j] = np.nan
    # Categorical oddities: unseen, negative, fractional and large codes.
    for j, hi in ((4, 12), (5, 3)):
        r = rng.random(n)
        X[r < 0.06, j] = rng.integers(hi, hi + 60, size=n)[r < 0.06]
        X[(r >= 0.06) & (r < 0.09), j] = -rng.integers(1, 6, size=n)[(r >= 0.06) & (r < 0.09)]
        X[(r >= 0.09) & (r < 0.11), j] = rng.uniform(-0.9, hi + 1, size=n)[(r >= 0.09) & (r < 0.11)]
        X[(r >= 0.11) & (r < 0.12), j] = 1e6
    # Numerical values exactly on split thresholds, zeros, signed zeros, tiny values, infinities.
    for j, ths in numeric_thresholds(booster).items():
        r = rng.random(n)
        pick = r < 0.15
        X[pick, j] = rng.choice(ths, size=pick.sum())
    for j in range(4):
        r = rng.random(n)
        X[r < 0.05, j] = 0.0
        X[(r >= 0.05) & (r < 0.06), j] = -0.0
        X[(r >= 0.06) & (r < 0.07), j] = rng.choice([1e-40, -1e-40, 1e-35, 1.0000000180025095e-35, 2e-35])
        X[(r >= 0.07) & (r < 0.075), j] = rng.choice([np.inf, -np.inf])
    return X


def write_csv(path, X, names):
    with open(path, "w") as f:
        f.write(",".join(names) + "\n")
        for i, row in enumerate(X):
            cells = []
            for v in row:
                if math.isnan(v):
                    cells.append("" if i % 2 == 0 else "nan")
                else:
                    cells.append(repr(float(v)))
            f.write(",".join(cells) + "\n")


def flat_contrib(c):
    """Quiver's named contributions as LightGBM's flat row: the values of each output's object
    (features in model order, then bias), output after output."""
    blocks = c if isinstance(c, list) else [c]
    return [v for block in blocks for v in block.values()]


def compare(name, booster, X, lines, failures):
    pred = np.asarray(booster.predict(X), dtype=float).reshape(len(X), -1)
    contrib = np.asarray(booster.predict(X, pred_contrib=True), dtype=float).reshape(len(X), -1)
    if len(lines) != len(X):
        failures.append(f"{name}: {len(lines)} output lines for {len(X)} rows")
        return 0.0, 0.0
    max_p = max_c = 0.0
    for i, line in enumerate(lines):
        try:
            got = json.loads(line)
            gp = np.asarray(got["pred"], dtype=float)
            gc = np.asarray(flat_contrib(got["contrib"]), dtype=float)
        except Exception as e:  # noqa: BLE001
            failures.append(f"{name}: row {i}: bad output line {line[:200]!r}: {e}")
            continue
        if gp.shape != pred[i].shape or gc.shape != contrib[i].shape:
            failures.append(
                f"{name}: row {i}: shapes pred {gp.shape} contrib {gc.shape}, "
                f"expected {pred[i].shape} {contrib[i].shape}"
            )
            continue
        dp = np.abs(gp - pred[i])
        dc = np.abs(gc - contrib[i])
        if not np.all(np.isfinite(dp)) or not np.all(np.isfinite(dc)):
            failures.append(f"{name}: row {i}: non-finite values: pred {gp} vs {pred[i]}")
            continue
        max_p = max(max_p, float(dp.max()))
        max_c = max(max_c, float(dc.max()))
        if dp.max() > TOL:
            failures.append(f"{name}: row {i} ({X[i].tolist()}): pred {gp.tolist()} != LightGBM {pred[i].tolist()}")
        bad = dc > TOL * np.maximum(1.0, np.abs(contrib[i]))
        if bad.any():
            j = int(np.argmax(bad))
            failures.append(
                f"{name}: row {i} ({X[i].tolist()}): contrib[{j}] {gc[j]!r} != LightGBM {contrib[i][j]!r}"
            )
    return max_p, max_c


def write_fixtures(out_dir):
    """A tiny real model (3 trees x 4 leaves, NaNs, a categorical bitset split) and LightGBM's
    predictions and contributions on a few rows, for Quiver's unit tests."""
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(11)
    n = 600
    x0 = rng.normal(size=n)
    x0[rng.random(n) < 0.2] = np.nan
    x1 = rng.uniform(-1, 1, size=n)
    cat = rng.integers(0, 8, size=n).astype(float)
    X = np.column_stack([x0, x1, cat])
    logit = np.nan_to_num(x0, nan=1.0) + x1 + np.array([2, -2, 1, -1, 2, -2, 0, 0])[cat.astype(int)]
    y = (logit + rng.logistic(size=n) * 0.5 > 0).astype(float)
    ds = lgb.Dataset(X, y, feature_name=["a", "b", "c"], categorical_feature=[2])
    booster = lgb.train(params(num_leaves=4, min_data_per_group=10, objective="binary"), ds, num_boost_round=3)
    model_path = os.path.join(out_dir, "lgbm_tiny_binary.txt")
    booster.save_model(model_path)
    booster = lgb.Booster(model_file=model_path)
    rows = np.array(
        [
            [0.5, 0.2, 0.0],
            [np.nan, -0.7, 3.0],
            [-1.2, 0.9, 7.0],
            [0.0, 0.0, 1.0],
            [2.0, -0.1, np.nan],
            [-0.3, 0.4, 25.0],
            [1.1, -1.0, -2.0],
            [0.1, 0.3, 4.0],
        ]
    )
    expected = {
        "generated_by": "python tests/parity/lightgbm_parity.py --write-fixtures crates/quiver-ml/tests/fixtures "
        f"(lightgbm {lgb.__version__})",
        "rows": [[None if math.isnan(v) else v for v in r] for r in rows.tolist()],
        "raw": booster.predict(rows, raw_score=True).tolist(),
        "pred": booster.predict(rows).tolist(),
        "contrib": booster.predict(rows, pred_contrib=True).tolist(),
    }
    with open(os.path.join(out_dir, "lgbm_tiny_binary_expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    print(f"wrote {model_path} and its expected values")


def main():
    args = sys.argv[1:]
    if args[:1] == ["--write-fixtures"] and len(args) == 2:
        write_fixtures(args[1])
        return 0
    if not args or args[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    cmd = args
    keep = os.environ.get("QUIVER_PARITY_DIR")
    if keep:
        os.makedirs(keep, exist_ok=True)
        workdir = keep
    else:
        tmp = tempfile.TemporaryDirectory(prefix="lgbm-parity-")
        workdir = tmp.name

    failures = []
    total_rows = 0
    max_p = max_c = 0.0
    models = train_models(workdir)
    for k, (name, path, names) in enumerate(models):
        booster = lgb.Booster(model_file=path)
        X = make_test_set(booster, 1000 + k)
        csv_path = os.path.join(workdir, f"{name}_test.csv")
        write_csv(csv_path, X, names)
        proc = subprocess.run(cmd + [path, csv_path], capture_output=True, text=True)
        if proc.returncode != 0:
            failures.append(f"{name}: {' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
            continue
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        p, c = compare(name, booster, X, lines, failures)
        max_p, max_c = max(max_p, p), max(max_c, c)
        total_rows += len(X)

    print(
        f"lightgbm parity: {len(models)} models, {total_rows} rows, "
        f"max |diff| pred={max_p:.3g} contrib={max_c:.3g}"
    )
    if failures:
        for f in failures[:20]:
            print(f"FAIL {f}", file=sys.stderr)
        if len(failures) > 20:
            print(f"... and {len(failures) - 20} more failures", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
