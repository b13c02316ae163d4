"""Central-difference gradient check, computed in float64."""

from __future__ import annotations

import itertools
import math
from typing import Any

from .losses import Loss

Array = Any

#: Gradients smaller than this are compared in absolute terms: central differences of a
#: float64 loss carry ~1e-10 of rounding noise.
SCALE_FLOOR = 1e-6


def gradcheck(
    net: Any, X: Array, T: Array, loss: str | Loss, *, mask: Array = None, eps: float = 1e-6
) -> float:
    """Compare ``net.loss_and_gradient`` with central differences of the loss.

    The check runs on a float64 copy of ``net`` (same backend and weights), in inference
    mode (no dropout). Every parameter entry ``p`` is perturbed: ``(E(p + eps) -
    E(p - eps)) / (2 eps)``.

    Parameters
    ----------
    net : Sequential
    X : array of shape (n_samples, ..., n_inputs)
    T : targets as for :meth:`Sequential.loss_and_gradient`
    loss : {"mse", "cross_entropy", "binary_cross_entropy"} or Loss
    mask : array of the output's shape, optional
    eps : float

    Returns
    -------
    float
        The relative error of the whole gradient in the max-norm:
        ``max |analytic - numeric| / max(max |analytic|, max |numeric|, 1e-6)``, the maxima
        taken over every entry of every parameter. Correct gradients give about 1e-8; a
        wrong one gives 1e-3 and more. (Per-entry ratios would measure rounding noise: an
        entry of 1e-9 has no correct digit in a central difference.)
    """
    net64 = net.clone(dtype="float64")
    xp = net64.xp
    X, T, loss_fn, mask = net64.prepare(X, T, loss, mask)
    net64._loss_and_delta(X, T, loss_fn, mask, training=False)
    analytic = [dict(layer.grads) for layer in net64.layers]
    out = net64._output_layer()
    n_samples = math.prod(X.shape[:-1])

    def value() -> float:
        net64._forward(X, False, mask)
        return float(loss_fn.total_and_delta(out.output(), T, xp, mask)[0]) / n_samples

    largest_error, scale = 0.0, SCALE_FLOOR
    for layer, grads in zip(net64.layers, analytic):
        for name, grad in grads.items():
            P = xp.asarray(layer.params[name], copy=True)
            layer.params[name] = P
            numeric = []
            for index in itertools.product(*(range(size) for size in P.shape)):
                original = float(P[index])
                P[index] = original + eps
                plus = value()
                P[index] = original - eps
                minus = value()
                P[index] = original
                numeric.append((plus - minus) / (2.0 * eps))
            N = xp.reshape(
                xp.asarray(numeric, dtype=xp.float64, device=net64.backend.device), P.shape
            )
            scale = max(scale, float(xp.max(xp.abs(grad))), float(xp.max(xp.abs(N))))
            largest_error = max(largest_error, float(xp.max(xp.abs(grad - N))))
    return largest_error / scale
