#!/usr/bin/env python3
"""Make the torch.save reader fixtures (tests/fixtures/pth) with PyTorch.

One small state dict, saved four ways: the zip format of PyTorch 1.6+ and the legacy stream
(`_use_new_zipfile_serialization=False`), each as an OrderedDict (what `model.state_dict()`
returns) and as a checkpoint dict that nests it under `state_dict`. Its tensors exercise what a
reader can get wrong: shared storages, a transposed (non-contiguous) view, a storage offset,
float16, bfloat16, float64, int64, bool, an empty tensor and an nn.Parameter. Values are simple
formulas that the Rust test (tests/model.rs, pth_*) recomputes.

Run: scripts/setup-reference.sh, then .venv-ref/bin/python scripts/make_pth_fixtures.py
"""
import collections
import pathlib

import torch

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "pth"


def state():
    a = torch.arange(12, dtype=torch.float32).reshape(3, 4) * 0.5 - 1.0
    big = torch.arange(20, dtype=torch.float32)
    sd = collections.OrderedDict()
    sd["a"] = a
    sd["a_t"] = a.t()  # same storage, strides (1, 4)
    sd["offset"] = big[5:9]  # storage offset 5
    sd["half"] = (torch.arange(6, dtype=torch.float32) / 4).to(torch.float16).reshape(2, 3)
    sd["bf16"] = (torch.arange(4, dtype=torch.float32) - 1.5).to(torch.bfloat16)
    sd["f64"] = torch.tensor([1e-300, -2.5, 3.0], dtype=torch.float64)
    sd["long"] = torch.tensor([-(2**40), 7], dtype=torch.int64)
    sd["bool"] = torch.tensor([True, False, True])
    sd["empty"] = torch.zeros(0, 3)
    sd["param"] = torch.nn.Parameter(torch.full((2, 2), 0.25))
    sd._metadata = collections.OrderedDict({"": {"version": 1}})
    return sd


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    sd = state()
    checkpoint = {"epoch": 3, "state_dict": sd, "optimizer": {"lr": 0.01}}
    torch.save(sd, OUT / "zip_ordered.pth")
    torch.save(checkpoint, OUT / "zip_checkpoint.pth")
    torch.save(sd, OUT / "legacy_ordered.pth", _use_new_zipfile_serialization=False)
    torch.save(checkpoint, OUT / "legacy_checkpoint.pth", _use_new_zipfile_serialization=False)
    for f in sorted(OUT.glob("*.pth")):
        print(f.name, f.stat().st_size)


if __name__ == "__main__":
    main()
