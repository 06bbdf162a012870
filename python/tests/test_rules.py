"""The ILSVRC and VOC rules from Python: map-eval's files and Python lists, per-class AP
against the reference fixtures' numbers, the report as `map-eval --report` writes it."""

import csv
import json
import pathlib
import subprocess

import pytest

import rcnn_eval
from rcnn_eval import EvalError

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "eval" / "tests" / "fixtures"
RANDOM = FIXTURES / "ilsvrc-random"
EXPECTED = json.loads((RANDOM / "expected.json").read_text())


def aps(report):
    return {c["wnid"]: c["ap"] for c in report["classes"] if c["n_gt"] > 0}


def assert_aps(report, expected):
    ours = aps(report)
    assert set(ours) == set(expected)
    for wnid, ap in expected.items():
        assert abs(ours[wnid] - ap) < 1e-9, (wnid, ours[wnid], ap)


def test_files_under_each_rule():
    files = dict(gt=RANDOM / "gt.csv", dets=RANDOM / "dets.txt", image_list=RANDOM / "image_list.txt")
    with pytest.warns(UserWarning, match="x2 < x1"):  # the fixture's inverted boxes, kept
        r = rcnn_eval.ilsvrc(**files, blacklist=RANDOM / "blacklist.txt")
    assert (r["metric"], r["objects"], r["detections"]) == ("ilsvrc", EXPECTED["objects"], EXPECTED["detections"])
    assert_aps(r, EXPECTED["ilsvrc"])
    with pytest.warns(UserWarning):
        assert_aps(rcnn_eval.voc(**files), EXPECTED["voc"])
    with pytest.warns(UserWarning):
        assert_aps(rcnn_eval.voc07(**files), EXPECTED["voc07"])
    assert len(r["classes"]) == 200 and r["mean_ap"] == pytest.approx(
        sum(EXPECTED["ilsvrc"].values()) / len(EXPECTED["ilsvrc"]), abs=1e-12)


def test_published_voc_numbers():
    # rafaelpadilla/review_object_detection_metrics, test case 1 (x y w h txt folders).
    d = FIXTURES / "eval-reference" / "padilla-case1"
    for iou, voc07, voc in [(0.1, 0.3333333333, 0.3371980676), (0.5, 0.0303030303, 0.0222222222)]:
        a = rcnn_eval.voc07(d / "gts", d / "dets", iou, box_format="xywh")["classes"][0]["ap"]
        b = rcnn_eval.voc(d / "gts", d / "dets", iou, box_format="xywh")["classes"][0]["ap"]
        assert abs(a - voc07) < 1e-10 and abs(b - voc) < 1e-10


def records():
    """The random fixture as Python lists: tuples for ground truth, dicts for detections."""
    names = [line.split()[0] for line in (RANDOM / "image_list.txt").read_text().splitlines()]
    with open(RANDOM / "gt.csv") as f:
        gt = [(r["image"], r["class"], *map(float, (r["xmin"], r["ymin"], r["xmax"], r["ymax"])),
               r["difficult"] == "1") for r in csv.DictReader(f)]
    dets = []
    for line in (RANDOM / "dets.txt").read_text().split("\n"):
        if line.strip():
            image, cls, score, *box = line.split()
            dets.append({"image": names[int(image) - 1], "class": int(cls), "score": float(score),
                         "bbox": [float(v) for v in box]})
    return names, gt, dets


def test_lists_give_the_files_numbers():
    names, gt, dets = records()
    with pytest.warns(UserWarning):
        r = rcnn_eval.voc(gt, dets, images=names)
    assert_aps(r, EXPECTED["voc"])
    with pytest.warns(UserWarning):
        assert_aps(rcnn_eval.voc07(gt, dets, images=names), EXPECTED["voc07"])
    with pytest.warns(UserWarning):
        by_files = rcnn_eval.ilsvrc(RANDOM / "gt.csv", RANDOM / "dets.txt",
                                    image_list=RANDOM / "image_list.txt")
    with pytest.warns(UserWarning):
        assert aps(rcnn_eval.ilsvrc(gt, dets, images=names)) == aps(by_files)
    assert r["images"] == len(names)


def test_the_report_is_map_evals(tmp_path):
    files = dict(gt=RANDOM / "gt.csv", dets=RANDOM / "dets.txt", image_list=RANDOM / "image_list.txt",
                 blacklist=RANDOM / "blacklist.txt")
    with pytest.warns(UserWarning):
        r = rcnn_eval.map_eval(**files, metric="ilsvrc", report=tmp_path / "py.json")
    assert json.loads((tmp_path / "py.json").read_text()) == r
    cli = ROOT / "target" / "release" / "map-eval"
    if not cli.exists():
        pytest.skip(f"{cli} is not built (cargo build --release -p eval): no CLI to compare with")
    subprocess.run([str(cli), "--gt", str(files["gt"]), "--dets", str(files["dets"]),
                    "--image-list", str(files["image_list"]), "--blacklist", str(files["blacklist"]),
                    "--report", str(tmp_path / "cli.json")], check=True, capture_output=True)
    assert (tmp_path / "cli.json").read_bytes() == (tmp_path / "py.json").read_bytes()


def test_bad_input_raises_with_the_clis_messages(tmp_path):
    gt = tmp_path / "gt.csv"
    gt.write_text("image,class,xmin,ymin,xmax,ymax\na,n01443537,1,2,3,4\nb,n01443537,1,2,oops,4\n")
    dets = tmp_path / "dets.csv"
    dets.write_text("image,class,score,xmin,ymin,xmax,ymax\na,n01443537,0.9,1,2,3,4\n")
    with pytest.raises(EvalError, match=r"gt\.csv:3.*--strict"):
        rcnn_eval.ilsvrc(gt, dets, strict=True)
    with pytest.warns(UserWarning, match=r"gt\.csv:3"):
        r = rcnn_eval.ilsvrc(gt, dets)
    assert r["issues"]["malformed"] == 1 and aps(r) == {"n01443537": 1.0}
    with pytest.raises(FileNotFoundError, match="nothing.csv"):
        rcnn_eval.voc(tmp_path / "nothing.csv", dets)
    with pytest.raises(EvalError, match="unknown metric `coco2`"):
        rcnn_eval.map_eval(gt, dets, metric="coco2")
    with pytest.raises(EvalError, match=r"iou must be in \(0, 1\]"):
        rcnn_eval.voc(gt, dets, iou=1.5)
    with pytest.raises(EvalError, match=r"dets\[0\]: no `bbox`"):
        rcnn_eval.voc([("a", "cat", 0, 0, 5, 5)], [{"image": "a", "class": "cat", "score": 1}])
    with pytest.raises(EvalError, match=r"is an input of this run"):
        rcnn_eval.voc(gt, dets, report=gt)
    # A NaN score is dropped and counted, never ranked.
    with pytest.warns(UserWarning, match="cannot be ranked"):
        r = rcnn_eval.voc([("a", "cat", 0, 0, 10, 10)],
                          [("a", "cat", float("nan"), 0, 0, 10, 10), ("a", "cat", 0.5, 0, 0, 10, 10)])
    assert r["detections"] == 1 and r["classes"][0]["ap"] == 1.0
