"""Checking and converting what a user hands to a network's entry points, once, before any
computation: ``(X, T, loss, mask, sequence_mask)`` for the losses, ``dE/dY`` or ``dE/dA``
for the backward passes. The element checks themselves live in :mod:`nnxp.checks`.
"""

from __future__ import annotations

from typing import Any

from . import checks, passes
from .layers import check_backend
from .losses import Loss, get_loss

Array = Any


def prepare_inputs(
    net: Any, X: Array, mask: Array, sequence_mask: Array, *, allow_empty: bool = False
) -> tuple[Array, Array, Array, tuple[int, ...]]:
    """``(X, mask, sequence_mask, output shape)`` checked against ``net`` and converted, for
    a forward pass; ``allow_empty`` accepts 0 rows (``predict``)."""
    X = checks.check_inputs(net, X, allow_empty=allow_empty)
    sequence_mask = checks.check_sequence_mask(net, sequence_mask, X)
    out_shape = net.output_shape(X)
    return X, net.check_mask(mask, out_shape), sequence_mask, out_shape


def prepare(
    net: Any,
    X: Array,
    T: Array,
    loss: str | Loss,
    mask: Array,
    sequence_mask: Array,
    check_finite: bool,
) -> tuple[Array, Array, Loss, Array, Array]:
    """``(X, T, loss, mask, sequence_mask)`` checked against ``net`` and converted; see
    ``Sequential.prepare_sequences``."""
    loss = get_loss(loss)
    out = net._output_layer()
    loss.check_activation(out.activation, out.label)
    X = net.check_inputs(X)
    sequence_mask = checks.check_sequence_mask(net, sequence_mask, X)
    out_shape = net.output_shape(X)
    mask = net.check_mask(mask, out_shape)
    rows = checks.sequence_rows(passes.timestep_mask(net.layers, X, sequence_mask), out_shape)
    T = checks.check_targets(net, T, loss, out_shape, mask, rows)
    if check_finite:
        for name, values in (("X", X), ("T", T)):
            if not checks.all_finite(net.xp, values):
                raise ValueError(
                    f"{name} holds NaN or inf values; clean the data, or pass "
                    f"check_finite=False to train on it anyway"
                )
    return X, T, loss, mask, sequence_mask


def check_output_gradient(net: Any, G: Array, name: str) -> Array:
    """``G`` (``dEdY`` or ``delta``) of exactly the last forward's output shape, on the
    network's backend, in its dtype."""
    check_backend(G, net.backend, name)
    G = checks.detached(G)
    if net._last_output_shape is None:
        raise RuntimeError(f"{name}: call forward(X) before back-propagating")
    if tuple(G.shape) != net._last_output_shape:
        raise ValueError(
            f"{name} must have exactly the shape of the last forward's output "
            f"{net._last_output_shape}, got {tuple(G.shape)} (no broadcasting)"
        )
    if G.dtype != net.dtype:
        if not net.xp.isdtype(G.dtype, "real floating"):
            raise TypeError(f"{name} must hold real floating numbers, got {G.dtype}")
        G = net.xp.astype(G, net.dtype)
    return G
