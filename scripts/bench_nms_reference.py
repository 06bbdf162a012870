#!/usr/bin/env python3
"""Reference for `rcnn bench nms`: torchvision.ops.batched_nms on the boxes in FILE
(little-endian: u64 n, then n*4 f32 boxes, n f32 scores, n i64 classes), at IoU THRESHOLD,
with THREADS threads. Prints {"seconds": median of repeats, "kept": count, "checksum": sum of i*i + i over kept i}."""
import json
import struct
import sys
import time

import torch
from torchvision.ops import batched_nms


def main():
    path, threshold, threads = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    data = open(path, "rb").read()
    (n,) = struct.unpack_from("<Q", data, 0)
    off = 8
    boxes = torch.frombuffer(bytearray(data[off:off + 16 * n]), dtype=torch.float32).reshape(n, 4)
    off += 16 * n
    scores = torch.frombuffer(bytearray(data[off:off + 4 * n]), dtype=torch.float32)
    off += 4 * n
    classes = torch.frombuffer(bytearray(data[off:off + 8 * n]), dtype=torch.int64)
    times = []
    keep = None
    for _ in range(5):
        t = time.perf_counter()
        keep = batched_nms(boxes, scores, classes, threshold)
        times.append(time.perf_counter() - t)
    times.sort()
    k = keep.tolist()
    # Order-free checksum: batched_nms ranks equal scores in no defined order.
    print(json.dumps({"seconds": times[len(times) // 2], "kept": len(k),
                      "checksum": sum(v * v + v for v in k)}))


if __name__ == "__main__":
    main()
