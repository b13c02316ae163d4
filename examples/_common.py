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


def use(args: argparse.Namespace, *, float64: bool = False) -> None:
    """Switch to the chosen backend (one thread for torch on the CPU: tiny matmuls are
    far slower with more on a small machine).

    ``float64=True``: the example computes in float64 (a gradient check, L-BFGS). On jax
    that needs JAX's 64-bit mode, a global switch nnxp never flips by itself; the example,
    as the user, switches it on here, before any array exists, and says so.
    """
    if float64 and args.backend == "jax":
        import jax

        if not jax.config.jax_enable_x64:
            jax.config.update("jax_enable_x64", True)
            print("jax: 64-bit mode switched on for this example (it computes in float64)")
    backend = nnxp.set_backend(args.backend)
    if backend.name == "torch" and str(backend.device) == "cpu":
        import torch

        torch.set_num_threads(1)
