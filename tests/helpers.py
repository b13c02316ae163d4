"""Small helpers shared by the tests."""

from __future__ import annotations

import numpy as np

import nnxp


def normal(rng, shape, dtype="float64", scale=1.0):
    """Standard normal host data, put on the current backend."""
    return nnxp.asarray(scale * rng.standard_normal(shape), dtype=dtype)


def host(x):
    """A float64 NumPy copy of a backend array."""
    return np.asarray(nnxp.to_numpy(x), dtype=np.float64)


def one_hot(rng, shape, n_classes, dtype="float64"):
    """Random one-hot rows of shape ``(*shape, n_classes)`` on the current backend."""
    labels = rng.integers(0, n_classes, size=shape)
    return nnxp.asarray((labels[..., None] == np.arange(n_classes)).astype(float), dtype=dtype)


def targets_for(loss, rng, out_shape, dtype="float64"):
    """Valid targets of ``out_shape`` for ``loss``."""
    if loss == "cross_entropy":
        return one_hot(rng, out_shape[:-1], out_shape[-1], dtype)
    if loss == "binary_cross_entropy":
        return nnxp.asarray(rng.integers(0, 2, size=out_shape).astype(float), dtype=dtype)
    return normal(rng, out_shape, dtype)
