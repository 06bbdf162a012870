#!/usr/bin/env bash
# One-command set-up on Debian 12: system packages, libtorch into ./third_party,
# then the release binary. Safe to run again: each step checks before it works.
set -euo pipefail
cd "$(dirname "$0")"

TORCH_VERSION=2.11.0
LIBTORCH_DIR=third_party/libtorch-${TORCH_VERSION}
APT_PACKAGES="libopencv-dev clang libclang-dev pkg-config"

step() { printf '\n== %s\n' "$*"; }

# 1. Debian packages: OpenCV 4.6 (core, imgproc, ximgproc) and clang for the opencv crate's bindings.
missing=""
for p in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  step "apt-get install$missing"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
else
  step "Debian packages present"
fi

# 2. libtorch from the PyPI torch wheel (tch 0.24.0 pairs with libtorch 2.11.0).
#    Only the CPU-side pieces: libtorch_cpu needs libcudart and libcupti even without a GPU.
if [ ! -f "$LIBTORCH_DIR/torch/build-version" ]; then
  step "libtorch $TORCH_VERSION into $LIBTORCH_DIR"
  rm -rf "$LIBTORCH_DIR.partial"
  python3 -m pip install -q --no-deps --no-compile --disable-pip-version-check \
    --target "$LIBTORCH_DIR.partial" \
    "torch==$TORCH_VERSION" nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85
  # tch's build script reads this file to check the version.
  echo "$TORCH_VERSION" > "$LIBTORCH_DIR.partial/torch/build-version"
  mv "$LIBTORCH_DIR.partial" "$LIBTORCH_DIR"
else
  step "libtorch $TORCH_VERSION present"
fi

# 3. The release binary.
step "cargo build --release"
cargo build --release --locked
echo
echo "set-up done: target/release/rcnn"
