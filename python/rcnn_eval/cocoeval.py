"""`COCOeval` for boxes: pycocotools' class, its parameters honoured, the matching and the
accumulation done in Rust (rcnn_eval._core), `summarize()` printing pycocotools' lines."""

import copy
import datetime
import time

import numpy as np

from . import _core

_OUT_OF_SCOPE = (
    "rcnn_eval evaluates boxes (iouType='bbox'); segmentation and keypoints are out of "
    "scope: use pycocotools for iouType={!r}"
)


def _check_ints(name, values, low, high):
    """Each of `values` a whole number in [low, high], or a ValueError naming the parameter."""
    for v in values:
        if isinstance(v, float) and not v.is_integer() or not low <= v <= high:
            raise ValueError(
                "params.{}: {!r} is not a whole number in {}..{}".format(name, v, low, high)
            )


class Params:
    """pycocotools' Params for boxes (iouType 'bbox')."""

    def __init__(self, iouType="bbox"):
        if iouType in ("segm", "keypoints"):
            raise NotImplementedError(
                _OUT_OF_SCOPE.format(iouType)
                + (" (pycocotools' default is 'segm': pass 'bbox')" if iouType == "segm" else "")
            )
        if iouType != "bbox":
            raise ValueError("iouType not supported: {!r} (rcnn_eval evaluates 'bbox')".format(iouType))
        self.setDetParams()
        self.iouType = iouType
        self.useSegm = None

    def setDetParams(self):
        self.imgIds = []
        self.catIds = []
        # np.linspace as pycocotools calls it (the same floats, so == 0.5 and == 0.75 hold).
        self.iouThrs = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
        self.recThrs = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
        self.maxDets = [1, 10, 100]
        self.areaRng = [[0**2, 1e5**2], [0**2, 32**2], [32**2, 96**2], [96**2, 1e5**2]]
        self.areaRngLbl = ["all", "small", "medium", "large"]
        self.useCats = 1

    def setKpParams(self):
        raise NotImplementedError(_OUT_OF_SCOPE.format("keypoints"))


class COCOeval:
    """`COCOeval(cocoGt, cocoDt, 'bbox')`; `evaluate()`, `accumulate(p=None)`, `summarize()`,
    `stats`, `eval` ('precision' [T,R,K,A,M], 'recall' [T,K,A,M], 'scores' [T,R,K,A,M])."""

    def __init__(self, cocoGt=None, cocoDt=None, iouType="segm"):
        self.params = Params(iouType=iouType)  # refuses segm and keypoints, saying why
        self.cocoGt = cocoGt
        self.cocoDt = cocoDt
        self.eval = {}
        self._paramsEval = {}
        self.stats = []
        self._evaluated = None
        self._full = None
        if cocoGt is not None:
            self.params.imgIds = sorted(cocoGt.getImgIds())
            self.params.catIds = sorted(cocoGt.getCatIds())

    @property
    def evalImgs(self):
        """pycocotools' list of per-image dicts ([K x A x I], None where an image has neither
        objects nor detections of a category), made on first use: evaluate() keeps only what
        accumulate() needs."""
        if self._evaluated is None:
            return []
        return self._in_full()[1]

    @property
    def ious(self):
        """pycocotools' {(imgId, catId): IoU matrix [D x G]}, made on first use."""
        if self._evaluated is None:
            return {}
        return self._in_full()[0]

    def _in_full(self):
        if self._full is None:
            ious_rows, rows = _core.evaluate_in_full(
                self.cocoGt._columns(), self.cocoDt._columns(), self._evaluated)
            p = self._paramsEval
            img_ids = p.imgIds
            cat_ids = p.catIds if p.useCats else [-1]
            T, A, I = len(p.iouThrs), len(p.areaRng), len(img_ids)
            ious = {(i, c): [] for i in img_ids for c in cat_ids}
            for k, image, D, G, data in ious_rows:
                if D and G:
                    ious[img_ids[image], cat_ids[k]] = np.frombuffer(data, np.float64).reshape(D, G).copy()
            eval_imgs = [None] * (len(cat_ids) * A * I)
            for k, a, image, dt_ids, gt_ids, scores, dtm, gtm, gt_ig, dt_ig in rows:
                D, G = len(dt_ids), len(gt_ids)
                eval_imgs[(k * A + a) * I + image] = {
                    "image_id": img_ids[image],
                    "category_id": cat_ids[k],
                    "aRng": p.areaRng[a],
                    "maxDet": p.maxDets[-1],
                    "dtIds": dt_ids,
                    "gtIds": gt_ids,
                    "dtMatches": np.frombuffer(dtm, np.float64).reshape(T, D).copy(),
                    "gtMatches": np.frombuffer(gtm, np.float64).reshape(T, G).copy(),
                    "dtScores": scores,
                    "gtIgnore": np.array([int(g) for g in gt_ig]),
                    "dtIgnore": np.frombuffer(dt_ig, np.bool_).reshape(T, D).copy(),
                }
            self._full = (ious, eval_imgs)
        return self._full

    def evaluate(self):
        tic = time.time()
        print("Running per image evaluation...")
        p = self.params
        if p.useSegm is not None:
            p.iouType = "segm" if p.useSegm == 1 else "bbox"
            print("useSegm (deprecated) is not None. Running {} evaluation".format(p.iouType))
        if p.iouType != "bbox":
            raise NotImplementedError(_OUT_OF_SCOPE.format(p.iouType))
        print("Evaluate annotation type *{}*".format(p.iouType))
        p.imgIds = list(np.unique(p.imgIds))
        if p.useCats:
            p.catIds = list(np.unique(p.catIds))
        p.maxDets = sorted(p.maxDets)
        # Said here, in the parameters' words, rather than as an OverflowError from the core.
        _check_ints("maxDets", p.maxDets, 0, 2**63 - 1)
        _check_ints("imgIds", p.imgIds, -(2**63), 2**63 - 1)
        _check_ints("catIds", p.catIds, -(2**63), 2**63 - 1)
        self.params = p
        self._evaluated = _core.evaluate(
            self.cocoGt._columns(),
            self.cocoDt._columns(),
            [int(i) for i in p.imgIds],
            [int(c) for c in p.catIds],
            [float(t) for t in p.iouThrs],
            [float(r) for r in p.recThrs],
            [int(m) for m in p.maxDets],
            [[float(a[0]), float(a[1])] for a in p.areaRng],
            bool(p.useCats),
        )
        self.eval = {}
        self._full = None
        self._paramsEval = copy.deepcopy(self.params)
        print("DONE (t={:0.2f}s).".format(time.time() - tic))

    def accumulate(self, p=None):
        print("Accumulating evaluation results...")
        tic = time.time()
        if self._evaluated is None:
            print("Please run evaluate() first")
            raise RuntimeError("accumulate() needs evaluate() first")
        if p is None:
            p = self.params
        p.catIds = p.catIds if p.useCats == 1 else [-1]
        T, R = len(p.iouThrs), len(p.recThrs)
        K = len(p.catIds) if p.useCats else 1
        A, M = len(p.areaRng), len(p.maxDets)
        # Which evaluations to read: positions in p of what the evaluation holds, as
        # pycocotools computes them.
        pe = self._paramsEval
        set_k = set(pe.catIds if pe.useCats else [-1])
        set_a = set(map(tuple, pe.areaRng))
        set_m = set(pe.maxDets)
        set_i = set(pe.imgIds)
        k_list = [n for n, k in enumerate(p.catIds) if k in set_k]
        m_list = [m for m in p.maxDets if m in set_m]
        a_list = [n for n, a in enumerate(map(tuple, p.areaRng)) if a in set_a]
        i_list = [n for n, i in enumerate(p.imgIds) if i in set_i]
        precision, recall, scores = _core.accumulate(
            self._evaluated,
            k_list,
            a_list,
            [int(m) for m in m_list],
            i_list,
            [float(r) for r in p.recThrs],
            [T, R, K, A, M],
        )
        self.eval = {
            "params": p,
            "counts": [T, R, K, A, M],
            "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
            "precision": np.frombuffer(precision, dtype=np.float64).reshape(T, R, K, A, M).copy(),
            "recall": np.frombuffer(recall, dtype=np.float64).reshape(T, K, A, M).copy(),
            "scores": np.frombuffer(scores, dtype=np.float64).reshape(T, R, K, A, M).copy(),
        }
        print("DONE (t={:0.2f}s).".format(time.time() - tic))

    def summarize(self):
        """The 12 lines and `stats`, as pycocotools: the mean of the array values above -1."""

        def one(ap=1, iouThr=None, areaRng="all", maxDets=100):
            p = self.params
            line = " {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} ] = {:0.3f}"
            title = "Average Precision" if ap == 1 else "Average Recall"
            kind = "(AP)" if ap == 1 else "(AR)"
            iou = (
                "{:0.2f}:{:0.2f}".format(p.iouThrs[0], p.iouThrs[-1])
                if iouThr is None
                else "{:0.2f}".format(iouThr)
            )
            aind = [i for i, a in enumerate(p.areaRngLbl) if a == areaRng]
            mind = [i for i, m in enumerate(p.maxDets) if m == maxDets]
            s = self.eval["precision"] if ap == 1 else self.eval["recall"]
            if iouThr is not None:
                s = s[np.where(iouThr == p.iouThrs)[0]]
            s = s[:, :, :, aind, mind] if ap == 1 else s[:, :, aind, mind]
            mean_s = -1 if len(s[s > -1]) == 0 else np.mean(s[s > -1])
            print(line.format(title, kind, iou, areaRng, maxDets, mean_s))
            return mean_s

        if not self.eval:
            raise Exception("Please run accumulate() first")
        m = self.params.maxDets
        stats = np.zeros((12,))
        stats[0] = one(1)
        stats[1] = one(1, iouThr=0.5, maxDets=m[2])
        stats[2] = one(1, iouThr=0.75, maxDets=m[2])
        stats[3] = one(1, areaRng="small", maxDets=m[2])
        stats[4] = one(1, areaRng="medium", maxDets=m[2])
        stats[5] = one(1, areaRng="large", maxDets=m[2])
        stats[6] = one(0, maxDets=m[0])
        stats[7] = one(0, maxDets=m[1])
        stats[8] = one(0, maxDets=m[2])
        stats[9] = one(0, areaRng="small", maxDets=m[2])
        stats[10] = one(0, areaRng="medium", maxDets=m[2])
        stats[11] = one(0, areaRng="large", maxDets=m[2])
        self.stats = stats

    def __str__(self):
        self.summarize()
        return ""

