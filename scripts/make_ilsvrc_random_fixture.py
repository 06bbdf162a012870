#!/usr/bin/env python3
"""Random ILSVRC-style data and per-class AP by a straight-line implementation of the devkit's
eval_detection.m rules (and of VOCevaldet.m's), for eval/tests/fixtures/ilsvrc-random.

No library code: loops over images and boxes exactly as the rules read, so the Rust evaluator
is checked against an independent implementation, not against itself.

- ilsvrc: per-object threshold min(0.5, w*h / ((w+10)(h+10))) with inclusive pixel widths;
  within each image, detections by confidence (stable); each takes the not-yet-matched object
  of its class with the highest IoU at or above that object's threshold; blacklisted
  (image, class) pairs drop their objects and detections; one ranking per class over the
  images in list order (stable); all-point AP (VOCap).
- voc / voc07: each detection (ranked by confidence, stable, in file order) takes the object of
  its class with the highest IoU; >= 0.5 and difficult: ignored; already matched: false
  positive. Difficult objects are not counted. All-point AP, and 11-point at i * 0.1.

Tiny objects (1x1 and up), inverted detection boxes, tied scores and a blacklist are included.
Run: scripts/setup-reference.sh, then .venv-ref/bin/python scripts/make_ilsvrc_random_fixture.py
"""
import json
import pathlib
import random

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "eval" / "tests" / "fixtures" / "ilsvrc-random"


def iou(a, b):
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return None  # the devkit computes no overlap here
    ua = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - iw * ih
    return iw * ih / ua


def vocap(rec, prec):
    mrec = [0.0] + rec + [1.0]
    mpre = [0.0] + prec + [0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    return sum((mrec[i] - mrec[i - 1]) * mpre[i] for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1])


def voc07ap(rec, prec):
    ap = 0.0
    for i in range(11):
        t = i * 0.1
        ps = [p for r, p in zip(rec, prec) if r >= t]
        ap += (max(ps) if ps else 0.0) / 11
    return ap


def curve(flags, npos):
    tp = fp = 0
    rec, prec = [], []
    for f in flags:
        tp += f
        fp += 1 - f
        rec.append(tp / npos if npos else 0.0)
        prec.append(tp / (tp + fp))
    return rec, prec


def stable_desc(items, key):
    return sorted(items, key=lambda x: -key(x))  # Python's sort is stable


def ilsvrc_aps(n_images, classes, gt, dets, blacklist):
    aps = {}
    for c in classes:
        npos = sum(1 for (i, cl, _) in gt if cl == c and (i, c) not in blacklist)
        ranked = []  # (confidence, tp) in image order
        for i in range(n_images):
            if (i, c) in blacklist:
                continue
            objs = [b for (im, cl, b) in gt if im == i and cl == c]
            thr = []
            for b in objs:
                w, h = b[2] - b[0] + 1, b[3] - b[1] + 1
                thr.append(min(0.5, (w * h) / ((w + 10) * (h + 10))))
            mine = stable_desc([(s, b) for (im, cl, s, b) in dets if im == i and cl == c], key=lambda x: x[0])
            detected = [False] * len(objs)
            for s, b in mine:
                best, k = -float("inf"), -1
                for j, g in enumerate(objs):
                    if detected[j]:
                        continue
                    ov = iou(b, g)
                    if ov is not None and ov >= thr[j] and ov > best:
                        best, k = ov, j
                if k >= 0:
                    detected[k] = True
                ranked.append((s, 1 if k >= 0 else 0))
        ranked = stable_desc(ranked, key=lambda x: x[0])
        rec, prec = curve([t for _, t in ranked], npos)
        if npos > 0:
            aps[c] = vocap(rec, prec)
    return aps


def voc_aps(classes, gt, difficult, dets):
    aps = {}
    for c in classes:
        npos = sum(1 for k, (i, cl, _) in enumerate(gt) if cl == c and not difficult[k])
        mine = stable_desc([(im, s, b) for (im, cl, s, b) in dets if cl == c], key=lambda x: x[1])
        matched = set()
        flags = []
        for im, s, b in mine:
            best, jmax = -float("inf"), -1
            for k, (i, cl, g) in enumerate(gt):
                if i != im or cl != c:
                    continue
                ov = iou(b, g)
                if ov is not None and ov > best:
                    best, jmax = ov, k
            if best >= 0.5:
                if difficult[jmax]:
                    continue
                flags.append(0 if jmax in matched else 1)
                matched.add(jmax)
            else:
                flags.append(0)
        rec, prec = curve(flags, npos)
        if npos > 0:
            aps[c] = (voc07ap(rec, prec), vocap(rec, prec))
    return aps


def random_box(rng, W, H, tiny):
    if tiny:
        w, h = rng.randint(1, 24), rng.randint(1, 24)
    else:
        w, h = rng.randint(25, W // 2), rng.randint(25, H // 2)
    x, y = rng.randint(0, W - w), rng.randint(0, H - h)
    return [x, y, x + w - 1, y + h - 1]


def jitter(rng, b, px):
    return [b[0] + rng.randint(-px, px), b[1] + rng.randint(-px, px), b[2] + rng.randint(-px, px), b[3] + rng.randint(-px, px)]


def main():
    rng = random.Random(2014)
    synsets = [l.split("\t") for l in (ROOT / "data/ilsvrc/det_synsets_200.tsv").read_text().splitlines() if not l.startswith("#")]
    chosen = sorted(rng.sample(range(200), 25))
    classes = [synsets[i][1] for i in chosen]  # WNIDs
    det_id = {synsets[i][1]: int(synsets[i][0]) for i in chosen}
    n_images = 300
    names = [f"ILSVRC2013_val_{i + 1:08d}" for i in range(n_images)]
    gt, difficult, dets = [], [], []
    for i in range(n_images):
        W, H = 500, 375
        objs = []
        for _ in range(rng.choice([0, 0, 1, 2, 3, 5])):
            c = rng.choice(classes)
            b = random_box(rng, W, H, tiny=rng.random() < 0.3)
            gt.append((i, c, b))
            difficult.append(rng.random() < 0.1)
            objs.append((c, b))
        for _ in range(rng.randint(0, 10)):
            if objs and rng.random() < 0.7:
                c, b = rng.choice(objs)
                b = jitter(rng, b, rng.choice([0, 1, 3, 8]))
                if rng.random() < 0.1:
                    c = rng.choice(classes)
            else:
                c, b = rng.choice(classes), random_box(rng, W, H, tiny=rng.random() < 0.3)
            if rng.random() < 0.02:
                b = [b[2], b[3], b[0], b[1]]  # inverted, as in the devkit's demo submission
            dets.append((i, c, round(rng.random(), 2), b))
    rng.shuffle(dets)  # file order is not image order
    blacklist = set()
    while len(blacklist) < 20:
        i, c, _ = rng.choice(gt)
        blacklist.add((i, c))

    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "image_list.txt").write_text("".join(f"{n} {i + 1}\n" for i, n in enumerate(names)))
    (OUT / "gt.csv").write_text("image,class,xmin,ymin,xmax,ymax,difficult\n" + "".join(
        f"{names[i]},{c},{b[0]},{b[1]},{b[2]},{b[3]},{int(d)}\n" for (i, c, b), d in zip(gt, difficult)))
    (OUT / "dets.txt").write_text("".join(
        f"{i + 1} {det_id[c]} {s} {b[0]} {b[1]} {b[2]} {b[3]}\n" for (i, c, s, b) in dets))
    (OUT / "blacklist.txt").write_text("".join(f"{i + 1} {c}\n" for (i, c) in sorted(blacklist)))
    # The Rust side reads the class list from the ground truth (ILSVRC 200 by WNID); difficult
    # flags do not matter to the ILSVRC rules.
    expected = {
        "ilsvrc": ilsvrc_aps(n_images, classes, gt, dets, blacklist),
        "voc": {c: v[1] for c, v in voc_aps(classes, gt, difficult, dets).items()},
        "voc07": {c: v[0] for c, v in voc_aps(classes, gt, difficult, dets).items()},
        "objects": len(gt),
        "detections": len(dets),
    }
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    print(len(gt), "objects,", len(dets), "detections; ilsvrc mAP",
          sum(expected["ilsvrc"].values()) / len(expected["ilsvrc"]))


if __name__ == "__main__":
    main()
