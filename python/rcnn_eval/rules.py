"""The rules pycocotools lacks: ILSVRC's eval_detection.m and PASCAL VOC's VOCevaldet.m
(VOC2007's 11-point AP, and the all-point AP of VOC2010 on), as `rcnn map-eval` runs them."""

import json
import os
import warnings

from . import _core


def _path(p):
    return None if p is None else os.fspath(p)


def _is_path(x):
    return isinstance(x, (str, os.PathLike))


def map_eval(gt, dets, metric="ilsvrc", iou=0.5, *, classes=None, images=None, image_list=None,
             blacklist=None, subset=None, gt_format=None, dets_format=None, box_format="xyxy",
             strict=False, report=None):
    """Evaluates detections against ground truth; returns the report as a dict.

    `gt` and `dets` are what `map-eval --gt/--dets` take (a VOC/ILSVRC XML folder, a COCO JSON,
    a CSV, a txt folder, an ILSVRC submission; formats guessed from the paths unless given),
    or Python lists:

    - ground truth: tuples `(image, class, x1, y1, x2, y2[, difficult])` or dicts
      `{"image", "class", "bbox": [x1, y1, x2, y2], "difficult"}`;
    - detections: tuples `(image, class, score, x1, y1, x2, y2)` or dicts
      `{"image", "class", "score", "bbox"}`.

    A class is a name or WNID, or a 1-based id. `classes` is a class file (files) or a list
    of names in order (lists); by default the ILSVRC 200 when every class is one of them, else
    the names found, sorted. `images` lists images without objects (lists only). `report`
    writes the same JSON as `map-eval --report`, atomically.

    The report: metric, iou, images, objects, detections, `classes` (name, wnid, ap, n_gt,
    n_dets, best_f1, final_recall for each class), mean_ap, median_ap, issues.
    Bad input that the CLI warns about is warned about here (`warnings.warn`); with
    strict=True it raises EvalError, as `--strict`.
    """
    if _is_path(gt) != _is_path(dets):
        raise TypeError("gt and dets are both paths or both lists")
    if _is_path(gt):
        if images is not None:
            raise TypeError("images= is for lists; files list their own images")
        text = _core.map_eval_files(
            os.fspath(gt), os.fspath(dets), metric, float(iou), _path(classes), _path(image_list),
            _path(blacklist), _path(subset), gt_format, dets_format, box_format, strict,
            _path(report))
    else:
        if any(x is not None for x in (image_list, blacklist, subset, gt_format, dets_format)):
            raise TypeError("image_list, blacklist, subset and the formats are for files")
        names, classes_file = None, None
        if _is_path(classes):
            classes_file = os.fspath(classes)
        elif classes is not None:
            names = [str(c) for c in classes]
        text = _core.map_eval_records(
            gt, dets, metric, float(iou), None if images is None else list(images), names,
            classes_file, strict, _path(report))
    result = json.loads(text)
    issues = result.get("issues") or {}
    examples = issues.get("examples") or []
    if examples:
        warnings.warn("bad input: " + "; ".join(examples[:5]), stacklevel=2)
    return result


def ilsvrc(gt, dets, iou=0.5, **kw):
    """ILSVRC's eval_detection.m: the IoU threshold min(iou, wh / ((w+10)(h+10))) per object."""
    return map_eval(gt, dets, "ilsvrc", iou, **kw)


def voc07(gt, dets, iou=0.5, **kw):
    """PASCAL VOC 2007: 11-point AP, difficult objects ignored."""
    return map_eval(gt, dets, "voc07", iou, **kw)


def voc(gt, dets, iou=0.5, **kw):
    """PASCAL VOC 2010 on: all-point AP, difficult objects ignored."""
    return map_eval(gt, dets, "voc", iou, **kw)
