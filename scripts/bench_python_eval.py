#!/usr/bin/env python3
"""COCO box evaluation from Python: rcnn_eval beside faster-coco-eval and pycocotools, in one run.

Each library runs in its own fresh process (so peak memory is its own) on the same gt.json and
dets.json: COCO(gt), loadRes(dets), evaluate(), accumulate(), summarize(), each timed, and the
process's peak resident memory. Prints a table, the ratios against rcnn_eval, and the largest
difference of each library's 12 numbers from pycocotools'.

    target/release/rcnn bench eval --reference none --keep /tmp/ilsvrc-val-size   # the data
    .venv-py/bin/pip install faster-coco-eval==1.8.0
    .venv-py/bin/python scripts/bench_python_eval.py /tmp/ilsvrc-val-size

`rcnn bench eval`'s defaults are ILSVRC2014 DET val's size: 20,121 images, 200 classes,
55,502 objects, 500,000 detections.
"""
import argparse
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import time

LIBRARIES = ["rcnn_eval", "faster_coco_eval", "pycocotools"]
STEPS = ["load", "loadRes", "evaluate", "accumulate", "summarize"]


def classes(library):
    if library == "rcnn_eval":
        from rcnn_eval import COCO, COCOeval
    elif library == "faster_coco_eval":
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval
    else:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    return COCO, COCOeval


def one(library, folder):
    """Runs in the child: times each step, prints one JSON line."""
    COCO, COCOeval = classes(library)
    times = {}
    with contextlib.redirect_stdout(io.StringIO()):
        t = time.perf_counter()
        gt = COCO(os.path.join(folder, "gt.json"))
        times["load"] = time.perf_counter() - t
        t = time.perf_counter()
        dt = gt.loadRes(os.path.join(folder, "dets.json"))
        times["loadRes"] = time.perf_counter() - t
        e = COCOeval(gt, dt, "bbox")
        for step in ("evaluate", "accumulate", "summarize"):
            t = time.perf_counter()
            getattr(e, step)()
            times[step] = time.perf_counter() - t
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    version = {"rcnn_eval": "rcnn-eval", "faster_coco_eval": "faster-coco-eval",
               "pycocotools": "pycocotools"}[library]
    from importlib.metadata import version as v
    print(json.dumps({"library": library, "version": v(version), "times": times,
                      "peak_mb": peak_kib / 1024, "stats": [float(s) for s in e.stats]}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", help="holds gt.json and dets.json (rcnn bench eval --keep FOLDER)")
    ap.add_argument("--libraries", default=",".join(LIBRARIES))
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        return one(args.one, args.folder)
    with open(os.path.join(args.folder, "gt.json")) as f:
        gt = json.load(f)
    with open(os.path.join(args.folder, "dets.json")) as f:
        n_dets = len(json.load(f))
    print(f"COCO box evaluation from Python on {args.folder}: {len(gt['images'])} images, "
          f"{len(gt['categories'])} categories, {len(gt['annotations'])} objects, {n_dets} detections; "
          f"{os.cpu_count()} CPUs; each library in its own process")
    del gt
    results = {}
    for library in args.libraries.split(","):
        r = subprocess.run([sys.executable, __file__, args.folder, "--one", library],
                           capture_output=True, text=True)
        if r.returncode != 0:
            print(f"{library}: failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")
            continue
        results[library] = json.loads(r.stdout.strip().splitlines()[-1])
    if not results:
        return 1
    header = f"{'step (s)':<14}" + "".join(f"{lib:>18}" for lib in results)
    print(header)
    for step in STEPS + ["total"]:
        row = f"{step:<14}"
        for lib, r in results.items():
            value = sum(r["times"].values()) if step == "total" else r["times"][step]
            row += f"{value:>18.3f}"
        print(row)
    print(f"{'peak memory MB':<14}" + "".join(f"{r['peak_mb']:>18.0f}" for r in results.values()))
    print(f"{'version':<14}" + "".join(f"{r['version']:>18}" for r in results.values()))
    ours = results.get("rcnn_eval")
    if ours:
        total = sum(ours["times"].values())
        for lib, r in results.items():
            if lib == "rcnn_eval":
                continue
            print(f"rcnn_eval against {lib}: {sum(r['times'].values()) / total:.1f}x faster in total, "
                  f"{r['peak_mb'] / ours['peak_mb']:.1f}x less peak memory "
                  f"({ours['peak_mb']:.0f} MB against {r['peak_mb']:.0f} MB)")
    reference = results.get("pycocotools")
    if reference:
        for lib, r in results.items():
            diff = max(abs(a - b) for a, b in zip(r["stats"], reference["stats"]))
            print(f"{lib}: AP {r['stats'][0]:.6f}, AR100 {r['stats'][8]:.6f}; largest difference "
                  f"from pycocotools over the 12 numbers: {diff:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
