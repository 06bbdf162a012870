#!/usr/bin/env python3
"""Random boxes and torchvision.ops.nms / batched_nms kept indices (tests/fixtures/nms).

float32 boxes of many sizes, heavily overlapping, scores rounded to two decimals so that ties
are common, ten classes; thresholds 0.3, 0.5 and 0.7. The Rust test must keep exactly the same
indices in the same order.

Run: scripts/setup-reference.sh, then .venv-ref/bin/python scripts/make_nms_fixture.py
"""
import json
import pathlib

import torch
import torchvision
from torchvision.ops import batched_nms, nms

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "nms"


def main():
    g = torch.Generator().manual_seed(2014)
    n = 1500
    centres = torch.rand(n, 2, generator=g) * 300
    # Clusters: many boxes near a few centres, as proposals around objects.
    centres[: n // 2] = (torch.rand(15, 2, generator=g) * 300).repeat(n // 30, 1)[: n // 2] + torch.randn(n // 2, 2, generator=g) * 5
    sizes = torch.rand(n, 2, generator=g) * 80 + 5
    boxes = torch.cat([centres - sizes / 2, centres + sizes / 2], 1).float()
    scores = (torch.rand(n, generator=g) * 100).round() / 100
    scores = scores.float()
    classes = torch.randint(0, 10, (n,), generator=g)
    out = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "boxes": boxes.tolist(),
        "scores": scores.tolist(),
        "classes": classes.tolist(),
        "nms": {},
        "batched_nms": {},
    }
    for t in (0.3, 0.5, 0.7):
        out["nms"][str(t)] = nms(boxes, scores, t).tolist()
        out["batched_nms"][str(t)] = batched_nms(boxes, scores, classes, t).tolist()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "nms.json").write_text(json.dumps(out))
    print({k: len(v) for k, v in out["nms"].items()}, {k: len(v) for k, v in out["batched_nms"].items()})


if __name__ == "__main__":
    main()
