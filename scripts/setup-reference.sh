#!/usr/bin/env bash
# The Python reference (PyTorch 2.11 + torchvision 0.26 + pycocotools) in .venv-ref, git-ignored.
# Only the fixture generators and the reference columns of `rcnn bench` use it; `cargo test`
# needs no Python. Downloads about 2.6 GB (the CUDA wheels PyPI serves for Linux).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv-ref/bin/python ] || python3 -m venv .venv-ref
.venv-ref/bin/pip install -q --disable-pip-version-check \
  torch==2.11.0 torchvision==0.26.0 numpy safetensors pycocotools
.venv-ref/bin/python -c 'import torch, torchvision; print("reference:", torch.__version__, torchvision.__version__)'
