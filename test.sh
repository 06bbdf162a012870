#!/usr/bin/env bash
# Set-up when needed, then every test of the workspace (release profile: it shares the
# build that set-up made). No Python, no GPU needed; no network beyond set-up (and Slurm's
# Debian packages, for the cluster test, where they are missing).
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh
cargo test --release --workspace --locked
# The cluster recipes on a real Slurm on localhost (a few minutes); it says why when this
# machine cannot run it (not root, no package registry) and skips.
scripts/slurm-test.sh
