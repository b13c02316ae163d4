"""A standalone central-difference check of one layer (no network needed)."""

from __future__ import annotations

import numpy as np
from helpers import host

import nnxp


def layer_gradcheck(layer, X, *, eps=1e-6, seed=0, **forward_options):
    """Max relative error (max-norm, as ``nnxp.gradcheck``) of ``backward`` against central
    differences of ``E = sum(forward(X) * R)``, over ``dE/dX`` and every parameter.

    ``X`` is a float64 array of the current backend; the layer builds on it if unbuilt.
    """
    Y = layer.forward(X, **forward_options)
    R = nnxp.asarray(np.random.default_rng(seed).standard_normal(tuple(Y.shape)))
    r = host(R)
    layer.forward(X, **forward_options)
    dX = layer.backward(R)
    analytic = {"X": host(dX)} | {k: host(v) for k, v in layer.grads.items()}
    assert set(layer.grads) == set(layer.params), "grads and params must have the same keys"

    def energy():
        return float(np.sum(host(layer.forward(Xc[0], **forward_options)) * r))

    Xc = [X]
    errors, scale = 0.0, 1e-6
    targets = {"X": host(X)} | {k: host(v) for k, v in layer.params.items()}
    for name, value in targets.items():
        numeric = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            for sign in (1, -1):
                moved = value.copy()
                moved[index] += sign * eps
                if name == "X":
                    Xc[0] = nnxp.asarray(moved)
                else:
                    layer.params[name] = nnxp.asarray(moved)
                numeric[index] += sign * energy() / (2 * eps)
        if name == "X":
            Xc[0] = X
        else:
            layer.params[name] = nnxp.asarray(value)
        scale = max(scale, np.max(np.abs(numeric)), np.max(np.abs(analytic[name])))
        errors = max(errors, np.max(np.abs(numeric - analytic[name])))
    return errors / scale
