#!/usr/bin/env bash
# One command on a machine with an NVIDIA GPU: the model, classifier, detect and train tests on
# CUDA, the demo detector's AP in fp32/bf16/fp16, and the three benchmarks (classifier beside
# PyTorch, detect in steady state, train), written to bench/results/gpu-<card>-<date>.md (and
# into $OUT when set, as on a lent device machine).
#
#   scripts/gpu-check.sh                 # a GPU machine with ./setup.sh done (Rust and cargo there)
#   scripts/gpu-check.sh --bundle .device  # a lent machine: what scripts/gpu-bundle.sh packed here
#
# GPU_CHECK_QUICK=1 runs smaller benchmarks; GPU_CHECK_COMPILE=1 adds torch.compile's column.
# Each step runs under a time limit and the report is written whatever fails; the exit status
# says whether everything passed. Planned to take about 8 minutes on an H100 (a lent machine's
# command may run 10), most of it the benchmarks.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
repo=$PWD
bundle=""
[ "${1:-}" = "--bundle" ] && bundle=${2:?--bundle DIR}

say() { printf '\n== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }
failed=()
step() { # step NAME SECONDS COMMAND...: run, log into the report, remember failures
  local name=$1 limit=$2
  shift 2
  say "$name"
  {
    printf '\n### %s\n\n```\n$ %s\n' "$name" "$*"
  } >>"$report"
  timeout "$limit" "$@" 2>&1 | grep -v -E '^\s*$|has been running' | tee -a "$report"
  local rc=${PIPESTATUS[0]}
  printf '```\n' >>"$report"
  if [ "$rc" -ne 0 ]; then
    failed+=("$name (exit $rc)")
    printf '\n**%s failed (exit %s).**\n' "$name" "$rc" >>"$report"
  fi
}

# --- the binary and, from a bundle, the test executables -------------------------------------
if [ -n "$bundle" ]; then
  b=/tmp/rcnn-bundle
  rm -rf "$b" && mkdir -p "$b/tests"
  tar -xJf "$bundle/bundle.tar.xz" -C "$b" && tar -xJf "$bundle/tests.tar.xz" -C "$b/tests" || exit 2
  torch_lib=$(python3 -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))') || exit 2
  export LD_LIBRARY_PATH="$b/lib:$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # The tests were built in another folder: make that path lead here, binary included.
  built_in=$(cat "$b/tests/manifest-dir")
  if [ "$built_in" != "$repo" ] && [ ! -e "$built_in" ]; then
    mkdir -p "$(dirname "$built_in")" && ln -s "$repo" "$built_in"
  fi
  rcnn_path=$(cat "$b/tests/rcnn-path")
  mkdir -p "$(dirname "$rcnn_path")" && cp "$b/rcnn" "$rcnn_path"
  rcnn=$rcnn_path
else
  command -v cargo >/dev/null || { echo "gpu-check.sh: no cargo here; pass --bundle DIR (scripts/gpu-bundle.sh)" >&2; exit 2; }
  cargo build --release --locked -q || exit 2
  rcnn=$repo/target/release/rcnn
fi
export RCNN_REFERENCE_PYTHON=${RCNN_REFERENCE_PYTHON:-$(command -v python3 || echo none)}

card=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 | tr '[:upper:]' '[:lower:]' | tr -cs 'a-z0-9' '-' | sed 's/^-//; s/-$//')
card=${card:-unknown-gpu}
mkdir -p bench/results
report=bench/results/gpu-$card-$(date -u +%Y-%m-%d).md
{
  echo "# GPU check: $card, $(date -u +%Y-%m-%d)"
  echo
  commit=$(cat "${b:-/nonexistent}/tests/commit" 2>/dev/null || git rev-parse --short HEAD 2>/dev/null || echo unknown)
  echo "Made by \`scripts/gpu-check.sh${bundle:+ --bundle $bundle}\` at commit $commit; every number below was measured in this run."
} >"$report"

quick=${GPU_CHECK_QUICK:-0}
step "machine" 60 bash -c "nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv; nproc; '$rcnn' env"
"$rcnn" env 2>/dev/null | grep -q "^CUDA *[1-9][0-9]* device" || failed+=("CUDA is not usable: see rcnn env above")

# --- tests on CUDA -----------------------------------------------------------------------------
export RCNN_TEST_DEVICE=cuda
if [ -n "$bundle" ]; then
  step "tests on CUDA: model" 300 "$b/tests/model"
  step "tests on CUDA: ensemble, device warp, device" 300 "$b/tests/inception_rcnn" ensemble device
  step "tests on CUDA: detect" 400 "$b/tests/detect"
  # The CLI training tests compare a resumed run bit for bit and so run on the CPU whatever
  # RCNN_TEST_DEVICE says: nothing to learn from them here.
  step "tests on CUDA: train" 300 "$b/tests/train" tiny_model_learns
  step "tests on CUDA: classify (torchvision parity of 1, 10, 144 crops)" 300 "$b/tests/classify"
else
  step "tests on CUDA: model, detect" 600 cargo test --release --locked --test model --test detect
  step "tests on CUDA: train" 300 cargo test --release --locked --test train tiny_model_learns
  step "tests on CUDA: classify" 300 cargo test --release --locked --test classify
  step "tests on CUDA: ensemble, device warp, device" 300 cargo test --release --locked --lib -- ensemble device
fi
unset RCNN_TEST_DEVICE

# --- the demo detector in three precisions: AP50 on the raccoon test photos --------------------
for prec in fp32 bf16 fp16; do
  step "demo detector, $prec" 300 bash -c "'$rcnn' -q detect data/raccoon/test-images.txt --model data/models/raccoon-googlenet-paper-w025-s96.safetensors --device cuda --precision $prec --out /tmp/rcnn-demo-$prec && '$rcnn' map-eval --gt data/raccoon/annotations --dets /tmp/rcnn-demo-$prec/detections.csv --subset data/raccoon/test.txt --metric ilsvrc"
done

# --- the entry's proposals: MultiBox on the device, with the demo detector ----------------------
step "demo detector, entry's proposals (MultiBox on CUDA)" 300 bash -c "'$rcnn' detect data/raccoon/test-images.txt --model data/models/raccoon-googlenet-paper-w025-s96.safetensors --device cuda --mode entry --multibox data/models/raccoon-multibox-paper-w025-s224.safetensors --out /tmp/rcnn-demo-entry 2>&1 | grep -E 'MultiBox|images/s' && '$rcnn' map-eval --gt data/raccoon/annotations --dets /tmp/rcnn-demo-entry/detections.csv --subset data/raccoon/test.txt --metric voc"

# --- benchmarks --------------------------------------------------------------------------------
# shellcheck disable=SC2054 # "64,256" is one value
if [ "$quick" = 1 ]; then sizes=(--batch-sizes 256 --min-seconds 0.3); images=(--images 12); else sizes=(--batch-sizes 64,256 --min-seconds 0.5); images=(); fi
compile=()
[ "${GPU_CHECK_COMPILE:-0}" = 1 ] && compile=(--compile)
step "bench classifier (torchvision layout, beside PyTorch)" 420 "$rcnn" bench classifier --device cuda --layouts torchvision \
  --precisions fp32,bf16,fp16 --channels-last false,true "${sizes[@]}" --repeats 3 "${compile[@]}"
step "bench classifier (paper layout)" 240 "$rcnn" bench classifier --device cuda --layouts paper --precisions bf16,fp16 \
  --channels-last true "${sizes[@]}" --repeats 3 --reference none
step "bench detect (bf16, 2000 proposals per image)" 420 "$rcnn" bench detect --device cuda --precision bf16 --networks 1,6 \
  "${images[@]}" --worker-sweep 1,4,15
step "bench train" 300 "$rcnn" bench train --device cuda --precisions fp32,bf16,fp16
step "bench classify (bf16; 1, 10, 144 crops; 1 and 7 networks)" 240 "$rcnn" bench classify --device cuda --precision bf16

{
  echo
  if [ "${#failed[@]}" -eq 0 ]; then echo "All steps passed."; else printf 'Failed: %s\n' "${failed[@]}"; fi
} >>"$report"
[ -n "${OUT:-}" ] && cp "$report" "$OUT/"
say "report: $report"
[ "${#failed[@]}" -eq 0 ]
