#!/usr/bin/env bash
# Creates (once) the Python venv with Great Expectations 1.x (the quality benchmark's peer, on
# pandas) under the cargo target directory, and prints its python path.
set -euo pipefail
target="${CARGO_TARGET_DIR:-$(cd "$(dirname "$0")/.." && pwd)/target}"
venv="$target/quality-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import great_expectations, pandas, pyarrow" 2>/dev/null; then
  mkdir -p "$target"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "great_expectations==1.*" pandas pyarrow >&2
fi
echo "$venv/bin/python"
