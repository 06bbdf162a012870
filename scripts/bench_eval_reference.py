#!/usr/bin/env python3
"""Reference for `rcnn bench eval`: pycocotools' COCOeval on gt.json / dets.json in DIR.
Prints one JSON object: load seconds (COCO() + loadRes), evaluate+accumulate+summarize
seconds, and the 12 stats."""
import contextlib
import io
import json
import sys
import time

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def main():
    d = sys.argv[1]
    with contextlib.redirect_stdout(io.StringIO()):
        t0 = time.perf_counter()
        gt = COCO(f"{d}/gt.json")
        dt = gt.loadRes(f"{d}/dets.json")
        t1 = time.perf_counter()
        e = COCOeval(gt, dt, "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
        t2 = time.perf_counter()
    print(json.dumps({"load_s": t1 - t0, "eval_s": t2 - t1, "stats": [float(s) for s in e.stats]}))


if __name__ == "__main__":
    main()
