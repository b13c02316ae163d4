#!/usr/bin/env bash
# nnxp on CuPy against PyTorch CUDA eager, on the `wide` and `mnist` cases, one GPU.
# Clocks are read only after cupy.cuda.Device().synchronize() and torch.cuda.synchronize().
# Takes about 2-4 minutes on a current data-centre GPU; writes BENCHMARKS-GPU.md.
#
#   bash benchmarks/gpu.sh            # in a virtual environment with nnxp installed
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python -c "import cupy, sys; sys.exit(0 if cupy.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu.sh: no CUDA device answers to CuPy here; nothing to run" >&2
  exit 1
fi
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
  echo "gpu.sh: this torch build has no CUDA; install a CUDA build of torch" >&2
  exit 1
}
python benchmarks/mlp.py --gpu --case wide --case mnist --rounds 5 --write BENCHMARKS-GPU.md
