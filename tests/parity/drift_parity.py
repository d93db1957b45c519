"""Drift parity: `quiver drift --json` against Evidently 0.7's DataDriftPreset on the same files.

Generates reference/current pairs (small: at most 1,000 reference rows, so ks / chisquare / z;
large: more than 1,000, so wasserstein / jensenshannon; a large current set with a small
reference, so scipy's asymptotic KS p-value; per-feature overrides of every test), with numeric
and categorical columns, two-category columns, integer columns with few values, nulls, NaN and
infinities, a category present on one side only, a numeric column with few distinct values and a
constant column. For every column, the score (p-value or distance) must agree within 1e-6
relative (1e-12 absolute for p-values that underflow) and the drift flags, the drifted share and
the data set verdict must be equal.

usage: drift_parity.py QUIVER_BINARY
"""

import json
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")

from evidently import Report  # noqa: E402
from evidently.presets import DataDriftPreset  # noqa: E402

QUIVER = sys.argv[1]


def frame(rng, n, shift, nulls):
    df = pd.DataFrame(
        {
            "num_a": rng.normal(10 + shift, 2, n),
            "num_b": rng.exponential(1 + shift, n),
            "num_c": rng.normal(0, 1 + shift, n).round(1),
            "num_few": rng.choice([0.5, 1.5, 2.5, 3.5], n, p=[0.4, 0.3, 0.2, 0.1] if shift == 0 else [0.3, 0.3, 0.2, 0.2]),
            "int_many": rng.integers(0, 1000 + int(300 * shift), n),
            "int_few": rng.integers(0, 4 + (1 if shift else 0), n),
            "cat": rng.choice(["red", "green", "blue", "grey"], n, p=[0.4, 0.3, 0.2, 0.1] if shift == 0 else [0.3, 0.3, 0.3, 0.1]),
            "cat_two": rng.choice(["yes", "no"], n, p=[0.5, 0.5] if shift == 0 else [0.45, 0.55]),
            "flag": rng.random(n) < (0.3 + 0.05 * shift),
            "const": np.full(n, 7.0),
        }
    )
    # A category only in the current set, one only in the reference set.
    if shift:
        df.loc[df.index[: max(1, n // 50)], "cat"] = "purple"
    else:
        df.loc[df.index[: max(1, n // 40)], "cat_two"] = "maybe"
    if nulls:
        for c in ["num_a", "cat", "num_b"]:
            df.loc[rng.choice(n, n // 20, replace=False), c] = None
        df.loc[df.index[1], "num_a"] = np.inf
        df.loc[df.index[2], "num_a"] = -np.inf
        df.loc[df.index[3], "num_b"] = np.nan
    return df


def evidently_run(ref, cur, per_column_method=None, per_column_threshold=None):
    preset = DataDriftPreset(per_column_method=per_column_method, per_column_threshold=per_column_threshold)
    snap = Report([preset]).run(cur, ref)
    d = snap.dict()
    out, count = {}, None
    for m in d["metrics"]:
        cfg = m["config"]
        if cfg["type"].endswith("ValueDrift"):
            out[cfg["column"]] = {
                "score": float(m["value"]),
                "method": cfg.get("method"),
                "threshold": cfg.get("threshold"),
            }
        elif cfg["type"].endswith("DriftedColumnsCount"):
            count = m["value"]
    return out, count


def quiver_run(ref_path, cur_path, extra=()):
    p = subprocess.run(
        [QUIVER, "drift", "--reference", str(ref_path), "--current", str(cur_path), "--json", *extra],
        capture_output=True,
        text=True,
    )
    if p.returncode != 0:
        raise SystemExit(f"quiver drift failed: {p.stderr}")
    return json.loads(p.stdout)


METHOD_NAMES = {
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
    "PSI": "psi",
    "Kullback-Leibler divergence": "kl_div",
    "Hellinger distance": "hellinger",
}

failures = []
passed = 0


def check(case, ref, cur, overrides=None):
    global passed
    with tempfile.TemporaryDirectory() as tmp:
        rp, cp = Path(tmp) / "ref.parquet", Path(tmp) / "cur.parquet"
        ref.to_parquet(rp, index=False)
        cur.to_parquet(cp, index=False)
        # Evidently reads the same files through pandas.
        ref_pd, cur_pd = pd.read_parquet(rp), pd.read_parquet(cp)
        extra = []
        methods, thresholds = None, None
        if overrides:
            methods = {c: t for c, (t, _) in overrides.items()}
            thresholds = {c: x for c, (_, x) in overrides.items() if x is not None}
            for c, (t, x) in overrides.items():
                extra += ["--stattest", f"{c}={t}"]
                if x is not None:
                    extra += ["--threshold", f"{c}={x}"]
            extra += ["--features", ",".join(overrides)]
            ref_pd, cur_pd = ref_pd[list(overrides)], cur_pd[list(overrides)]
        ev, count = evidently_run(ref_pd, cur_pd, methods, thresholds or None)
        q = quiver_run(rp, cp, extra)
    qf = {f["name"]: f for f in q["features"]}
    skipped = {s["name"] for s in q["skipped"]}
    if set(ev) != set(qf):
        failures.append(f"{case}: columns differ: evidently {sorted(ev)}, quiver {sorted(qf)} (skipped {sorted(skipped)})")
        return
    n_drift = 0
    for col, e in ev.items():
        f = qf[col]
        a, b = e["score"], f["score"]
        tol = 1e-6 * max(abs(a), abs(b))
        if f["stattest"] in ("ks", "chisquare", "z"):
            tol = max(tol, 1e-12)
        ok = abs(a - b) <= tol or (np.isnan(a) and b is None)
        threshold = e["threshold"]
        method = METHOD_NAMES.get(e["method"], e["method"])
        ev_drift = None
        if threshold is not None and method is not None:
            name = method
            if name == "ks":
                ev_drift = a <= threshold
            elif name in ("chisquare", "z"):
                ev_drift = a < threshold
            else:
                ev_drift = a >= threshold
        n_drift += bool(ev_drift)
        if method is not None and method != f["stattest"]:
            failures.append(f"{case}/{col}: test evidently {method}, quiver {f['stattest']}")
        elif not ok:
            failures.append(f"{case}/{col} ({f['stattest']}): score evidently {a!r}, quiver {b!r}")
        elif ev_drift is not None and ev_drift != f["drifted"]:
            failures.append(f"{case}/{col}: drift evidently {ev_drift}, quiver {f['drifted']}")
        else:
            passed += 1
    share = count["share"] if isinstance(count, dict) else None
    if share is not None and abs(share - q["share_drifted"]) > 1e-12:
        failures.append(f"{case}: share evidently {share}, quiver {q['share_drifted']}")
    if count is not None:
        ev_dataset = (n_drift / len(ev)) >= 0.5
        if ev_dataset != q["dataset_drift"]:
            failures.append(f"{case}: dataset drift evidently {ev_dataset}, quiver {q['dataset_drift']}")
    print(f"{case}: {len(ev)} columns, {sum(f['drifted'] for f in q['features'])} drifted, tests {sorted({f['stattest'] for f in q['features']})}")


rng = np.random.default_rng(24)
check("small (400 vs 500)", frame(rng, 400, 0, False), frame(rng, 500, 0.3, False))
check("small, no drift (1000 vs 700)", frame(rng, 1000, 0, False), frame(rng, 700, 0, False))
check("small with nulls (900 vs 800)", frame(rng, 900, 0, True), frame(rng, 800, 0.4, True))
check("small reference, large current (600 vs 12000: asymptotic KS)", frame(rng, 600, 0, False), frame(rng, 12000, 0.05, False))
check("equal sizes (500 vs 500)", frame(rng, 500, 0, False), frame(rng, 500, 0.1, False))
check("large (5000 vs 4000)", frame(rng, 5000, 0, False), frame(rng, 4000, 0.3, False))
check("large with nulls (3000 vs 3500)", frame(rng, 3000, 0, True), frame(rng, 3500, 0.2, True))
ref, cur = frame(rng, 3000, 0, True), frame(rng, 2500, 0.2, True)
check(
    "overrides (every test)",
    ref,
    cur,
    {
        "num_a": ("psi", 0.2),
        "num_b": ("kl_div", None),
        "num_c": ("hellinger", 0.05),
        "int_many": ("ks", 0.01),
        "num_few": ("jensenshannon", None),
        "cat": ("chisquare", None),
        "cat_two": ("z", None),
        "flag": ("hellinger", None),
        "int_few": ("psi", None),
    },
)
ref, cur = frame(rng, 800, 0, False), frame(rng, 900, 0.2, False)
check(
    "overrides, small (binned on values)",
    ref,
    cur,
    {"num_a": ("wasserstein", None), "num_few": ("psi", None), "cat": ("jensenshannon", 0.05), "int_many": ("hellinger", None), "num_b": ("kl_div", None)},
)

print(f"{passed} passed, {len(failures)} failed")
for f in failures:
    print("FAIL", f)
sys.exit(1 if failures else 0)
