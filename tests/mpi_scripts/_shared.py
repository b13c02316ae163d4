"""What the MPI test scripts share: data, networks, uneven shards, the result file."""

from __future__ import annotations

import json
import sys

import numpy as np

import nnxp


def data(n: int = 203, features: int = 7, classes: int = 3, seed: int = 1):
    """Host float64 inputs and one-hot targets (the same on every rank)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, features))
    labels = (X[:, 0] + X[:, 1] ** 2 > 0.5).astype(int) + (X[:, 2] > 1.0).astype(int)
    return X, np.eye(classes)[labels]


def bounds(n: int, rank: int, size: int) -> tuple[int, int]:
    """Uneven contiguous shards: rank r holds a share proportional to r + 1."""
    weights = np.arange(1, size + 1)
    cuts = np.concatenate([[0], np.round(np.cumsum(weights) / weights.sum() * n)]).astype(int)
    return int(cuts[rank]), int(cuts[rank + 1])


def network(dropout: float = 0.0, seed: int = 0, features: int = 7, classes: int = 3):
    layers = [nnxp.Dense(features, 16, "tanh")]
    if dropout:
        layers.append(nnxp.Dropout(dropout))
    layers += [nnxp.Dense(16, 12, "relu"), nnxp.Dense(12, classes, "softmax")]
    return nnxp.Sequential(layers, seed=seed, dtype="float64")


def host_weights(net) -> list[np.ndarray]:
    return [nnxp.to_numpy(v) for p in net.parameters() for _, v in sorted(p.items())]


def max_relative(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.max(np.abs(x - y)) / max(np.max(np.abs(y)), 1e-300)) for x, y in zip(a, b))


def backend_from_argv() -> str:
    name = sys.argv[1] if len(sys.argv) > 1 else "numpy"
    nnxp.set_backend(name)
    if name == "torch":
        import torch

        torch.set_num_threads(1)
    return name


def report(path: str, result: dict) -> None:
    with open(path, "w") as f:
        json.dump(result, f)
