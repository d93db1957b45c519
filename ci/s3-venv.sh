#!/usr/bin/env bash
# Creates (once) the Python venv with moto's S3 server (an S3-compatible store on a loopback
# port, for the object-storage tests) and boto3 under the cargo target directory, and prints its
# python path.
set -euo pipefail
target="${CARGO_TARGET_DIR:-$(cd "$(dirname "$0")/.." && pwd)/target}"
venv="$target/s3-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import moto.server, boto3, pyarrow, numpy" 2>/dev/null; then
  mkdir -p "$target"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "moto[server]==5.*" "boto3" "pyarrow" "numpy" >&2
fi
echo "$venv/bin/python"
