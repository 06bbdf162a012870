#!/usr/bin/env bash
# The README's MultiBox tables for one test set: proposal quality (recall@0.5, recall@0.7, MABO
# against boxes per image, with plots) of fast selective search x1 and x2, MultiBox's best 200
# alone and the entry's mix (x2 + MultiBox 200, duplicates removed); then the detector's VOC
# AP50 (all-point, mean over classes) with x1, x2 and the entry's mix.
# Usage: scripts/multibox-table.sh IMAGES.txt GT_DIR SUBSET.txt DETECTOR MULTIBOX OUT_DIR
set -euo pipefail
images=$1 gt=$2 subset=$3 detector=$4 multibox=$5 out=$6
rcnn=${RCNN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/rcnn}
mkdir -p "$out"
declare -A flags=(
  [ss-x1]="--mode fast --scale 1"
  [ss-x2]="--mode fast --scale 2"
  [multibox]="--mode multibox --multibox $multibox"
  [entry]="--mode entry --scale 2 --multibox $multibox"
)
modes=(ss-x1 ss-x2 multibox entry)
echo "proposals (all boxes): mode | boxes/img | recall@0.5 | recall@0.7 | MABO | median s/img"
for m in "${modes[@]}"; do
  # shellcheck disable=SC2086
  "$rcnn" -q proposals "$images" --gt "$gt" ${flags[$m]} --plot "$out/$m.png" >"$out/$m.txt"
  summary=$(grep -E "images \(" "$out/$m.txt")
  all=$(grep -E "^all " "$out/$m.txt")
  python3 - "$m" "$summary" "$all" <<'PY'
import re, sys
m, summary, row = sys.argv[1:]
median = re.search(r"median ([0-9.]+) s", summary).group(1)
_, boxes, r5, r7, mabo = row.split()
print(f"{m:<9} | {float(boxes):7.1f} | {float(r5):.4f} | {float(r7):.4f} | {float(mabo):.4f} | {median}")
PY
done
echo "detection: proposals | VOC AP50 (mean) | detect s"
for m in ss-x1 ss-x2 entry; do
  dir="$out/detect-$m"
  start=$(date +%s.%N)
  # shellcheck disable=SC2086
  "$rcnn" -q detect "$images" --model "$detector" --out "$dir" --format csv ${flags[$m]} >/dev/null
  secs=$(echo "$(date +%s.%N) - $start" | bc)
  "$rcnn" -q map-eval --gt "$gt" --dets "$dir/detections.csv" --subset "$subset" --metric voc \
    --report "$dir/voc.json" >/dev/null
  python3 - "$dir" "$m" "$secs" <<'PY'
import json, sys
d, m, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
voc = json.load(open(f"{d}/voc.json"))
per = " ".join(f"{c['name']} {c['ap']:.3f}" for c in voc["classes"])
print(f"{m:<9} | {voc['mean_ap']:.4f} ({per}) | {secs:.0f}")
PY
done
