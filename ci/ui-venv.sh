#!/usr/bin/env bash
# Creates (once) the Python venv with Selenium 4 (the web UI's browser tests drive Debian's
# headless Chromium through its chromedriver) under the cargo target directory, and prints its
# python path.
set -euo pipefail
target="${CARGO_TARGET_DIR:-$(cd "$(dirname "$0")/.." && pwd)/target}"
venv="$target/ui-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import selenium" 2>/dev/null; then
  mkdir -p "$target"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "selenium==4.*" >&2
fi
echo "$venv/bin/python"
