#!/usr/bin/env python3
"""Reference for `rcnn bench classifier`: torchvision's GoogLeNet in PyTorch, eager (and, with
--compile, torch.compile'd), same batch sizes, threads, input size, classes, device, dtype and
memory order as our rows; eval, inference mode, cudnn.benchmark on CUDA. Measured as ours is:
--warmup untimed passes, then --repeats runs of at least --min-seconds each, synchronised,
median. Prints one JSON object per line: first the versions and TF32 settings, then
{"batch": b, "mode": "eager"|"compile", "crops_per_s": x, "passes": n} per batch size.
"""
import argparse
import json
import statistics
import time

import torch
import torchvision


def rate(model, x, device, warmup, repeats, min_seconds):
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(max(warmup, 1)):
        model(x)
    sync()
    rates, total = [], 0
    for _ in range(max(repeats, 1)):
        passes = 0
        start = time.perf_counter()
        while passes == 0 or time.perf_counter() - start < min_seconds:
            model(x)
            passes += 1
            sync()
        rates.append(passes * x.shape[0] / (time.perf_counter() - start))
        total += passes
    return statistics.median(rates), total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch-sizes", default="1,2,4,8,16,32,64,128")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--input-size", type=int, default=224)
    ap.add_argument("--num-classes", type=int, default=201)
    ap.add_argument("--min-seconds", type=float, default=1.0)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile(model)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = torchvision.models.googlenet(
        weights=None, num_classes=args.num_classes, aux_logits=False, init_weights=True
    ).eval().to(device=args.device, dtype=dtype, memory_format=memory_format)
    print(json.dumps({
        "torch": torch.__version__, "torchvision": torchvision.__version__,
        "threads": torch.get_num_threads(),
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
    }), flush=True)
    modes = [("eager", model)]
    if args.compile:
        modes.append(("compile", torch.compile(model)))
    with torch.inference_mode():
        for batch in [int(b) for b in args.batch_sizes.split(",")]:
            x = torch.randn(batch, 3, args.input_size, args.input_size, device=args.device)
            x = x.to(dtype=dtype).contiguous(memory_format=memory_format)
            for mode, m in modes:
                try:
                    r, passes = rate(m, x, args.device, args.warmup, args.repeats,
                                     args.min_seconds)
                except Exception as e:  # torch.compile may be unsupported here: say so
                    print(json.dumps({"batch": batch, "mode": mode, "error": str(e)[:200]}),
                          flush=True)
                    continue
                print(json.dumps({"batch": batch, "mode": mode, "crops_per_s": r,
                                  "passes": passes}), flush=True)


if __name__ == "__main__":
    main()
