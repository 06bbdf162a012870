#!/usr/bin/env python3
"""Random COCO-style data and pycocotools' 12 numbers for it (eval/tests/fixtures/coco-random).

Many images and categories, crowd boxes, tied scores, empty images, images with more than 100
detections, detections of categories an image does not have, boxes of every area range. The
Rust test reads gt.json and dets.json and must give the 12 numbers in expected.json to 1e-9.

Run: scripts/setup-reference.sh, then .venv-ref/bin/python scripts/make_coco_random_fixture.py
"""
import contextlib
import importlib.metadata
import io
import json
import pathlib
import random

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

OUT = pathlib.Path(__file__).resolve().parent.parent / "eval" / "tests" / "fixtures" / "coco-random"


def random_box(rng, w_img, h_img):
    # Sizes across small (< 32^2), medium and large (> 96^2) areas.
    side = rng.choice([rng.uniform(4, 30), rng.uniform(32, 96), rng.uniform(96, 300)])
    w = round(side * rng.uniform(0.5, 1.5), 2)
    h = round(side * rng.uniform(0.5, 1.5), 2)
    x = round(rng.uniform(0, max(1.0, w_img - w)), 2)
    y = round(rng.uniform(0, max(1.0, h_img - h)), 2)
    return [x, y, w, h]


def jitter(rng, b, amount):
    x, y, w, h = b
    return [round(x + rng.gauss(0, amount * w), 2), round(y + rng.gauss(0, amount * h), 2),
            round(max(1.0, w * rng.uniform(1 - amount, 1 + amount)), 2),
            round(max(1.0, h * rng.uniform(1 - amount, 1 + amount)), 2)]


def make(seed, n_images, cat_ids):
    rng = random.Random(seed)
    images, anns, dets = [], [], []
    ann_id = 1
    for i in range(n_images):
        img_id = 1000 + 7 * i  # sparse ids, as COCO's
        W, H = rng.choice([(640, 480), (500, 375), (800, 600)])
        images.append({"id": img_id, "width": W, "height": H, "file_name": f"{img_id}.jpg"})
        kind = rng.random()
        n_gt = 0 if kind < 0.1 else rng.randint(1, 8)
        gts = []
        for _ in range(n_gt):
            cat = rng.choice(cat_ids)
            b = random_box(rng, W, H)
            crowd = 1 if rng.random() < 0.08 else 0
            # COCO's area is the segment's, smaller than the box.
            area = round(b[2] * b[3] * rng.uniform(0.6, 1.0), 3)
            anns.append({"id": ann_id, "image_id": img_id, "category_id": cat, "bbox": b,
                         "area": area, "iscrowd": crowd})
            ann_id += 1
            gts.append((cat, b))
        if kind < 0.05:
            continue  # an image with neither objects nor detections
        many = rng.random() < 0.05  # over 100 detections: maxDets truncation
        n_det = rng.randint(105, 140) if many else rng.randint(0, 15)
        for _ in range(n_det):
            if gts and rng.random() < 0.6:
                cat, b = rng.choice(gts)
                b = jitter(rng, b, rng.choice([0.02, 0.1, 0.3]))
                if rng.random() < 0.1:
                    cat = rng.choice(cat_ids)  # wrong class
            else:
                cat, b = rng.choice(cat_ids), random_box(rng, W, H)
            score = round(rng.random(), 2)  # two decimals: many ties
            dets.append({"image_id": img_id, "category_id": cat, "bbox": b, "score": score})
    cats = [{"id": c, "name": f"class{c}", "supercategory": "thing"} for c in cat_ids]
    # One category no image has.
    cats.append({"id": 999, "name": "never", "supercategory": "thing"})
    return {"images": images, "annotations": anns, "categories": cats}, dets


def stats(gt, dets):
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = json.loads(json.dumps(gt))
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(json.loads(json.dumps(dets)))
        e = COCOeval(coco_gt, coco_dt, "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    return [float(s) for s in e.stats]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    gt, dets = make(seed=2014, n_images=400, cat_ids=[1, 2, 3, 5, 8, 13, 21, 34, 55, 89])
    (OUT / "gt.json").write_text(json.dumps(gt))
    (OUT / "dets.json").write_text(json.dumps(dets))
    expected = {
        "pycocotools": importlib.metadata.version("pycocotools"),
        "images": len(gt["images"]),
        "annotations": len(gt["annotations"]),
        "detections": len(dets),
        "stats": stats(gt, dets),
    }
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    print(json.dumps(expected))


if __name__ == "__main__":
    main()
