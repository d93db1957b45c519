#!/usr/bin/env bash
# Creates (once) the Python venv in which the `quiver` package (crates/quiver-py, built by maturin)
# is tested: maturin to build the wheel, pyarrow / pandas / polars for the data frames it takes
# and returns, pytest, tqdm for progress bars, LightGBM for examples/churn/notebook.py. Under the
# cargo target directory; prints its python path. Versions are pinned.
set -euo pipefail
target="${CARGO_TARGET_DIR:-$(cd "$(dirname "$0")/.." && pwd)/target}"
venv="$target/python-venv"
pins=("maturin==1.16.0" "pyarrow==26.0.1" "pandas==3.1.1" "polars==2.1.0" "pytest==9.0.3" "tqdm==4.70.1" "lightgbm==4.7.0" "numpy")
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import maturin, pyarrow, pandas, polars, pytest, tqdm, lightgbm" 2>/dev/null; then
  mkdir -p "$target"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "${pins[@]}" >&2
fi
echo "$venv/bin/python"
