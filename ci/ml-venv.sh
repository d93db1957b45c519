#!/usr/bin/env bash
# Creates (once) the Python venv with the ML libraries Quiver's models are checked against
# (LightGBM for model import and TreeSHAP parity, scikit-learn, numpy, MLflow), under the cargo
# target directory, and prints its python path.
set -euo pipefail
target="${CARGO_TARGET_DIR:-$(cd "$(dirname "$0")/.." && pwd)/target}"
venv="$target/ml-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import lightgbm, sklearn, numpy, mlflow" 2>/dev/null; then
  mkdir -p "$target"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "lightgbm==4.*" scikit-learn numpy "mlflow==3.*" >&2
fi
echo "$venv/bin/python"
