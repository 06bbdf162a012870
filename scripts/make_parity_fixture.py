#!/usr/bin/env python3
"""Make the GoogLeNet parity fixture with PyTorch + torchvision (tests/fixtures/googlenet_parity).

Seeded weights for torchvision.models.googlenet (10 classes, no auxiliary heads), a seeded
input batch, and torchvision's logits for it with transform_input off and on. The Rust test
loads the .pth through `rcnn import-weights`' reader and must reproduce the logits to 1e-4
relative.

Weights are drawn with a He-style scale (torchvision's own init shrinks activations to ~1e-9
through 22 layers, which would make a relative comparison meaningless), batch-norm statistics
are random, and every float is rounded to float16 and stored as float16 so the fixture stays
under 15 MB; the model that produced the logits ran in float32 on those exact values.

It also holds an input and torch.nn.functional.local_response_norm's output for it, for the
paper layout's LRN.

Run: scripts/setup-reference.sh, then .venv-ref/bin/python scripts/make_parity_fixture.py
"""
import json
import math
import pathlib

import torch
import torch.nn.functional as F
import torchvision
from safetensors.torch import save_file

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "googlenet_parity"
NUM_CLASSES = 10
SEED = 20141


def seeded_state_dict(model, gen):
    sd = {}
    for name, t in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            sd[name] = t.clone()
            continue
        shape = t.shape
        if name.endswith("bn.weight"):
            v = torch.empty(shape).uniform_(0.5, 1.5, generator=gen)
        elif name.endswith("bn.bias") or name == "fc.bias":
            v = torch.empty(shape).uniform_(-0.1, 0.1, generator=gen)
        elif name.endswith("running_mean"):
            v = torch.randn(shape, generator=gen) * 0.1
        elif name.endswith("running_var"):
            v = torch.empty(shape).uniform_(0.5, 2.0, generator=gen)
        elif t.dim() == 4:  # conv weight [out, in, k, k]
            fan_in = shape[1] * shape[2] * shape[3]
            v = torch.randn(shape, generator=gen) * math.sqrt(2.0 / fan_in)
        elif name == "fc.weight":
            v = torch.randn(shape, generator=gen) * math.sqrt(1.0 / shape[1])
        else:
            raise ValueError(f"unexpected tensor {name}")
        sd[name] = v.to(torch.float16)
    return sd


def float32_model(state_dict, transform_input):
    """torchvision's GoogLeNet of the fixture, in eval mode, on the state dict's values in
    float32."""
    model = torchvision.models.googlenet(
        weights=None,
        num_classes=NUM_CLASSES,
        aux_logits=False,
        init_weights=False,
        transform_input=transform_input,
    )
    model.load_state_dict(
        {k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()}
    )
    return model.eval()


def main():
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    torch.set_num_threads(2)
    OUT.mkdir(parents=True, exist_ok=True)

    ref = torchvision.models.googlenet(
        weights=None, num_classes=NUM_CLASSES, aux_logits=False, init_weights=False
    )
    sd16 = seeded_state_dict(ref, gen)
    # Saved exactly as torchvision's published files are: `torch.save(model.state_dict(), f)`,
    # an OrderedDict with `_metadata`, here of a float16 copy of the model.
    half = torchvision.models.googlenet(
        weights=None, num_classes=NUM_CLASSES, aux_logits=False, init_weights=False
    ).half()
    half.load_state_dict(sd16)
    torch.save(half.state_dict(), OUT / "googlenet_tv10_f16.pth")

    x = torch.rand(2, 3, 224, 224, generator=gen) * 2.0 - 1.0
    outputs = {"input": x.contiguous()}
    for transform_input in (False, True):
        model = float32_model(sd16, transform_input)
        with torch.inference_mode():
            logits = model(x)
        assert torch.isfinite(logits).all()
        outputs[f"logits_transform_input_{str(transform_input).lower()}"] = logits.contiguous()
        print(f"transform_input={transform_input}: logits std {logits.std():.4f}, first row {logits[0, :4].tolist()}")

    # Local response normalisation as the paper layout uses it (size 5, alpha 1e-4, beta 0.75,
    # k 1), on inputs large enough for the normalisation to matter.
    lrn_gen = torch.Generator().manual_seed(SEED + 1)
    lrn_in = torch.randn(2, 16, 5, 5, generator=lrn_gen) * 30.0
    outputs["lrn_input"] = lrn_in
    outputs["lrn_output"] = torch.nn.functional.local_response_norm(lrn_in, 5, alpha=1e-4, beta=0.75, k=1.0)

    n_params = sum(p.numel() for p in ref.parameters())
    meta = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "seed": str(SEED),
        "num_classes": str(NUM_CLASSES),
        "parameters": str(n_params),
    }
    save_file(outputs, OUT / "input_and_logits.safetensors", metadata=meta)
    full = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False)
    meta["parameters_1000_classes"] = str(sum(p.numel() for p in full.parameters()))
    (OUT / "PROVENANCE.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta))


def features():
    """torchvision's pooled features (the 1024-d global average pool, before dropout and fc),
    and inception 5b's map averaged over a 3x3 grid (flattened channel-major: box regression's
    features), for the fixture's input, from the saved state dict: features.safetensors."""
    sd = torch.load(OUT / "googlenet_tv10_f16.pth")
    from safetensors.torch import load_file

    x = load_file(OUT / "input_and_logits.safetensors")["input"]
    outputs = {}
    for transform_input in (False, True):
        model = float32_model(sd, transform_input)
        pooled = {}
        model.avgpool.register_forward_hook(lambda m, i, o: pooled.setdefault("x", o.flatten(1)))
        # A hook that returns a value replaces the module's output: this one returns None.
        model.inception5b.register_forward_hook(
            lambda m, i, o: pooled.update(grid=F.adaptive_avg_pool2d(o, 3).flatten(1))
        )
        with torch.inference_mode():
            model(x)
        flag = str(transform_input).lower()
        outputs[f"features_transform_input_{flag}"] = pooled["x"].contiguous()
        outputs[f"grid_transform_input_{flag}"] = pooled["grid"].contiguous()
    save_file(outputs, OUT / "features.safetensors", metadata={"torch": torch.__version__})


if __name__ == "__main__":
    main()
    features()
