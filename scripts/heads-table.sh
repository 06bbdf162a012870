#!/usr/bin/env bash
# The README's table of R-CNN's heads: one model file with heads, four ways to detect with it
# (softmax or SVM scores, each with and without box regression), each scored by map-eval with
# VOC all-point AP at IoU 0.5 per class and COCO's AP@[.5:.95], AP50 and AP75.
# Usage: scripts/heads-table.sh MODEL IMAGES.txt GT_DIR SUBSET.txt OUT_DIR [detect flags...]
set -euo pipefail
model=$1 images=$2 gt=$3 subset=$4 out=$5
shift 5
rcnn=${RCNN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/rcnn}
mkdir -p "$out"
printf '%-22s %s\n' variant "AP50 per class (VOC all-point) | mean AP50 | COCO AP@[.5:.95] AP50 AP75 | detect s"
for variant in ${VARIANTS:-softmax softmax+reg svm svm+reg}; do
  flags=(--head "${variant%%+*}")
  [[ $variant == *+reg ]] || flags+=(--no-bbox-reg)
  dir="$out/$variant"
  start=$(date +%s.%N)
  "$rcnn" -q detect "$images" --model "$model" --out "$dir" --format csv "${flags[@]}" "$@" >/dev/null
  secs=$(echo "$(date +%s.%N) - $start" | bc)
  "$rcnn" -q map-eval --gt "$gt" --dets "$dir/detections.csv" --subset "$subset" --metric voc \
    --report "$dir/voc.json" >/dev/null
  "$rcnn" -q map-eval --gt "$gt" --dets "$dir/detections.csv" --subset "$subset" --metric coco \
    --report "$dir/coco.json" >/dev/null
  python3 - "$dir" "$variant" "$secs" <<'PY'
import json, sys
d, variant, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
voc = json.load(open(f"{d}/voc.json"))
coco = json.load(open(f"{d}/coco.json"))
per = " ".join(f"{c['name']} {c['ap']:.3f}" for c in voc["classes"])
s = coco["coco"]
print(f"{variant:<22} {per} | {voc['mean_ap']:.3f} | {s['ap']:.3f} {s['ap50']:.3f} {s['ap75']:.3f} | {secs:.0f}")
PY
done
