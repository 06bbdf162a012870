"""A box-evaluation script as people write them for pycocotools (the COCO demo's steps, plus
detectron2-style per-category AP from eval['precision']). test_script.py runs it as written,
and with only its two pycocotools imports changed to rcnn_eval's."""
import argparse

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def per_category_ap(coco_eval, coco_gt):
    precisions = coco_eval.eval["precision"]  # [T, R, K, A, M]
    names = {c["id"]: c["name"] for c in coco_gt.loadCats(coco_gt.getCatIds())}
    rows = []
    for idx, cat_id in enumerate(coco_eval.params.catIds):
        name = names[cat_id]
        precision = precisions[:, :, idx, 0, -1]
        precision = precision[precision > -1]
        ap = np.mean(precision) if precision.size else float("nan")
        rows.append((name, float(ap * 100)))
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("annotations")
    parser.add_argument("results")
    parser.add_argument("--first-images", type=int, default=0)
    args = parser.parse_args()

    coco_gt = COCO(args.annotations)
    coco_dt = coco_gt.loadRes(args.results)
    img_ids = sorted(coco_gt.getImgIds())
    if args.first_images:
        img_ids = img_ids[: args.first_images]

    coco_eval = COCOeval(coco_gt, coco_dt, "bbox")
    coco_eval.params.imgIds = img_ids
    coco_eval.evaluate()
    coco_eval.accumulate()
    coco_eval.summarize()

    for name, ap in per_category_ap(coco_eval, coco_gt):
        print(f"{name:>12}: AP {ap:.4f}")
    recall = coco_eval.eval["recall"][0, :, 0, -1]
    print("AR@0.5 per category:", np.round(recall, 6).tolist())
    print("stats:", [round(float(s), 12) for s in coco_eval.stats])


if __name__ == "__main__":
    main()
