#!/usr/bin/env bash
# The main job on shipped data. Until the demo detector model ships (issue 6), this runs the
# furthest stage that works: the region classifier. It describes the paper's network, imports
# torchvision-layout weights (the parity fixture) into a model file and describes that, and
# times the classifier on this machine against PyTorch when scripts/setup-reference.sh has run.
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh >/dev/null
rcnn=target/release/rcnn
out=${OUT_DIR:-demo-out}
mkdir -p "$out"

echo "== rcnn model-info (paper layout, Table 1, ILSVRC detection head)"
$rcnn model-info --layout paper --device cpu

echo
echo "== rcnn import-weights (a torchvision GoogLeNet state dict -> our model file)"
$rcnn import-weights tests/fixtures/googlenet_parity/googlenet_tv10_f16.pth --out "$out/googlenet_tv10.safetensors"
$rcnn model-info --model "$out/googlenet_tv10.safetensors" --device cpu | tail -n 2

echo
echo "== rcnn bench classifier (batch 1 and 32; the full table: rcnn bench classifier)"
$rcnn bench classifier --batch-sizes 1,32 --min-seconds 0.5
