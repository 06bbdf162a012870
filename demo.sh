#!/usr/bin/env bash
# The main job on shipped data: the shipped demo detector (data/models/, trained by `rcnn train`
# on the raccoon train split) finds raccoons in the 40 test photos, draws what it found, and
# map-eval scores it against their boxes (AP at IoU 0.5, ILSVRC and VOC rules); the three-class
# BCCD detector (trained the same way, plus `rcnn train-heads`: box regression and class SVMs)
# does the same on the 72 BCCD test photos. Then the other
# stages on their own: proposals with their recall, the evaluator on a reference set with
# published AP, and the region classifier (the paper's network, an imported state dict).
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh >/dev/null
rcnn=target/release/rcnn
out=${OUT_DIR:-demo-out}
model=data/models/raccoon-googlenet-paper-w025-s96.safetensors
bccd=data/models/bccd-googlenet-paper-w025-s96.safetensors
mkdir -p "$out"

echo "== rcnn detect (the demo model on the 40 raccoon test photos; drawings in $out/detect/visual/index.html)"
$rcnn detect data/raccoon/test-images.txt --model "$model" --out "$out/detect" \
  --format ilsvrc,csv --visualize "$out/detect/visual"

echo
echo "== rcnn map-eval (AP at IoU 0.5 on those 40 photos: ILSVRC rules, then VOC all-point)"
for metric in ilsvrc voc; do
  $rcnn map-eval --gt data/raccoon/annotations --dets "$out/detect/detections.csv" \
    --subset data/raccoon/test.txt --metric "$metric" --report "$out/detect/map-$metric.json" | tail -n 5
done

echo
echo "== rcnn detect (the three-class BCCD demo model, with box regression, on the 72 BCCD test photos)"
$rcnn detect data/bccd/test-images.txt --model "$bccd" --out "$out/bccd" \
  --format ilsvrc,csv --visualize "$out/bccd/visual"
echo
echo "== rcnn map-eval (BCCD test: AP at IoU 0.5 per class, VOC all-point; then COCO's AP@[.5:.95])"
$rcnn map-eval --gt data/bccd/annotations --dets "$out/bccd/detections.csv" \
  --subset data/bccd/splits/test.txt --metric voc --report "$out/bccd/map-voc.json" | tail -n 6
$rcnn map-eval --gt data/bccd/annotations --dets "$out/bccd/detections.csv" \
  --subset data/bccd/splits/test.txt --metric coco --report "$out/bccd/map-coco.json" | grep -E "all \| maxDets=100 \]" | head -n 3

echo
echo "== rcnn proposals (fast selective search on five raccoon photos, recall against their boxes)"
$rcnn proposals data/raccoon/images/raccoon-{1,10,100,105,106}.jpg --gt data/raccoon/annotations \
  --out "$out/proposals.csv" --plot "$out/recall.png" | tail -n 16
echo "-- the same photos with the entry's proposals: fast search x2 plus MultiBox's best 200"
$rcnn proposals data/raccoon/images/raccoon-{1,10,100,105,106}.jpg --gt data/raccoon/annotations \
  --mode entry --multibox data/models/raccoon-multibox-paper-w025-s224.safetensors \
  | tail -n 16 | sed -n '1p;3p;$p'

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
echo "(speed against PyTorch: rcnn bench classifier, rcnn bench detect; README, Benchmarks)"
