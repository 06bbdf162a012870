#!/usr/bin/env python3
"""Reference for `rcnn bench classifier`: torchvision's GoogLeNet in PyTorch, same batch sizes,
threads, input size and classes; inference mode, eval, fp32 on the CPU. Prints one JSON object
per batch size: {"batch": b, "crops_per_s": x, "passes": n}.
"""
import argparse
import json
import time

import torch
import torchvision


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch-sizes", default="1,2,4,8,16,32,64,128")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--input-size", type=int, default=224)
    ap.add_argument("--num-classes", type=int, default=201)
    ap.add_argument("--min-seconds", type=float, default=1.0)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = torchvision.models.googlenet(
        weights=None, num_classes=args.num_classes, aux_logits=False, init_weights=True
    ).eval()
    print(json.dumps({"torch": torch.__version__, "torchvision": torchvision.__version__,
                      "threads": torch.get_num_threads()}), flush=True)
    with torch.inference_mode():
        for batch in [int(b) for b in args.batch_sizes.split(",")]:
            x = torch.randn(batch, 3, args.input_size, args.input_size)
            model(x)  # warm-up, untimed
            passes = 0
            start = time.perf_counter()
            while passes == 0 or time.perf_counter() - start < args.min_seconds:
                model(x)
                passes += 1
            elapsed = time.perf_counter() - start
            print(json.dumps({"batch": batch, "crops_per_s": passes * batch / elapsed,
                              "passes": passes}), flush=True)


if __name__ == "__main__":
    main()
