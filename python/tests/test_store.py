"""The quiver package on the churn demo: every FeatureStore method, equal to the CLI and the
server on the same repository, zero copies, the GIL released, Ctrl-C."""

import os
import signal
import threading
import time

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import quiver
from conftest import Server, run_cli


def labels(repo) -> pa.Table:
    return pq.read_table(repo / "data" / "labels.parquet")


def assert_tables_equal(a: pa.Table, b: pa.Table):
    assert a.column_names == b.column_names
    assert a.num_rows == b.num_rows
    for name in a.column_names:
        x, y = a.column(name), b.column(name)
        assert x.type == y.type, name
        assert x.to_pylist() == y.to_pylist(), name


def test_historical_equals_the_cli(store, demo_repo, tmp_path):
    out = tmp_path / "cli.parquet"
    run_cli(demo_repo, "historical", "--entities", str(demo_repo / "data" / "labels.parquet"),
            "--service", "churn_v1", "--out", str(out))
    cli = pq.read_table(out)
    mine = store.get_historical_features(labels(demo_repo), service="churn_v1", progress=False)
    assert isinstance(mine, pa.Table)
    assert mine.num_rows == 566 or mine.num_rows > 0
    assert_tables_equal(mine, cli)
    # The frame type in is the frame type out, with the same values.
    as_pandas = store.get_historical_features(labels(demo_repo).to_pandas(), service="churn_v1", progress=False)
    assert isinstance(as_pandas, pd.DataFrame)
    pd.testing.assert_frame_equal(as_pandas, cli.to_pandas())
    as_polars = store.get_historical_features(pl.from_arrow(labels(demo_repo)), service="churn_v1", progress=False)
    assert isinstance(as_polars, pl.DataFrame)
    assert as_polars.equals(pl.from_arrow(cli))


def test_historical_features_list_and_full_names(store, demo_repo, tmp_path):
    out = tmp_path / "cli.parquet"
    feats = ["user_purchases:purchase_count_30d", "user_profile:*"]
    run_cli(demo_repo, "historical", "--entities", str(demo_repo / "data" / "labels.parquet"),
            "--features", ",".join(feats), "--full-names", "--out", str(out))
    mine = store.get_historical_features(labels(demo_repo), features=feats, full_feature_names=True, progress=False)
    assert "user_purchases__purchase_count_30d" in mine.column_names
    assert_tables_equal(mine, pq.read_table(out))


def test_results_are_the_rust_buffers(store, demo_repo):
    """Zero copy: every buffer of the returned pyarrow table is one Rust allocated."""
    table = store.get_historical_features(labels(demo_repo), service="churn_v1", progress=False)
    rust = set(store._store.last_result_buffers())
    python = [b.address for col in table.columns for chunk in col.chunks for b in chunk.buffers() if b is not None]
    assert len(python) >= table.num_columns
    assert [a for a in python if a not in rust] == []
    # predict's result too
    scored = store.predict("churn", labels(demo_repo), progress=False)
    rust = set(store._store.last_result_buffers())
    python = [b.address for col in scored.columns for chunk in col.chunks for b in chunk.buffers() if b is not None]
    assert python and all(a in rust for a in python)


def test_online_features_equal_the_server(store, demo_repo):
    rows = [{"user_id": 1}, {"user_id": 2}, {"user_id": 999999}]
    mine = store.get_online_features(service="churn_v1", entity_rows=rows)
    listed = store.get_online_features(
        features=["user_purchases:purchase_count_30d", "user_profile:age"], entity_rows=rows, full_feature_names=True
    )
    # The embedded store is the server's while it runs: ask it after.
    with Server(demo_repo) as server:
        theirs = server.post("/get-online-features", {"feature_service": "churn_v1", "entities": {"user_id": [1, 2, 999999]}})
        theirs_listed = server.post(
            "/get-online-features",
            {"features": ["user_purchases:purchase_count_30d", "user_profile:age"],
             "entities": {"user_id": [1, 2, 999999]}, "full_feature_names": True},
        )
    for a, b in [(mine, theirs), (listed, theirs_listed)]:
        assert a.raw["metadata"] == b["metadata"]
        assert [r["values"] for r in a.raw["results"]] == [r["values"] for r in b["results"]]
        assert [r["statuses"] for r in a.raw["results"]] == [r["statuses"] for r in b["results"]]
    d = mine.to_dict()
    assert d["user_id"] == [1, 2, 999999]
    assert mine.statuses()["age"][2] == "NOT_FOUND"
    assert listed.feature_names == ["user_id", "user_purchases__purchase_count_30d", "user_profile__age"]
    assert list(mine.to_df().columns) == mine.feature_names


def test_materialize_and_incremental(repo_copy):
    s = quiver.FeatureStore(repo_copy)
    report = s.materialize("2025-01-01", "2025-06-30", feature_views=["user_profile"], progress=False)
    assert [v["view"] for v in report["views"]] == ["user_profile"]
    assert report["views"][0]["written"] > 0
    inc = s.materialize_incremental("2025-07-01", progress=False)
    assert {v["view"] for v in inc["views"]} >= {"user_profile", "user_purchases"}
    with pytest.raises(quiver.DataError, match="start .* is after end"):
        s.materialize("2025-07-01", "2025-01-01")
    with pytest.raises(quiver.QuiverError, match="no feature view 'nope'; known: "):
        s.materialize("2025-01-01", "2025-06-30", feature_views=["nope"])


def test_plan_apply_and_definitions(repo_copy):
    s = quiver.FeatureStore(repo_copy)
    p = s.plan()
    assert p["base_version"] >= 1 and "No changes" in p["text"]
    assert s.apply()["version"] == p["base_version"]
    names = {v["name"] for v in s.list_feature_views()}
    assert {"user_profile", "user_purchases", "user_engagement"} <= names
    svc = s.get_feature_service("churn_v1")
    assert "user_purchases:purchase_count_30d" in svc.features
    with pytest.raises(quiver.DefinitionError, match="unknown feature service 'nope'; known: churn_v1"):
        s.get_feature_service("nope")
    # a breaking change: a feature churn_v1 reads is removed
    f = next(p for p in (repo_copy / "features").glob("*.yaml") if "purchase_count_7d" in p.read_text())
    text = f.read_text()
    f.write_text("\n".join(line for line in text.splitlines() if "purchase_count_7d" not in line) + "\n")
    with pytest.raises(quiver.DefinitionError):
        s.plan(); s.apply()
    f.write_text(text)
    # invalid YAML names the file
    f.write_text(text + "\n  - [unclosed\n")
    with pytest.raises(quiver.DefinitionError, match=f.name):
        s.plan()
    f.write_text(text)


def test_train_and_predict_equal_the_cli(repo_copy, tmp_path):
    s = quiver.FeatureStore(repo_copy)
    lab = labels(repo_copy).to_pandas()
    trained = s.train("churn_v1", lab, "churned", name="churn_py", params={"num_trees": 30}, progress=False)
    assert trained["name"] == "churn_py" and trained["version"] == 1
    assert 0.5 < trained["metrics"]["roc_auc"] <= 1.0
    scored = s.predict("churn_py:1", lab, progress=False)
    assert isinstance(scored, pd.DataFrame) and "score" in scored.columns
    out = tmp_path / "p.parquet"
    run_cli(repo_copy, "models", "predict", "churn_py:1", "--entities", str(repo_copy / "data" / "labels.parquet"), "--out", str(out))
    cli = pq.read_table(out).to_pandas()
    np.testing.assert_array_equal(scored["score"].to_numpy(), cli["score"].to_numpy())
    with pytest.raises(quiver.ModelError):
        s.predict("no_such_model", lab, progress=False)
    with pytest.raises(quiver.DataError, match="no_such_label"):
        s.train("churn_v1", lab, "no_such_label", progress=False)


def test_drift_equals_the_cli(store, demo_repo, tmp_path):
    train = pq.read_table(demo_repo / "train.parquet")
    half = train.num_rows // 2
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    pq.write_table(train.slice(0, half), a)
    pq.write_table(train.slice(half), b)
    cli = run_cli(demo_repo, "drift", "--reference", str(a), "--current", str(b), json_out=True)
    from_frames = store.drift(reference=train.slice(0, half).to_pandas(), current=pl.from_arrow(train.slice(half)))
    from_files = store.drift(reference=str(a), current=str(b))
    assert from_files == cli
    key = lambda r: [(f["name"], f["stattest"], f["score"], f["drifted"]) for f in r["features"]]
    assert key(from_frames) == key(cli)


def test_drift_takes_the_clis_data_set_specs(store, demo_repo):
    # The strings `quiver drift` takes, opened by the same code (files relative to the repository).
    ref, cur = "data/events.parquet@2025-04-01..2025-05-01", "data/events.parquet@2025-05-01..2025-06-01"
    cli = run_cli(demo_repo, "drift", "--reference", str(demo_repo / ref), "--current", str(demo_repo / cur), json_out=True)
    assert store.drift(reference=ref, current=cur) == cli
    assert "event_timestamp" not in [f["name"] for f in cli["features"]]
    # A model's training sample against itself: the service's inputs, none drifted.
    same = store.drift(reference="model:churn", current="model:churn", features=["user_profile__age"])
    assert [f["name"] for f in same["features"]] == ["user_profile__age"]
    assert not same["dataset_drift"]
    with pytest.raises(quiver.DataError, match="no prediction log"):
        store.drift(reference="model:churn", current="log:nope@2025-01-01..2025-02-01")
    with pytest.raises(quiver.DataError, match="ends before it starts"):
        store.drift(reference="model:churn", current="log:churn@2025-02-01..2025-01-01")


def test_bad_input_raises_clear_errors(store, demo_repo, tmp_path):
    no_ts = labels(demo_repo).drop_columns(["event_timestamp"])
    with pytest.raises(quiver.DataError, match="event_timestamp"):
        store.get_historical_features(no_ts, service="churn_v1", progress=False)
    with pytest.raises(quiver.DefinitionError, match="no_view"):
        store.get_historical_features(labels(demo_repo), features=["no_view:x"], progress=False)
    with pytest.raises(quiver.DataError, match="not a data frame"):
        store.get_historical_features([1, 2, 3], service="churn_v1")
    with pytest.raises(quiver.DefinitionError, match="no quiver.yaml"):
        quiver.FeatureStore(tmp_path)
    assert issubclass(quiver.StoreError, quiver.QuiverError)


def test_progress_is_reported(store, demo_repo):
    seen = []
    store.get_historical_features(labels(demo_repo), service="churn_v1", progress=lambda m, d, t: seen.append((m, d, t)))
    assert seen, "the callback was never called"
    message, done, total = seen[-1]
    assert total == 566 or total == labels(demo_repo).num_rows
    assert done > 0 and message.startswith("reading ")


def big_entities(n: int) -> pa.Table:
    rng = np.random.default_rng(7)
    ts = np.datetime64("2025-05-01T00:00:00", "us") + rng.integers(0, 60 * 86400 * 10**6, n).astype("timedelta64[us]")
    return pa.table({
        "user_id": pa.array(rng.integers(1, 301, n), pa.int64()),
        "event_timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
    })


def test_gil_is_released_and_ctrl_c_interrupts(store):
    entities = big_entities(400_000)
    # The GIL is free while Rust works: a Python thread keeps counting.
    ticks = [0]
    stop = threading.Event()

    def count():
        while not stop.is_set():
            ticks[0] += 1
            time.sleep(0.001)

    t = threading.Thread(target=count)
    t.start()
    started = time.perf_counter()
    full = store.get_historical_features(entities, service="churn_v1", progress=False)
    whole = time.perf_counter() - started
    stop.set()
    t.join()
    assert full.num_rows == entities.num_rows
    assert ticks[0] > 10, f"the counting thread ran {ticks[0]} times in {whole:.2f} s"

    # Ctrl-C (SIGINT to the process) a quarter into the same query: KeyboardInterrupt, soon.
    delay = max(whole / 4, 0.05)
    timer = threading.Timer(delay, lambda: os.kill(os.getpid(), signal.SIGINT))
    started = time.perf_counter()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        store.get_historical_features(entities, service="churn_v1", progress=False)
    interrupted = time.perf_counter() - started
    timer.join()
    assert interrupted < whole, f"interrupted after {interrupted:.2f} s, the query takes {whole:.2f} s"
    # The store is usable right after.
    again = store.get_historical_features(entities.slice(0, 1000), service="churn_v1", progress=False)
    assert again.num_rows == 1000
