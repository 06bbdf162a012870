#!/usr/bin/env bash
# Packs what scripts/gpu-check.sh needs on a lent GPU machine, which has PyTorch 2.11 (its
# libtorch) but no Rust: the rcnn binary and the test executables, built here without the
# OpenCV-contrib feature (only OpenCV core and imgproc travel), with the shared libraries they
# need, into .device/ (git-ignored). Then prints the device command.
#
#   scripts/gpu-bundle.sh          # then, on the device: bash scripts/gpu-check.sh --bundle .device
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CARGO_TARGET_DIR=$root/target/gpu # its own folder: other features than ./setup.sh's build
bundle_tool=${DEVICE_BUNDLE:-../shared/tools/device-bundle}
[ -x "$bundle_tool" ] || { echo "gpu-bundle.sh: no device-bundle tool at $bundle_tool (set DEVICE_BUNDLE)" >&2; exit 2; }

cargo build --release --no-default-features --features cli --locked -p inception-rcnn --bin rcnn
# The test executables of the suites gpu-check.sh runs on CUDA.
mapfile -t tests < <(cargo test --release --no-default-features --features cli --no-run --locked -p inception-rcnn \
  --lib --test model --test detect --test train --test classify --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["target"]["name"] + " " + m["executable"])')
[ "${#tests[@]}" -eq 5 ] || { echo "gpu-bundle.sh: expected 5 test executables, got ${#tests[@]}" >&2; exit 1; }

mkdir -p .device
"$bundle_tool" "$CARGO_TARGET_DIR/release/rcnn" .device >/dev/null
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
for t in "${tests[@]}"; do
  cp "${t#* }" "$stage/${t%% *}"
done
# Tests find their fixtures and the rcnn binary by paths compiled in here.
echo "$root" >"$stage/manifest-dir"
echo "$CARGO_TARGET_DIR/release/rcnn" >"$stage/rcnn-path"
git rev-parse --short HEAD >"$stage/commit"
tar -C "$stage" -cJf .device/tests.tar.xz .
du -ch .device/*.tar.xz | tail -n 1 | sed 's/^/bundle and tests: /'
echo 'carry: [".device"]'
echo 'device command: bash scripts/gpu-check.sh --bundle .device'
