#!/usr/bin/env bash
# Creates (once) a Python venv with Apache Airflow 2.10 under the cargo target directory, for the
# check that `quiver jobs export --airflow` writes a DAG Airflow imports, and prints its python.
set -euo pipefail
target="${CARGO_TARGET_DIR:-$(cd "$(dirname "$0")/.." && pwd)/target}"
venv="$target/airflow-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import airflow" 2>/dev/null; then
  mkdir -p "$target"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "apache-airflow==2.10.*" >&2
fi
echo "$venv/bin/python"
