#!/usr/bin/env bash
# Set-up when needed, then every test of the workspace (release profile: it shares the
# build that set-up made). No Python, no network beyond set-up, no GPU needed.
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh
cargo test --release --workspace --locked
