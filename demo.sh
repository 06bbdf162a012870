#!/usr/bin/env bash
# The main job on shipped data. Until `rcnn detect` and the demo model ship, this runs the
# stages that work, on the shipped raccoon photos and reference data: selective-search
# proposals with their recall against the annotations, the evaluator, and the region
# classifier (the paper's network, an imported torchvision state dict, its speed here).
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh >/dev/null
rcnn=target/release/rcnn
out=${OUT_DIR:-demo-out}
mkdir -p "$out"

echo "== rcnn proposals (fast selective search on five raccoon photos, recall against their boxes)"
$rcnn proposals data/raccoon/images/raccoon-{1,10,100,105,106}.jpg --gt data/raccoon/annotations \
  --out "$out/proposals.csv" --plot "$out/recall.png" | tail -n 16

echo
echo "== rcnn map-eval (the VOC toy set: published AP 0.886364 11-point, 0.895833 all-point)"
$rcnn map-eval --gt eval/tests/fixtures/eval-reference/voc-toy-cat/gts \
  --dets eval/tests/fixtures/eval-reference/voc-toy-cat/dets --metric voc07 --plots "$out/plots"

echo
echo "== rcnn model-info (paper layout, Table 1, ILSVRC detection head)"
$rcnn model-info --layout paper --device cpu

echo
echo "== rcnn import-weights (a torchvision GoogLeNet state dict -> our model file)"
$rcnn import-weights tests/fixtures/googlenet_parity/googlenet_tv10_f16.pth --out "$out/googlenet_tv10.safetensors"
$rcnn model-info --model "$out/googlenet_tv10.safetensors" --device cpu | tail -n 2

echo
echo "== rcnn bench classifier (batch 1 and 32; the full table: rcnn bench classifier)"
$rcnn bench classifier --batch-sizes 1,32 --min-seconds 0.5
