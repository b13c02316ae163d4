"""Gradient checks for single layers (the sequence layers' tests share them).

``check_layer_gradients`` takes the loss ``E = sum(Y * R)`` for a fixed random ``R`` and
compares the layer's ``grads`` and ``dE/dX`` with float64 central differences of ``E``,
perturbing one entry at a time through *rebuilt* arrays (``nnxp.asarray`` of a host copy;
nothing is written in place, so it runs on every backend).
"""

from __future__ import annotations

import numpy as np

import nnxp
from nnxp.layers.core import BuildContext
from nnxp.random import Generator

TOL = 1e-6


def build(layer, seed=0, dtype="float64"):
    """Build ``layer`` on the current backend with host seed ``seed``."""
    backend = nnxp.get_backend()
    ctx = BuildContext(
        backend=backend,
        dtype=backend.dtype(dtype),
        host_rng=np.random.default_rng(seed),
        rng=Generator(backend, seed),
    )
    layer.build(ctx)
    return layer


def host(x):
    return np.asarray(nnxp.to_numpy(x), dtype=np.float64)


def _call(layer, X, mask, training=False):
    if mask is None:
        return layer.forward(X, training=training)
    return layer.forward(X, training=training, sequence_mask=mask)


def _loss(layer, X, R, mask):
    return float(np.sum(host(_call(layer, X, mask)) * R))


def _entries(shape, rng, count):
    size = int(np.prod(shape))
    flat = rng.choice(size, size=min(count, size), replace=False)
    return [np.unravel_index(i, shape) for i in flat]


def numeric_vs_analytic(layer, X, mask=None, *, seed=0, count=12, eps=1e-6, check_input=True):
    """Max relative error (inf-norm of the difference over inf-norm of the numerical
    gradient) per parameter and for the input, on ``count`` random entries of each."""
    rng = np.random.default_rng(seed)
    Y = _call(layer, X, mask)
    R = rng.standard_normal(tuple(Y.shape))
    dX = layer.backward(nnxp.asarray(R, dtype=Y.dtype))
    analytic = {name: host(g) for name, g in layer.grads.items()}
    errors = {}
    for name in list(layer.params):
        original = layer.params[name]
        base = host(original)
        num, ana = [], []
        for idx in _entries(base.shape, rng, count):
            values = []
            for sign in (1.0, -1.0):
                bumped = base.copy()
                bumped[idx] += sign * eps
                layer.params[name] = nnxp.asarray(bumped, dtype=original.dtype)
                values.append(_loss(layer, X, R, mask))
            num.append((values[0] - values[1]) / (2 * eps))
            ana.append(analytic[name][idx])
        layer.params[name] = original
        errors[name] = _rel(np.array(ana), np.array(num))
    if check_input:
        base = host(X)
        num, ana = [], []
        dX = host(dX)
        for idx in _entries(base.shape, rng, count):
            values = []
            for sign in (1.0, -1.0):
                bumped = base.copy()
                bumped[idx] += sign * eps
                values.append(_loss(layer, nnxp.asarray(bumped, dtype=X.dtype), R, mask))
            num.append((values[0] - values[1]) / (2 * eps))
            ana.append(dX[idx])
        errors["X"] = _rel(np.array(ana), np.array(num))
    return errors


def _rel(analytic, numeric):
    scale = max(np.max(np.abs(numeric)), 1e-12)
    return float(np.max(np.abs(analytic - numeric)) / scale)


def assert_gradients(layer, X, mask=None, **kwargs):
    errors = numeric_vs_analytic(layer, X, mask, **kwargs)
    assert errors, "nothing was checked"
    worst = max(errors.values())
    assert worst <= TOL, f"{layer.describe()}: relative errors {errors}"
    return errors


def lengths_mask(lengths, T):
    """Bool (N, T) mask of right-padded sequences with the given lengths, on the backend."""
    return nnxp.asarray(np.arange(T)[None, :] < np.asarray(lengths)[:, None])
