"""`COCO`: pycocotools' dataset class as evaluation uses it.

Files are read in Rust into columns; the Python dictionaries pycocotools keeps (`dataset`,
`anns`, `imgs`, `cats`, `imgToAnns`, `catToImgs`) are built only when a script touches them,
so an evaluation never pays for them.
"""

import copy
import json
import os
import time
from collections import defaultdict

import numpy as np

from . import _core


def _is_array_like(obj):
    return hasattr(obj, "__iter__") and hasattr(obj, "__len__")


class COCO:
    """`COCO(annotation_file)`, `COCO(dataset_dict)` or `COCO()` then `dataset = ...;
    createIndex()`, as pycocotools."""

    def __init__(self, annotation_file=None):
        self._core = None
        self._file = None
        self._dataset = {}
        self._index = None
        # For results: how to build `dataset` when a script asks for it.
        self._results_source = None
        self._gt_for_results = None
        if annotation_file is None:
            return
        if isinstance(annotation_file, dict):
            self._dataset = annotation_file
            self.createIndex()
            return
        print("loading annotations into memory...")
        tic = time.time()
        self._file = os.fspath(annotation_file)
        self._core = _core.read_dataset(self._file)
        self._dataset = None
        print("Done (t={:0.2f}s)".format(time.time() - tic))
        print("creating index...")
        print("index created!")

    # --- the dictionaries, made on first use ---------------------------------------------

    @property
    def dataset(self):
        if self._dataset is None:
            if self._results_source is not None:
                self._dataset = self._results_dataset()
            else:
                with open(self._file, "r") as f:
                    self._dataset = json.load(f)
        return self._dataset

    @dataset.setter
    def dataset(self, value):
        # pycocotools' pattern: COCO(), then `dataset = d`, then createIndex().
        self._dataset = value
        self._file = None
        self._results_source = None
        self._core = None
        self._index = None

    def createIndex(self):
        print("creating index...")
        self._index = None
        self._core = _core.dataset_from_dict(self.dataset)
        print("index created!")

    def _ensure_index(self):
        if self._index is None:
            anns, cats, imgs = {}, {}, {}
            img_to_anns, cat_to_imgs = defaultdict(list), defaultdict(list)
            d = self.dataset
            for ann in d.get("annotations", []):
                img_to_anns[ann["image_id"]].append(ann)
                anns[ann["id"]] = ann
            for img in d.get("images", []):
                imgs[img["id"]] = img
            for cat in d.get("categories", []):
                cats[cat["id"]] = cat
            if "annotations" in d and "categories" in d:
                for ann in d["annotations"]:
                    cat_to_imgs[ann["category_id"]].append(ann["image_id"])
            self._index = (anns, cats, imgs, img_to_anns, cat_to_imgs)
        return self._index

    anns = property(lambda self: self._ensure_index()[0])
    cats = property(lambda self: self._ensure_index()[1])
    imgs = property(lambda self: self._ensure_index()[2])
    imgToAnns = property(lambda self: self._ensure_index()[3])
    catToImgs = property(lambda self: self._ensure_index()[4])

    def _columns(self):
        """The Rust-side annotations (made from `dataset` where it was set by hand)."""
        if self._core is None:
            self._core = _core.dataset_from_dict(self.dataset)
        return self._core

    # --- pycocotools' queries ------------------------------------------------------------

    def info(self):
        for key, value in self.dataset["info"].items():
            print("{}: {}".format(key, value))

    def getAnnIds(self, imgIds=[], catIds=[], areaRng=[], iscrowd=None):
        imgIds = imgIds if _is_array_like(imgIds) else [imgIds]
        catIds = catIds if _is_array_like(catIds) else [catIds]
        if len(imgIds) == len(catIds) == len(areaRng) == 0:
            anns = self.dataset["annotations"]
        else:
            if len(imgIds) != 0:
                by_image = self.imgToAnns
                anns = [a for i in imgIds if i in by_image for a in by_image[i]]
            else:
                anns = self.dataset["annotations"]
            if len(catIds) != 0:
                anns = [a for a in anns if a["category_id"] in catIds]
            if len(areaRng) != 0:
                anns = [a for a in anns if areaRng[0] < a["area"] < areaRng[1]]
        if iscrowd is not None:
            return [a["id"] for a in anns if a["iscrowd"] == iscrowd]
        return [a["id"] for a in anns]

    def getCatIds(self, catNms=[], supNms=[], catIds=[]):
        catNms = catNms if _is_array_like(catNms) else [catNms]
        supNms = supNms if _is_array_like(supNms) else [supNms]
        catIds = catIds if _is_array_like(catIds) else [catIds]
        if len(catNms) == len(supNms) == len(catIds) == 0:
            if self._dataset is None:
                return self._core.cat_ids()
            return [c["id"] for c in self.dataset["categories"]]
        cats = self.dataset["categories"]
        if len(catNms) != 0:
            cats = [c for c in cats if c["name"] in catNms]
        if len(supNms) != 0:
            cats = [c for c in cats if c["supercategory"] in supNms]
        if len(catIds) != 0:
            cats = [c for c in cats if c["id"] in catIds]
        return [c["id"] for c in cats]

    def getImgIds(self, imgIds=[], catIds=[]):
        imgIds = imgIds if _is_array_like(imgIds) else [imgIds]
        catIds = catIds if _is_array_like(catIds) else [catIds]
        if len(imgIds) == len(catIds) == 0:
            if self._dataset is None or self._index is None:
                return list(self._columns().img_ids())
            return list(self.imgs.keys())
        ids = set(imgIds)
        for i, cat_id in enumerate(catIds):
            if i == 0 and len(ids) == 0:
                ids = set(self.catToImgs[cat_id])
            else:
                ids &= set(self.catToImgs[cat_id])
        return list(ids)

    def _load(self, table, ids):
        if _is_array_like(ids):
            return [table[i] for i in ids]
        if type(ids) == int:
            return [table[ids]]

    def loadAnns(self, ids=[]):
        return self._load(self.anns, ids)

    def loadCats(self, ids=[]):
        return self._load(self.cats, ids)

    def loadImgs(self, ids=[]):
        return self._load(self.imgs, ids)

    def showAnns(self, anns, draw_bbox=False):
        raise NotImplementedError("rcnn_eval evaluates; it does not draw (use pycocotools' showAnns)")

    def annToRLE(self, ann):
        raise NotImplementedError(
            "rcnn_eval evaluates boxes; segmentation masks are out of scope (use pycocotools)"
        )

    annToMask = annToRLE

    # --- results -------------------------------------------------------------------------

    def loadRes(self, resFile):
        """Results as a file name, a list of dicts, or a numpy array [N x 7] (image_id, x, y,
        w, h, score, category_id): boxes only."""
        print("Loading and preparing results...")
        tic = time.time()
        res = COCO()
        gt = self._columns()
        if isinstance(resFile, (str, os.PathLike)):
            res._core = _core.read_results(gt, os.fspath(resFile))
        elif isinstance(resFile, np.ndarray):
            assert resFile.ndim == 2 and resFile.shape[1] == 7, "results array must be N x 7"
            data = np.ascontiguousarray(resFile, dtype=np.float64)
            res._core = _core.results_from_array(gt, data.tobytes(), data.shape[0])
        else:
            assert type(resFile) == list, "results in not an array of objects"
            res._core = _core.results_from_list(gt, resFile)
        res._results_source = resFile
        res._gt_for_results = self
        res._dataset = None
        print("DONE (t={:0.2f}s)".format(time.time() - tic))
        print("creating index...")
        print("index created!")
        return res

    def _results_dataset(self):
        """The `dataset` pycocotools' loadRes makes: the ground truth's images and categories,
        each result given area, id, iscrowd and a box polygon."""
        src, gt = self._results_source, self._gt_for_results
        if isinstance(src, (str, os.PathLike)):
            with open(src) as f:
                anns = json.load(f)
        elif isinstance(src, np.ndarray):
            anns = self.loadNumpyAnnotations(src)
        else:
            anns = src
        for i, ann in enumerate(anns):
            x, y, w, h = ann["bbox"]
            if "segmentation" not in ann:
                ann["segmentation"] = [[x, y, x, y + h, x + w, y + h, x + w, y]]
            ann["area"] = w * h
            ann["id"] = i + 1
            ann["iscrowd"] = 0
        return {
            "info": copy.deepcopy(gt.dataset.get("info", {})),
            "images": list(gt.dataset["images"]),
            "categories": copy.deepcopy(gt.dataset["categories"]),
            "annotations": anns,
        }

    def loadNumpyAnnotations(self, data):
        assert type(data) == np.ndarray and data.shape[1] == 7
        return [
            {
                "image_id": int(r[0]),
                "bbox": [r[1], r[2], r[3], r[4]],
                "score": r[5],
                "category_id": int(r[6]),
            }
            for r in data
        ]

    def download(self, tarDir=None, imgIds=[]):
        raise NotImplementedError("rcnn_eval does not download images")
