"""A script written for pycocotools runs unchanged but for its imports, and prints the same."""
import json
import pathlib
import re
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
FIXTURE = HERE.parents[1] / "eval" / "tests" / "fixtures" / "coco-random"


def output(script, *args):
    r = subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True,
                       text=True, check=True)
    # Timings differ; every other line must not.
    return [line for line in r.stdout.splitlines() if not re.search(r"\(t=\d+\.\d+s\)", line)]


@pytest.mark.parametrize("first", [0, 150])
def test_a_pycocotools_script_with_only_its_imports_changed(tmp_path, first):
    original = (HERE / "scripts" / "evaluate_coco.py").read_text()
    ported = original.replace("from pycocotools.coco import", "from rcnn_eval.coco import")
    ported = ported.replace("from pycocotools.cocoeval import", "from rcnn_eval.cocoeval import")
    changed = [(a, b) for a, b in zip(original.splitlines(), ported.splitlines()) if a != b]
    assert [b for _, b in changed] == ["from rcnn_eval.coco import COCO",
                                       "from rcnn_eval.cocoeval import COCOeval"]
    (tmp_path / "ported.py").write_text(ported)
    args = [FIXTURE / "gt.json", FIXTURE / "dets.json", "--first-images", first]
    theirs = output(HERE / "scripts" / "evaluate_coco.py", *args)
    ours = output(tmp_path / "ported.py", *args)
    assert any(line.startswith(" Average Precision  (AP) @[ IoU=0.50:0.95") for line in ours)
    assert sum("AP " in line for line in ours) == 11  # ten categories and one never seen
    assert ours == theirs
    if first == 0:
        expected = json.loads((FIXTURE / "expected.json").read_text())["stats"]
        stats = json.loads(ours[-1].split("stats: ")[1])
        assert max(abs(a - b) for a, b in zip(stats, expected)) < 1e-9
