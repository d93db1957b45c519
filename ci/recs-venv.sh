#!/usr/bin/env bash
# Creates (once) the Python venv with the `implicit` library (0.7, CPU wheels from PyPI) that
# Quiver's recommenders are checked and benchmarked against, under the cargo target directory,
# and prints its python path.
set -euo pipefail
target="${CARGO_TARGET_DIR:-$(cd "$(dirname "$0")/.." && pwd)/target}"
venv="$target/recs-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import implicit, scipy, numpy, pyarrow" 2>/dev/null; then
  mkdir -p "$target"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "implicit==0.7.*" scipy numpy pyarrow threadpoolctl >&2
fi
echo "$venv/bin/python"
