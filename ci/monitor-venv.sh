#!/usr/bin/env bash
# Creates (once) the Python venv with Evidently 0.7 (the drift parity reference and the drift
# benchmark's peer; Evidently 0.7 needs pandas < 3) under the cargo target directory, and prints
# its python path.
set -euo pipefail
target="${CARGO_TARGET_DIR:-$(cd "$(dirname "$0")/.." && pwd)/target}"
venv="$target/monitor-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import evidently, pandas, pyarrow" 2>/dev/null; then
  mkdir -p "$target"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "evidently==0.7.*" "pandas<3" pyarrow >&2
fi
echo "$venv/bin/python"
