#!/usr/bin/env python3
"""Make the classification-test fixture with PyTorch + torchvision (tests/fixtures/classify).

`rcnn classify` must give torchvision's GoogLeNet's probabilities for 1, 10 and 144 crops of
real photos. This script is the reference: the weights are the parity fixture's seeded
torchvision GoogLeNet (tests/fixtures/googlenet_parity/googlenet_tv10_f16.pth, 10 classes),
the crops are made with torchvision.transforms.v2.functional from the pixels of lossless PNG
copies of three real photos (so that both sides start from the same decoded pixels: JPEG
decoders differ by a grey level here and there), and the softmax is averaged over crops and
networks in float32.

Resizing: torchvision's `resize(..., antialias=True)` on float32 tensors (bilinear with
antialiasing, libtorch's _upsample_bilinear2d_aa), no rounding to bytes between steps; what
`rcnn classify` does.

Crops (section 7 of Szegedy et al. 2014, "Going deeper with convolutions"):
  1:   resize the shorter side to 256, centre 224 crop (torchvision's ImageNet evaluation).
  10:  resize to 256, torchvision's TenCrop (five_crop of the image and of its mirror).
  144: shorter side 256, 288, 320, 352; left/centre/right squares (top/centre/bottom for
       portraits); from each square and from its mirror image: five_crop(224) and the whole
       square resized to 224x224.

Run: scripts/setup-reference.sh, then .venv-ref/bin/python scripts/make_classify_fixture.py
"""
import json
import pathlib

import torch
import torchvision
import torchvision.transforms.v2.functional as TF
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "classify"
WEIGHTS = ROOT / "tests" / "fixtures" / "googlenet_parity" / "googlenet_tv10_f16.pth"
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]

# (source photo, crop box left, top, right, bottom, fixture name). Sizes chosen so that the
# centre offsets meet odd spare widths (Python's round-half-even matters) and both orientations
# and a square appear.
PHOTOS = [
    ("data/raccoon/images/raccoon-1.jpg", (150, 80, 484, 343), "raccoon-1-334x263.png"),
    ("data/raccoon/images/raccoon-10.jpg", (90, 100, 353, 406), "raccoon-10-263x306.png"),
    ("data/bccd/images/BloodImage_00000.jpg", (170, 90, 470, 390), "bccd-00000-300x300.png"),
]


def crops(img, n, size=224):
    """The n crops of a [3, H, W] float tensor, [n, 3, size, size]."""
    if n == 1:
        return TF.center_crop(TF.resize(img, [256], antialias=True), [size])[None]
    if n == 10:
        return torch.stack(TF.ten_crop(TF.resize(img, [256], antialias=True), [size]))
    assert n == 144
    out = []
    for short in (256, 288, 320, 352):
        r = TF.resize(img, [short], antialias=True)
        h, w = r.shape[-2:]
        if w >= h:
            squares = [TF.crop(r, 0, 0, short, short), TF.center_crop(r, [short]), TF.crop(r, 0, w - short, short, short)]
        else:
            squares = [TF.crop(r, 0, 0, short, short), TF.center_crop(r, [short]), TF.crop(r, h - short, 0, short, short)]
        for sq in squares:
            for im in (sq, TF.hflip(sq)):
                out.extend(TF.five_crop(im, [size]))
                out.append(TF.resize(im, [size, size], antialias=True))
    return torch.stack(out)


def model(transform_input):
    m = torchvision.models.googlenet(
        weights=None, num_classes=10, aux_logits=False, init_weights=False, transform_input=transform_input
    )
    sd = torch.load(WEIGHTS)
    m.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()})
    return m.eval()


def main():
    torch.set_num_threads(2)
    OUT.mkdir(parents=True, exist_ok=True)
    for src, box, name in PHOTOS:
        Image.open(ROOT / src).convert("RGB").crop(box).save(OUT / name, optimize=True)
    models = {"transform_input_true": model(True), "transform_input_false": model(False)}
    results = {}
    per_crop = {}
    for name in [p[2] for p in PHOTOS]:
        pixels = TF.pil_to_tensor(Image.open(OUT / name).convert("RGB")).float()
        per_model = {}
        for n in (1, 10, 144):
            x = TF.normalize(crops(pixels, n) / 255.0, MEAN, STD)
            for key, m in models.items():
                with torch.inference_mode():
                    each = torch.softmax(m(x), dim=1)
                p = each.mean(0)
                if key == "transform_input_true":
                    # Every crop's own probabilities, in torchvision's order of the crops.
                    per_crop.setdefault(str(n), {})[name] = [[round(v, 7) for v in r] for r in each.tolist()]
                per_model[(key, n)] = p
                results.setdefault(key, {}).setdefault(str(n), {})[name] = p.tolist()
            # The two networks as an ensemble: the mean of their crop-averaged softmax.
            both = (per_model[("transform_input_true", n)] + per_model[("transform_input_false", n)]) / 2
            results.setdefault("ensemble", {}).setdefault(str(n), {})[name] = both.tolist()
        print(name, tuple(pixels.shape), {n: [round(v, 4) for v in results["transform_input_true"][str(n)][name]] for n in ("1", "10", "144")})
    meta = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "weights": str(WEIGHTS.relative_to(ROOT)),
        "photos": [{"png": p[2], "from": p[0], "crop_box_ltrb": p[1]} for p in PHOTOS],
        "resize": "torchvision.transforms.v2.functional.resize(float32, antialias=True)",
        "normalisation": {"mean": MEAN, "std": STD},
    }
    (OUT / "expected.json").write_text(json.dumps({"meta": meta, "probabilities": results, "per_crop_transform_input_true": per_crop}) + "\n")


if __name__ == "__main__":
    main()
