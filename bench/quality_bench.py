#!/usr/bin/env python3
"""The data-quality benchmark's data and its peer (see quality_bench.sh).

  quality_bench.py generate OUT.parquet ROWS   10M synthetic events with known faults
  quality_bench.py ge FILE.parquet OUT.json     the nine checks in Great Expectations (pandas)

The events: event_id (unique but for 100 repeated ids), user_id, event_type (view,
add_to_cart, purchase; 30 nulls and 50 'refund'), amount (1% nulls on non-purchases, 40 values
of 20,000 and 20 purchases of 0) and event_timestamp (uniform over the 30 days before
2025-06-30T00:00:00Z). Great Expectations has no volume check and no SQL expression on pandas:
the volume check's robust z-score is computed with numpy beside it, and the SQL check
`amount > 0 OR event_type <> 'purchase'` is its `row_condition` equivalent (amount > 0 where
event_type == 'purchase').
"""

import json
import resource
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

AS_OF = np.datetime64("2025-06-30T00:00:00", "us")
HOUR = 3_600_000_000
DAY = 24 * HOUR


def generate(out, rows):
    rng = np.random.default_rng(7)
    ts = AS_OF - rng.integers(0, 30 * DAY, rows).astype("timedelta64[us]")
    event_id = np.arange(rows, dtype=np.int64)
    event_id[rows - 100 :] = event_id[:100]  # 100 repeated ids
    user_id = rng.integers(1, 1_000_000, rows)
    kinds = np.array(["view", "add_to_cart", "purchase"])
    kind = kinds[rng.choice(3, rows, p=[0.8, 0.15, 0.05])]
    amount = np.round(rng.lognormal(3.0, 1.0, rows), 2)
    amount[amount > 9999] = 9999
    kind_o = kind.astype(object)
    kind_o[rng.choice(rows, 50, replace=False)] = "refund"
    null_kind = rng.choice(rows, 30, replace=False)
    kind_o[null_kind] = None
    purchases = np.flatnonzero(kind_o == "purchase")
    amount[rng.choice(purchases, 20, replace=False)] = 0.0
    others = np.flatnonzero((kind_o != "purchase") & (kind_o != None))  # noqa: E711
    amount_mask = np.zeros(rows, dtype=bool)
    amount_mask[rng.choice(others, rows // 100, replace=False)] = True
    big = rng.choice(np.flatnonzero(~amount_mask & (kind_o != "purchase")), 40, replace=False)
    amount[big] = 20000.0
    table = pa.table(
        {
            "event_id": event_id,
            "user_id": user_id,
            "event_type": pa.array(kind_o, type=pa.string()),
            "amount": pa.array(amount, mask=amount_mask),
            "event_timestamp": pa.array(ts, type=pa.timestamp("us", tz="UTC")),
        }
    )
    pq.write_table(table, out, row_group_size=1_000_000)


def robust_z(last, ref):
    ref = np.sort(np.asarray(ref, dtype=float))
    med = float(np.median(ref))
    dev = np.abs(ref - med)
    mad = float(np.median(dev))
    scale = 1.4826 * mad
    if scale == 0 and len(dev):
        scale = 1.2533 * float(dev.mean())
    d = last - med
    return d / scale if scale > 0 else (0.0 if d == 0 else float("inf") * np.sign(d))


def ge(path, out):
    import great_expectations as gx
    import pandas as pd

    started = time.perf_counter()
    df = pd.read_parquet(path)
    read_s = time.perf_counter() - started
    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_pandas("p")
        .add_dataframe_asset("events")
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": df})
    )
    E = gx.expectations
    suite = context.suites.add(gx.ExpectationSuite(name="events"))
    as_of = pd.Timestamp("2025-06-30T00:00:00Z")
    checks = {
        "schema": [
            E.ExpectTableColumnsToMatchSet(
                column_set=["event_id", "user_id", "event_type", "amount", "event_timestamp"],
                exact_match=False,
            ),
            E.ExpectColumnValuesToBeOfType(column="user_id", type_="int64"),
            E.ExpectColumnValuesToBeOfType(column="amount", type_="float64"),
        ],
        "not_null": [
            E.ExpectColumnValuesToNotBeNull(column="user_id"),
            E.ExpectColumnValuesToNotBeNull(column="event_type"),
        ],
        "null_share": [E.ExpectColumnValuesToNotBeNull(column="amount", mostly=0.95)],
        "range": [E.ExpectColumnValuesToBeBetween(column="amount", min_value=0, max_value=10000)],
        "allowed_values": [
            E.ExpectColumnValuesToBeInSet(
                column="event_type", value_set=["view", "add_to_cart", "purchase"]
            )
        ],
        "unique": [E.ExpectColumnValuesToBeUnique(column="event_id")],
        "freshness": [
            E.ExpectColumnMaxToBeBetween(
                column="event_timestamp", min_value=as_of - pd.Timedelta(minutes=5)
            )
        ],
        "sql": [
            E.ExpectColumnValuesToBeBetween(
                column="amount",
                min_value=0,
                strict_min=True,
                row_condition='event_type=="purchase"',
                condition_parser="pandas",
            )
        ],
    }
    for name, exps in checks.items():
        for e in exps:
            e.meta = {"check": name}
            suite.add_expectation(e)
    validated = batch.validate(suite, result_format="SUMMARY")
    results = {}
    for r in validated.results:
        name = r.expectation_config.meta["check"]
        entry = results.setdefault(name, {"success": True, "unexpected_count": 0})
        entry["success"] = entry["success"] and bool(r.success)
        entry["unexpected_count"] += int(r.result.get("unexpected_count") or 0)
    # Volume: not an expectation of Great Expectations; the same robust z-score with numpy.
    ts = df["event_timestamp"].to_numpy("datetime64[us]").astype(np.int64)
    back = AS_OF.astype(np.int64) - ts
    k = back[back >= 0] // HOUR
    counts = np.bincount(k[k <= 14 * 24], minlength=14 * 24 + 1)
    z = robust_z(counts[0], counts[1:])
    results["volume"] = {"success": bool(abs(z) <= 4), "z": float(z), "rows": int(counts[0])}
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    doc = {
        "seconds": seconds,
        "read_seconds": read_s,
        "peak_rss_mb": peak_mb,
        "rows": len(df),
        "great_expectations": gx.__version__,
        "results": results,
    }
    json.dump(doc, open(out, "w"), indent=2)
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    if sys.argv[1] == "generate":
        generate(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "ge":
        ge(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
