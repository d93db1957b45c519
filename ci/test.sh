#!/usr/bin/env bash
# The test command: formatting, lints, every Rust test (SQLite and the local PostgreSQL), and the
# parity tests against Feast 0.67 (installed once in a venv under the cargo target directory).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
mkdir -p "$CARGO_TARGET_DIR"

# The examples' repositories and data go under one scratch folder, removed however the run ends
# (a CI machine runs this again and again: nothing may pile up in /tmp).
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
# A full disk fails builds and wheels with confusing errors: say up front how much room there is.
echo "== disk: $(df -h --output=avail "$CARGO_TARGET_DIR" | tail -1 | tr -d ' ') free for $CARGO_TARGET_DIR, $(df -h --output=avail "$scratch" | tail -1 | tr -d ' ') for $scratch"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo test"
cargo test --workspace 2>&1 | tee "$CARGO_TARGET_DIR/test.log"
echo "== Feast 0.67 parity"
py="$(ci/peer-venv.sh)"
PYTHONWARNINGS=ignore "$py" tests/parity/feast_parity.py "$CARGO_TARGET_DIR/debug/quiver"
echo "== Feast 0.67 online parity (Feast SDK remote client against feast serve and quiver serve)"
PATH="$(dirname "$py"):$PATH" PYTHONWARNINGS=ignore "$py" tests/parity/feast_online_parity.py "$CARGO_TARGET_DIR/debug/quiver"
echo "== LightGBM 4 parity (quiver models import + score vs Booster.predict, pred_contrib)"
mlpy="$(ci/ml-venv.sh)"
PYTHONWARNINGS=ignore "$mlpy" tests/parity/lightgbm_parity.py bash tests/parity/quiver_import_score.sh "$CARGO_TARGET_DIR/debug/quiver"
echo "== MLflow round trip (quiver train/promote/track/rollback/delete against a real mlflow server, read back with MlflowClient)"
PYTHONWARNINGS=ignore "$mlpy" tests/parity/mlflow_roundtrip.py "$CARGO_TARGET_DIR/debug/quiver"
echo "== Airflow 2.10 imports the DAG of quiver jobs export --airflow (schedules, retries, timeouts, dependencies)"
afpy="$(ci/airflow-venv.sh)"
PYTHONWARNINGS=ignore "$afpy" tests/parity/airflow_dag.py "$CARGO_TARGET_DIR/debug/quiver"
echo "== Evidently 0.7 drift parity (quiver drift --json vs DataDriftPreset: every test, scores within 1e-6, equal drift flags)"
monpy="$(ci/monitor-venv.sh)"
PYTHONWARNINGS=ignore "$monpy" tests/parity/drift_parity.py "$CARGO_TARGET_DIR/debug/quiver"
echo "== implicit 0.7 ALS parity (quiver recs train/evaluate vs AlternatingLeastSquares + ranking_metrics_at_k: precision@10 within 2%; implicit's factors through quiver's evaluator to 1e-9)"
recpy="$(ci/recs-venv.sh)"
PYTHONWARNINGS=ignore "$recpy" tests/parity/recs_parity.py "$CARGO_TARGET_DIR/debug/quiver"
echo "== Python package (maturin debug wheel of crates/quiver-py in a venv; pytest on the churn demo vs the CLI and the server; examples/churn/notebook.py)"
ci/python-test.sh "$CARGO_TARGET_DIR/debug/quiver"
echo "== the Python package's get_historical_features against Feast 0.67 (duckdb) on the parity data (the wheel in Feast's venv)"
"$py" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$CARGO_TARGET_DIR"/wheels/quiver_fs-*.whl
QUIVER_PY=1 PYTHONWARNINGS=ignore "$py" tests/parity/feast_parity.py "$CARGO_TARGET_DIR/debug/quiver" duckdb
echo "== web UI in headless Chromium (Selenium + Debian's chromedriver): every page of the churn demo, lineage to the model, online lookup, promote refused without the token and done with it, 1,000 views"
uipy="$(ci/ui-venv.sh)"
"$uipy" tests/ui/browser_test.py "$CARGO_TARGET_DIR/debug/quiver" "$CARGO_TARGET_DIR/ui-screenshots"
echo "== container image (Dockerfile on a debootstrap base): the churn demo applied, trained, materialized and served inside it on PostgreSQL and Redis, equal to the binary outside it; compose.yaml validated"
QUIVER_SCRATCH="$scratch" ci/docker-test.sh "$CARGO_TARGET_DIR/debug/quiver"
echo "== object storage (moto's S3 server on a loopback port): the churn demo with every source in s3://, apply, historical, train and materialize equal to the local-file run"
QUIVER_SCRATCH="$scratch" tests/s3/s3_test.sh "$CARGO_TARGET_DIR/debug/quiver"
echo "== Ballista cluster (quiver cluster scheduler + 2 executors on loopback ports): historical with string, composite and dense keys, windowed aggregations, a request-time view and the churn demo, the latest values snapshot reads, drift and quality checks, equal to the embedded engine; an executor killed mid-retrieval"
QUIVER_SCRATCH="$scratch" tests/cluster/cluster_test.sh "$CARGO_TARGET_DIR/debug/quiver"
echo "== examples/churn (synthetic shop, 2,000 users: GBDT churn model, mean review embeddings offline and served)"
QUIVER_MINILM_DIR="${QUIVER_MINILM_DIR:-$CARGO_TARGET_DIR/minilm}" bash examples/churn/run.sh "$CARGO_TARGET_DIR/debug/quiver" "$(mktemp -d -p "$scratch")" 2000
echo "== examples/sms_spam (real SMS data: text statistics, logistic regression, request-time scoring)"
bash examples/sms_spam/run.sh "$CARGO_TARGET_DIR/debug/quiver" "$(mktemp -d -p "$scratch")"
echo "== examples/product_categorization (hashed ids, brand x price-range cross, title keywords; multiclass GBDT; a new product as request data)"
bash examples/product_categorization/run.sh "$CARGO_TARGET_DIR/debug/quiver" "$(mktemp -d -p "$scratch")" 4000
echo "== examples/recommendations (the shop's clickstream, 2,000 users: ALS vs popularity, /recommend, an A/B test on simulated traffic)"
QUIVER_MINILM_DIR="${QUIVER_MINILM_DIR:-$CARGO_TARGET_DIR/minilm}" bash examples/recommendations/run.sh "$CARGO_TARGET_DIR/debug/quiver" "$(mktemp -d -p "$scratch")" 2000
