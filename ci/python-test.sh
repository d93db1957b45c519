#!/usr/bin/env bash
# The Python package: builds the wheel of crates/quiver-py with maturin (a debug build, sharing
# the cargo target directory) into the venv of ci/python-venv.sh, runs its pytest suite on the
# churn demo (against the quiver binary of `cargo test --workspace`) and the notebook example.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
quiver="${1:-$CARGO_TARGET_DIR/debug/quiver}"
py="$(ci/python-venv.sh)"
bin="$(dirname "$py")"
rm -f "$CARGO_TARGET_DIR"/wheels/quiver_fs-*.whl
(cd python && "$bin/maturin" build -q -o "$CARGO_TARGET_DIR/wheels")
"$py" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$CARGO_TARGET_DIR"/wheels/quiver_fs-*.whl
QUIVER_BIN="$quiver" "$bin/pytest" -q -p no:cacheprovider python/tests
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
demo="$scratch/repo"
"$quiver" --quiet demo run --dir "$demo" --users 300
"$py" examples/churn/notebook.py "$demo" "$quiver"
