#!/usr/bin/env bash
# Set-up when needed, then every test of the workspace (release profile: it shares the
# build that set-up made), the cluster recipes and the Python package. No GPU needed; no
# network beyond set-up, Slurm's Debian packages where they are missing, and the Python
# package registry (maturin, pytest, numpy, pycocotools) for the Python package's tests.
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh
cargo test --release --workspace --locked
# The cluster recipes on a real Slurm on localhost (a few minutes); it says why when this
# machine cannot run it (not root, no package registry) and skips.
scripts/slurm-test.sh
# The Python package against pycocotools (about 3 minutes the first time: a virtual environment,
# maturin, the extension built); it says why and skips where Python cannot make one.
scripts/python-test.sh
