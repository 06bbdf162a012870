#!/usr/bin/env bash
# One-command set-up on Debian 12: system packages, libtorch into ./third_party, then the
# release binary. Idempotent: each step checks before it works, so running it again is quick.
set -euo pipefail
cd "$(dirname "$0")"

TORCH_VERSION=2.11.0 # tch 0.24.0 checks for exactly this libtorch
LIBTORCH_DIR=third_party/libtorch-${TORCH_VERSION}
APT_PACKAGES="libopencv-dev clang libclang-dev pkg-config fonts-dejavu-core python3-venv"
command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1 || APT_PACKAGES="$APT_PACKAGES python3-pip"

step() { printf '== %s\n' "$*"; }
start=$SECONDS

if ! command -v cargo >/dev/null; then
  echo "setup.sh: cargo not found. Install Rust 1.88 or newer (https://rustup.rs), then run me again." >&2
  exit 1
fi

# 1. Debian packages: OpenCV 4.6 (core, imgproc, ximgproc) and clang for the opencv crate.
missing=""
for p in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  step "apt-get install$missing"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086 # one argument per package
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# 2. libtorch from the PyPI torch wheel, CPU-side pieces only (about 540 MB): libtorch_cpu
#    needs libcudart and libcupti even without a GPU. Installed beside, then moved into place,
#    so an interrupted download never looks finished.
if [ ! -f "$LIBTORCH_DIR/torch/build-version" ]; then
  step "libtorch $TORCH_VERSION into $LIBTORCH_DIR"
  rm -rf "$LIBTORCH_DIR.partial"
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install -q --no-deps --no-compile \
    --disable-pip-version-check --root-user-action=ignore --target "$LIBTORCH_DIR.partial" \
    "torch==$TORCH_VERSION" nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85
  echo "$TORCH_VERSION" >"$LIBTORCH_DIR.partial/torch/build-version" # read by tch's version check
  mv "$LIBTORCH_DIR.partial" "$LIBTORCH_DIR"
fi

# 2b. On a machine with an NVIDIA GPU, also the CUDA libraries libtorch_cuda.so loads: the
#     wheel's own pinned requirements (cuda-toolkit[...] and nvidia-*, read from its METADATA),
#     about 3 GB, into the same folder, where libtorch_cuda's RPATH ($ORIGIN/../../nvidia/...)
#     finds them. RCNN_CUDA=1 forces this step, RCNN_CUDA=0 skips it.
gpu=${RCNN_CUDA:-}
if [ -z "$gpu" ]; then
  gpu=0
  { [ -e /dev/nvidia0 ] || command -v nvidia-smi >/dev/null; } && gpu=1
fi
if [ "$gpu" = 1 ] && [ ! -f "$LIBTORCH_DIR/cuda-libraries" ]; then
  requirements=$(sed -n 's/^Requires-Dist: \(\(cuda-toolkit\|nvidia-\)[^;]*\);.*platform_system == "Linux".*/\1/p' \
    "$LIBTORCH_DIR"/torch-"$TORCH_VERSION".dist-info/METADATA | tr -d ' ')
  step "CUDA libraries for libtorch_cuda.so into $LIBTORCH_DIR:" "${requirements//$'\n'/ }"
  rm -rf "$LIBTORCH_DIR.cuda.partial"
  # shellcheck disable=SC2086 # one argument per requirement
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install -q --no-compile --disable-pip-version-check \
    --root-user-action=ignore --target "$LIBTORCH_DIR.cuda.partial" $requirements
  # pip --target will not merge into the existing nvidia/ namespace folder: copy it over.
  cp -a "$LIBTORCH_DIR.cuda.partial/nvidia/." "$LIBTORCH_DIR/nvidia/"
  rm -rf "$LIBTORCH_DIR.cuda.partial"
  echo "$requirements" >"$LIBTORCH_DIR/cuda-libraries"
fi

# 3. The release binary (.cargo/config.toml points LIBTORCH at the folder above).
step "cargo build --release"
cargo build --release --locked --quiet
step "set-up done in $((SECONDS - start)) s: target/release/rcnn"
