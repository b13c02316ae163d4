"""Central-difference gradient check, computed in float64."""

from __future__ import annotations

import math
from typing import Any

from .losses import Loss

Array = Any

#: Gradients smaller than this are compared in absolute terms: central differences of a
#: float64 loss carry ~1e-10 of rounding noise.
SCALE_FLOOR = 1e-6


def gradcheck(
    net: Any,
    X: Array,
    T: Array,
    loss: str | Loss,
    *,
    mask: Array = None,
    sequence_mask: Array = None,
    eps: float = 1e-6,
) -> float:
    """Compare ``net.loss_and_gradient`` with central differences of the loss.

    The check runs on a float64 twin of ``net`` (same backend, same layer objects' code,
    the weights converted; no config round trip, so unregistered custom layers work), in
    inference mode (no dropout). ``net`` itself is left as it was. Every parameter entry
    ``p`` is perturbed by rebuilding the parameter (no in-place writes, so immutable arrays
    such as JAX's work): ``(E(p + eps) - E(p - eps)) / (2 eps)``, regularization included.

    Parameters
    ----------
    net : Sequential
    X : array of shape (n_samples, ..., n_inputs)
    T : targets as for :meth:`Sequential.loss_and_gradient`
    loss : {"mse", "cross_entropy", "binary_cross_entropy"} or Loss
    mask : array of the output's shape, optional
    sequence_mask : array of shape (n_samples, n_steps), optional
        True on real timesteps, as for :meth:`Sequential.loss_and_gradient` (default: the
        first layer's ``compute_mask``, e.g. ``Embedding(mask_zero=True)``).
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
    net64 = net._float64_twin()
    xp = net64.xp
    device = net64.backend.device
    X, T, loss_fn, mask, S = net64.prepare_sequences(X, T, loss, mask, sequence_mask)
    net64._loss_and_delta(X, T, loss_fn, mask, training=False, sequence_mask=S)
    analytic = [dict(layer.grads) for layer in net64.layers]

    def value() -> float:
        _, total, count = net64._inference_loss(X, T, loss_fn, mask, S)
        return float(total) / max(float(count), 1.0)

    largest_error, scale = 0.0, SCALE_FLOOR
    for layer, grads in zip(net64.layers, analytic):
        for name, grad in grads.items():
            P = layer.params[name]
            shape, size = tuple(P.shape), math.prod(P.shape)
            positions = xp.reshape(xp.arange(size, device=device), shape)
            numeric = []
            for flat in range(size):
                at = positions == flat
                layer.params[name] = xp.where(at, P + eps, P)
                plus = value()
                layer.params[name] = xp.where(at, P - eps, P)
                minus = value()
                numeric.append((plus - minus) / (2.0 * eps))
            layer.params[name] = P
            N = xp.reshape(xp.asarray(numeric, dtype=xp.float64, device=device), shape)
            scale = max(scale, float(xp.max(xp.abs(grad))), float(xp.max(xp.abs(N))))
            largest_error = max(largest_error, float(xp.max(xp.abs(grad - N))))
    return largest_error / scale
