"""rcnn_eval's COCO/COCOeval against pycocotools 2.0.11 on random data: crowds, tied scores,
empty images, images with over 100 detections, detections of absent categories. Every element
of stats, precision, recall and scores must agree within 1e-9, and summarize() must print
pycocotools' lines."""

import contextlib
import copy
import importlib.util
import io
import json
import pathlib

import numpy as np
import pytest

import pycocotools
from pycocotools.coco import COCO as RefCOCO
from pycocotools.cocoeval import COCOeval as RefCOCOeval

import rcnn_eval
from rcnn_eval import COCO, COCOeval, EvalError

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOL = 1e-9


def _generator():
    spec = importlib.util.spec_from_file_location(
        "make_coco_random_fixture", ROOT / "scripts" / "make_coco_random_fixture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make


make = _generator()
CATS = [1, 2, 3, 5, 8, 13, 21, 34, 55, 89]


def test_the_reference_is_pycocotools_2_0_11():
    from importlib.metadata import version
    assert version("pycocotools") == "2.0.11", pycocotools.__file__


def quiet(f, *a, **kw):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        r = f(*a, **kw)
    return r, out.getvalue()


def coco_from_dict(cls, gt):
    c = cls()
    c.dataset = copy.deepcopy(gt)
    c.createIndex()
    return c


def run(coco_cls, eval_cls, gt, dets, set_params=None, acc_params=None):
    """Both libraries the same way; returns the COCOeval and what summarize() printed."""
    def go():
        g = coco_from_dict(coco_cls, gt)
        d = g.loadRes(copy.deepcopy(dets))
        e = eval_cls(g, d, "bbox")
        if set_params:
            set_params(e.params)
        e.evaluate()
        assert not e.eval
        e.accumulate(acc_params(copy.deepcopy(e.params)) if acc_params else None)
        return e

    e, _ = quiet(go)
    _, printed = quiet(e.summarize)
    return e, printed


def assert_same(ref, ours):
    ref_e, ref_out = ref
    our_e, our_out = ours
    np.testing.assert_allclose(our_e.stats, ref_e.stats, rtol=0, atol=TOL)
    for key in ("precision", "recall", "scores"):
        a, b = ref_e.eval[key], our_e.eval[key]
        assert a.shape == b.shape, key
        np.testing.assert_allclose(b, a, rtol=0, atol=TOL, err_msg=key)
    assert our_e.eval["counts"] == ref_e.eval["counts"]
    assert our_out == ref_out


def both(gt, dets, **kw):
    return run(RefCOCO, RefCOCOeval, gt, dets, **kw), run(COCO, COCOeval, gt, dets, **kw)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_default_parameters(seed):
    gt, dets = make(seed=seed, n_images=150, cat_ids=CATS)
    ref, ours = both(gt, dets)
    # The data is what the docstring says it is.
    per_image = {}
    for d in dets:
        per_image[d["image_id"]] = per_image.get(d["image_id"], 0) + 1
    assert max(per_image.values()) > 100 or seed != 0
    assert any(a["iscrowd"] for a in gt["annotations"])
    assert len({d["score"] for d in dets}) < len(dets)
    assert ref[0].stats[0] > 0.01
    assert_same(ref, ours)


def some(seq, k, seed):
    rng = np.random.default_rng(seed)
    return [seq[i] for i in sorted(rng.choice(len(seq), size=k, replace=False))]


PARAMS = {
    "iouThrs": lambda p: setattr(p, "iouThrs", np.array([0.3, 0.5, 0.75, 0.9])),
    "recThrs": lambda p: setattr(p, "recThrs", np.linspace(0.0, 1.0, 11)),
    "maxDets": lambda p: setattr(p, "maxDets", [300, 1, 5]),
    "areaRng": lambda p: (setattr(p, "areaRng", [[0, 1e10], [0, 40**2], [40**2, 1e10]]),
                          setattr(p, "areaRngLbl", ["all", "small", "large"])),
    "catIds": lambda p: setattr(p, "catIds", [89, 3, 5, 3, 777]),
    "imgIds": lambda p: setattr(p, "imgIds", some(p.imgIds, 60, 7) + [p.imgIds[0], 424242]),
    "useCats0": lambda p: setattr(p, "useCats", 0),
    "useCats0_catIds": lambda p: (setattr(p, "useCats", 0), setattr(p, "catIds", [5, 1, 5])),
    "everything": lambda p: (setattr(p, "iouThrs", np.array([0.5, 0.6])),
                             setattr(p, "maxDets", [2, 20, 200]),
                             setattr(p, "catIds", [1, 2, 3]),
                             setattr(p, "imgIds", p.imgIds[::3])),
}


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_parameters_are_honoured(name):
    gt, dets = make(seed=11, n_images=120, cat_ids=CATS)
    ref, ours = both(gt, dets, set_params=PARAMS[name])
    assert_same(ref, ours)


ACC = {
    # accumulate(p) with parameters other than evaluate()'s: pycocotools' index arithmetic.
    "fewer_limits": lambda p: (setattr(p, "maxDets", [10, 100]), p)[1],
    "fewer_categories": lambda p: (setattr(p, "catIds", list(p.catIds)[2:6]), p)[1],
    "fewer_images": lambda p: (setattr(p, "imgIds", list(p.imgIds)[: len(p.imgIds) // 2]), p)[1],
    "one_area": lambda p: (setattr(p, "areaRng", [p.areaRng[2]]), setattr(p, "areaRngLbl", ["medium"]), p)[2],
}


@pytest.mark.parametrize("name", sorted(ACC))
def test_accumulate_with_other_parameters(name):
    gt, dets = make(seed=5, n_images=100, cat_ids=CATS)

    def ref_and_ours(coco_cls, eval_cls):
        g = coco_from_dict(coco_cls, gt)
        e = eval_cls(g, g.loadRes(copy.deepcopy(dets)), "bbox")
        e.evaluate()
        p = ACC[name](copy.deepcopy(e.params))
        e.accumulate(p)
        return e.eval

    ref, _ = quiet(ref_and_ours, RefCOCO, RefCOCOeval)
    ours, _ = quiet(ref_and_ours, COCO, COCOeval)
    for key in ("precision", "recall", "scores"):
        np.testing.assert_allclose(ours[key], ref[key], rtol=0, atol=TOL, err_msg=key)


def test_files_lists_and_arrays_load_the_same(tmp_path):
    gt, dets = make(seed=9, n_images=80, cat_ids=CATS)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    ref, _ = quiet(lambda: RefCOCO(str(tmp_path / "gt.json")))
    ref_e = RefCOCOeval(ref, quiet(ref.loadRes, str(tmp_path / "dets.json"))[0], "bbox")
    quiet(ref_e.evaluate), quiet(ref_e.accumulate), quiet(ref_e.summarize)

    array = np.array([[d["image_id"], *d["bbox"], d["score"], d["category_id"]] for d in dets])
    ours_gt, printed = quiet(COCO, tmp_path / "gt.json")  # a path object, too
    assert printed.startswith("loading annotations into memory...\n")
    for res in (str(tmp_path / "dets.json"), copy.deepcopy(dets), array):
        d, _ = quiet(ours_gt.loadRes, res)
        e = COCOeval(ours_gt, d, "bbox")
        quiet(e.evaluate), quiet(e.accumulate), quiet(e.summarize)
        np.testing.assert_allclose(e.stats, ref_e.stats, rtol=0, atol=TOL)
        np.testing.assert_allclose(e.eval["precision"], ref_e.eval["precision"], rtol=0, atol=TOL)

    # COCO(dict), as the API, and the helper queries scripts use.
    by_dict, _ = quiet(COCO, copy.deepcopy(gt))
    assert sorted(by_dict.getImgIds()) == sorted(ref.getImgIds())
    assert ours_gt.getCatIds() == ref.getCatIds()
    assert ours_gt.loadCats(ours_gt.getCatIds()) == ref.loadCats(ref.getCatIds())
    img = ref.getImgIds()[3]
    assert ours_gt.getAnnIds(imgIds=[img]) == ref.getAnnIds(imgIds=[img])
    assert ours_gt.getImgIds(catIds=[5]) == ref.getImgIds(catIds=[5])
    assert ours_gt.loadImgs(img) == ref.loadImgs(img)
    # The results' dataset is pycocotools' (area, id, iscrowd added).
    d, _ = quiet(ours_gt.loadRes, str(tmp_path / "dets.json"))
    rd, _ = quiet(ref.loadRes, str(tmp_path / "dets.json"))
    assert d.loadAnns([1, 2, 3]) == rd.loadAnns([1, 2, 3])
    assert d.getImgIds() == rd.getImgIds()


def test_an_object_with_id_0_matches_as_pycocotools_counts_it():
    gt, dets = make(seed=3, n_images=40, cat_ids=CATS)
    for a in gt["annotations"]:
        a["id"] -= 1  # the first object's id is 0
    ref, ours = both(gt, dets)
    assert_same(ref, ours)


def test_results_used_directly_as_a_dataset():
    # Some scripts build the detections' COCO by hand, with their own ids (one of them 0).
    gt, dets = make(seed=4, n_images=40, cat_ids=CATS)
    res = copy.deepcopy(gt)
    res["annotations"] = [dict(d, id=i, area=d["bbox"][2] * d["bbox"][3], iscrowd=0)
                          for i, d in enumerate(dets)]

    def go(coco_cls, eval_cls):
        e = eval_cls(coco_from_dict(coco_cls, gt), coco_from_dict(coco_cls, res), "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
        return e

    ref, _ = quiet(go, RefCOCO, RefCOCOeval)
    ours, _ = quiet(go, COCO, COCOeval)
    np.testing.assert_allclose(ours.eval["precision"], ref.eval["precision"], rtol=0, atol=TOL)
    np.testing.assert_allclose(ours.stats, ref.stats, rtol=0, atol=TOL)


def test_no_detections_at_all():
    gt, _ = make(seed=6, n_images=20, cat_ids=CATS)
    g, _ = quiet(COCO, copy.deepcopy(gt))
    e = COCOeval(g, quiet(g.loadRes, [])[0], "bbox")
    quiet(e.evaluate), quiet(e.accumulate), quiet(e.summarize)
    present = {a["category_id"] for a in gt["annotations"] if not a["iscrowd"]}
    # Categories with objects: recall 0 and precision 0; the others -1.
    assert set(np.unique(e.eval["recall"][:, :, 0, 2])) == {0.0, -1.0}
    assert (e.eval["recall"][0, :, 0, 2] == 0).sum() == len(present)
    assert e.stats[0] == 0.0


def test_out_of_scope_and_bad_input_say_so(tmp_path):
    g, _ = quiet(COCO, {"images": [{"id": 1}], "annotations": [], "categories": [{"id": 1}]})
    with pytest.raises(NotImplementedError, match="segmentation and keypoints are out of scope"):
        COCOeval(g, g, "segm")
    with pytest.raises(NotImplementedError, match="pass 'bbox'"):
        COCOeval(g, g)
    with pytest.raises(NotImplementedError, match="out of scope"):
        COCOeval(g, g, "keypoints")

    bad = tmp_path / "gt.json"
    bad.write_text('{"images": [{"id": 1}],\n "annotations": [\n  {"id": 1, "image_id": 1, '
                   '"category_id": 1, "bbox": [1, 2, 3]}\n ]}\n')
    with pytest.raises(EvalError, match=r"gt\.json:3: not a COCO dataset: invalid length 3"):
        quiet(COCO, str(bad))
    with pytest.raises(FileNotFoundError, match="missing.json"):
        quiet(COCO, str(tmp_path / "missing.json"))
    with pytest.raises(EvalError, match=r"Results do not correspond to current coco set: "
                                        r"result 0 is on image_id 7"):
        g.loadRes([{"image_id": 7, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1.0}])
    with pytest.raises(EvalError, match=r"results\[0\]: no `bbox`.*out of scope"):
        g.loadRes([{"image_id": 1, "category_id": 1, "segmentation": [], "score": 1.0}])
    with pytest.raises(EvalError, match=r"results\[1\]: `bbox` has 2 numbers"):
        g.loadRes([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1.0},
                   {"image_id": 1, "category_id": 1, "bbox": [0, 0], "score": 1.0}])
    res = tmp_path / "res.json"
    res.write_text('[{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}]')
    with pytest.raises(EvalError, match=r"res\.json:1: .*missing field `score`"):
        quiet(g.loadRes, str(res))
    assert issubclass(EvalError, ValueError)
    assert rcnn_eval.EvalError is EvalError


def test_hostile_inputs_and_parameters_are_named_not_misread(tmp_path):
    # A string where a list belongs was iterated character by character; a NaN id in an
    # N x 7 array became image 0; maxDets=[-1] and huge ids raised a bare OverflowError.
    with pytest.raises(EvalError, match=r"dataset\['annotations'\] is 'x', not a list"):
        quiet(COCO, {"images": [{"id": 1}], "annotations": "x", "categories": []})
    g, _ = quiet(COCO, {"images": [{"id": 1}], "annotations": [], "categories": [{"id": 1}]})
    with pytest.raises(EvalError, match=r"row 0: image_id NaN is not an integer id"):
        quiet(g.loadRes, np.array([[np.nan, 0, 0, 1, 1, 1.0, 1]]))
    d, _ = quiet(g.loadRes, np.array([[1.0, 0, 0, 1, 1, 1.0, 1]]))
    # Ids written as whole floats are the ids, in dicts as in arrays (pycocotools: 1.0 == 1).
    f, _ = quiet(g.loadRes, [{"image_id": 1.0, "category_id": 1.0, "bbox": [0, 0, 1, 1],
                               "score": 1.0}])
    assert f.getImgIds() == [1] and len(f.getAnnIds()) == 1
    res = tmp_path / "float-ids.json"
    res.write_text('[{"image_id": 1.0, "category_id": 1.0, "bbox": [0, 0, 1, 1], "score": 1.0}]')
    f, _ = quiet(g.loadRes, str(res))
    assert len(f.getAnnIds()) == 1
    with pytest.raises(EvalError, match=r"`image_id` is 1.5, not an integer id"):
        quiet(g.loadRes, [{"image_id": 1.5, "category_id": 1, "bbox": [0, 0, 1, 1],
                           "score": 1.0}])
    for field, value, shown in [("maxDets", [-1], "-1"), ("imgIds", [2**70], str(2**70))]:
        e = COCOeval(g, d, "bbox")
        setattr(e.params, field, value)
        with pytest.raises(ValueError, match=r"params\.{}: {} is not a whole number".format(field, shown)):
            quiet(e.evaluate)


def assert_same_eval_imgs(ref, ours):
    assert len(ours) == len(ref)
    assert sum(e is None for e in ours) == sum(e is None for e in ref)
    for a, b in zip(ref, ours):
        if a is None or b is None:
            assert a is b
            continue
        assert set(a) == set(b)
        for key in a:
            x, y = a[key], b[key]
            if isinstance(x, np.ndarray):
                assert x.dtype == y.dtype and x.shape == y.shape, key
                assert np.array_equal(x, y), key
            else:
                assert x == y and type(x) == type(y), (key, x, y)


@pytest.mark.parametrize("name", ["default", "useCats0_catIds", "everything", "areaRng"])
def test_eval_imgs_and_ious_on_demand(name):
    gt, dets = make(seed=8, n_images=60, cat_ids=CATS)
    for a in gt["annotations"][:3]:
        a["id"] -= 1  # one object with id 0
    setter = PARAMS.get(name)

    def go(coco_cls, eval_cls):
        g = coco_from_dict(coco_cls, gt)
        e = eval_cls(g, g.loadRes(copy.deepcopy(dets)), "bbox")
        if setter:
            setter(e.params)
        e.evaluate()
        return e

    ref, _ = quiet(go, RefCOCO, RefCOCOeval)
    ours, _ = quiet(go, COCO, COCOeval)
    assert_same_eval_imgs(ref.evalImgs, ours.evalImgs)
    assert list(ours.ious) == list(ref.ious)
    for key, x in ref.ious.items():
        y = ours.ious[key]
        if isinstance(x, list):
            assert y == [] and x == [], key
        else:
            assert y.shape == x.shape and np.array_equal(x, y), key
    # And accumulate() after them still gives pycocotools' arrays.
    quiet(ref.accumulate), quiet(ours.accumulate)
    np.testing.assert_allclose(ours.eval["precision"], ref.eval["precision"], rtol=0, atol=TOL)
