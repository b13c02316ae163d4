"""What every example shares: the --backend flag and its set-up."""

from __future__ import annotations

import argparse

import nnxp


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--backend", default="numpy", choices=["numpy", "array_api_strict", "torch", "jax", "cupy"]
    )
    p.add_argument("--seed", type=int, default=0)
    return p


def use(args: argparse.Namespace) -> None:
    """Switch to the chosen backend (one thread for torch on the CPU: tiny matmuls are
    far slower with more on a small machine)."""
    backend = nnxp.set_backend(args.backend)
    if backend.name == "torch" and str(backend.device) == "cpu":
        import torch

        torch.set_num_threads(1)
