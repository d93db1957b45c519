#!/usr/bin/env bash
# Creates (once) the Python venv with the peers Quiver is checked against, under the cargo
# target directory, and prints its python path.
set -euo pipefail
target="${CARGO_TARGET_DIR:-$(cd "$(dirname "$0")/.." && pwd)/target}"
venv="$target/peer-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import feast, duckdb, ibis" 2>/dev/null; then
  mkdir -p "$target"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "feast[duckdb]==0.67.0" redis >&2
fi
echo "$venv/bin/python"
