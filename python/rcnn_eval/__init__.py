"""rcnn_eval: inception-rcnn's object detection evaluator for Python.

- `from rcnn_eval import COCO, COCOeval` (or `rcnn_eval.coco` / `rcnn_eval.cocoeval`, laid out
  as pycocotools): pycocotools' box evaluation, the same numbers, done in Rust.
- `ilsvrc`, `voc07`, `voc` and `map_eval`: the ILSVRC (eval_detection.m) and PASCAL VOC
  (VOCevaldet.m) rules on the files `rcnn map-eval` reads, or on Python lists; they return
  the report `map-eval --report` writes.
- `EvalError` (a ValueError): bad input, with the file and line or the record at fault.
"""

from ._core import EvalError
from .coco import COCO
from .cocoeval import COCOeval, Params
from .rules import ilsvrc, map_eval, voc, voc07

__all__ = ["COCO", "COCOeval", "Params", "EvalError", "map_eval", "ilsvrc", "voc07", "voc"]
