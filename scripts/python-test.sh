#!/usr/bin/env bash
# The Python package (python/, rcnn_eval): builds and installs it into .venv-py (git-ignored)
# with pip, which fetches maturin from the package registry, then runs its pytest suite against
# pycocotools 2.0.11. Where this machine's Python cannot make the environment it says why and
# skips; a package that does not build, or a failing test, fails.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${RCNN_PY_VENV:-.venv-py}
skip() {
  echo "python-test: skipped: $*"
  exit 0
}
command -v python3 >/dev/null || skip "no python3 on PATH"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 9))' || skip "python3 is older than 3.9"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" >/dev/null 2>&1 || {
    rm -rf "$VENV"
    skip "python3 -m venv failed (on Debian: apt-get install python3-venv)"
  }
fi
pip=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install "maturin>=1.5,<2" pytest numpy pycocotools==2.0.11 ||
  skip "could not install maturin, pytest, numpy and pycocotools 2.0.11 from the package registry"
echo "python-test: building and installing ./python into $VENV"
start=$SECONDS
"${pip[@]}" install --force-reinstall --no-deps ./python
echo "python-test: built in $((SECONDS - start)) s; pytest"
# From the repository root: python/rcnn_eval (no compiled module in it) must not shadow the
# installed package.
"$VENV/bin/python" -m pytest -q -p no:cacheprovider python/tests
