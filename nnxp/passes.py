"""The forward and backward passes over a list of layers.

A network's own layers or twins of them (:func:`nnxp.ownership.shadow`): the same functions
serve training (the layers' caches), ``loss_and_gradient``, ``predict`` and ``evaluate``
(twins). Nothing here reads a value back to the host.
"""

from __future__ import annotations

from typing import Any

from . import checks
from .layers import ActivatedLayer, Layer
from .losses import Loss

Array = Any


def timestep_mask(layers: list, X: Array, sequence_mask: Array) -> Array:
    """The timestep mask: ``sequence_mask`` when given, else the first layer's
    ``compute_mask(X)`` (``Embedding(mask_zero=True)``: ``X != 0``, on the device), else
    None."""
    if sequence_mask is not None:
        return sequence_mask
    compute = getattr(layers[0], "compute_mask", None)
    return None if compute is None else compute(X)


def output_layer(layers: list) -> ActivatedLayer:
    """The last layer, which a loss or a mask needs to be a Dense or an Activation."""
    out = layers[-1]
    if not isinstance(out, ActivatedLayer):
        raise ValueError(
            f"a loss or a mask needs a Dense or Activation output layer, not {out.label}"
        )
    return out


def output_shape(layers: list, X: Any) -> tuple[int, ...]:
    """The output shape of ``layers`` for input ``X`` (an array or a shape), from the layers'
    own ``output_shape`` (else ``output_width`` of the last axis)."""
    shape = tuple(X) if isinstance(X, (tuple, list)) else tuple(X.shape)
    for layer in layers:
        if hasattr(layer, "output_shape"):
            shape = tuple(layer.output_shape(shape))
        else:
            shape = (*shape[:-1], layer.output_width(shape[-1]))
    return shape


def call_forward(layer: Layer, X: Array, training: bool, sequence_mask: Array) -> Array:
    if sequence_mask is not None and getattr(layer, "takes_sequence_mask", False):
        return layer.forward(X, training=training, sequence_mask=sequence_mask)  # type: ignore[call-arg]
    return layer.forward(X, training=training)


def run_forward(
    layers: list,
    X: Array,
    training: bool,
    mask: Array = None,
    sequence_mask: Array = None,
    check: bool = False,
) -> Array:
    """Each layer's forward in turn (``mask``: the output softmax's; ``sequence_mask``: the
    timestep mask, given to layers with ``takes_sequence_mask``). With ``check``, each
    layer's output must have the shape its ``output_shape`` declares."""
    if mask is None and sequence_mask is None and not check:  # a training step's usual call
        for layer in layers:
            X = layer.forward(X, training=training)
        return X
    last = len(layers) - 1
    for i, layer in enumerate(layers):
        shape = tuple(X.shape)
        if i < last or mask is None:
            X = call_forward(layer, X, training, sequence_mask)
        elif not isinstance(layer, ActivatedLayer):
            raise ValueError(f"a mask needs a Dense or Activation output layer, not {layer.label}")
        else:
            X = layer.forward(X, training=training, mask=mask)
        if check and hasattr(layer, "output_shape"):
            declared = tuple(layer.output_shape(shape))
            got = tuple(X.shape)
            if len(declared) != len(got) or any(
                d is not None and d != g for d, g in zip(declared, got)
            ):
                raise ValueError(
                    f"{layer.label} declares output shape {declared} for input {shape} but "
                    f"its forward returned {got}: fix the layer's output_shape or forward"
                )
    return X


def run_forward_in_chunks(
    layers: list,
    X: Array,
    batch_size: int | None,
    mask: Array,
    sequence_mask: Array,
    xp: Any,
) -> Array:
    """The inference forward of ``layers`` (checked shapes), ``batch_size`` rows at a time
    when given, the parts concatenated along the rows."""
    n = X.shape[0]
    if batch_size is None or batch_size >= n:
        S = timestep_mask(layers, X, sequence_mask)
        return run_forward(layers, X, False, mask, S, check=True)
    parts = []
    for start in range(0, n, batch_size):
        rows = slice(start, min(start + batch_size, n))
        Xb = X[rows, ...]
        S = None if sequence_mask is None else sequence_mask[rows, ...]
        parts.append(
            run_forward(
                layers,
                Xb,
                False,
                None if mask is None else mask[rows, ...],
                timestep_mask(layers, Xb, S),
                check=True,
            )
        )
    return xp.concat(parts, axis=0)


def backward(layers: list, dEdY: Array) -> Array:
    """``dE/dY`` of the last of ``layers`` back through each (its ``grads`` filled);
    returns ``dE/dX`` of the first."""
    for layer in reversed(layers):
        dEdY = layer.backward(dEdY)
    return dEdY


def backprop_delta(layers: list, delta: Array, stop: int) -> None:
    """``dE/dA`` of the output layer down to layer ``stop`` (whose ``dE/dX`` is not needed)."""
    last = len(layers) - 1
    delta = layers[-1].backward_from_delta(delta, need_dX=last > stop)
    for i in range(last - 1, stop - 1, -1):
        delta = layers[i].backward(delta, need_dX=i > stop)


def loss_terms(
    loss: Loss, out: Any, T: Array, xp: Any, mask: Array, sequence_mask: Array
) -> tuple[Array, Array, Any]:
    """``(total, delta, count)`` of ``loss`` on the output ``out``; under a sequence mask
    an output with the time axis counts its real timesteps only."""
    rows = None
    if sequence_mask is not None:
        rows = checks.sequence_rows(sequence_mask, tuple(out.A.shape))
    if rows is None:  # custom losses need not know rows
        count = loss.count(out.A, xp, mask)
        total, delta = loss.total_and_delta(out, T, xp, mask, count=count)
    else:
        count = loss.count(out.A, xp, mask, rows=rows)
        total, delta = loss.total_and_delta(out, T, xp, mask, count=count, rows=rows)
    return total, delta, count


def loss_and_delta(
    layers: list,
    X: Array,
    T: Array,
    loss: Loss,
    mask: Array,
    training: bool,
    xp: Any,
    stop: int,
    check: bool = False,
    sequence_mask: Array = None,
) -> tuple[Array, Any]:
    """Forward, the loss and the backward pass (down to layer ``stop``) of the mean loss;
    fills the layers' ``grads``. Returns ``(total, count)``, the regularization penalty
    included ``count`` times in ``total``; nothing is read back."""
    if sequence_mask is None:
        sequence_mask = timestep_mask(layers, X, None)
    run_forward(layers, X, training, mask, sequence_mask, check)
    out = output_layer(layers).output()
    total, delta, count = loss_terms(loss, out, T, xp, mask, sequence_mask)
    backprop_delta(layers, delta, stop)
    penalty = add_regularization(layers)
    if penalty is not None:
        total = total + penalty * count
    return total, count


def inference_loss(
    layers: list, X: Array, T: Array, loss: Loss, mask: Array, sequence_mask: Array, xp: Any
) -> tuple:
    """``(Y, total, count)`` in inference mode on ``layers`` (twins: no backward pass);
    ``total`` includes ``count`` times the regularization penalty."""
    sequence_mask = timestep_mask(layers, X, sequence_mask)
    Y = run_forward(layers, X, False, mask, sequence_mask, check=True)
    out = output_layer(layers).output()
    total, _, count = loss_terms(loss, out, T, xp, mask, sequence_mask)
    value = penalty(layers)
    if value is not None:
        total = total + value * count
    return Y, total, count


def add_regularization(layers: list) -> Array:
    """Add every layer's regularization gradient to its ``grads``; the summed penalty (a 0-d
    array) or None when no layer has one."""
    total = None
    for layer in layers:
        regularization = getattr(layer, "regularization", None)
        if regularization is None:
            continue
        value, grads = regularization()
        if value is not None:
            total = value if total is None else total + value
        if grads:
            for name, g in grads.items():
                add_grad(layer, name, g)
    return total


def add_grad(layer: Layer, name: str, g: Array) -> None:
    """``layer.grads[name] += g`` without writing into the arrays; a wrapper whose ``grads``
    is a view over its parts (``"part.name"``) gets it in that part."""
    merged = dict(layer.grads)
    merged[name] = merged[name] + g if name in merged else g
    try:
        layer.grads = merged
        return
    except (TypeError, AttributeError):
        pass
    prefix, _, rest = name.partition(".")
    parts = getattr(layer, "_parts", None)
    if not rest or not isinstance(parts, dict) or prefix not in parts:
        raise TypeError(f"{layer.label}: cannot add the regularization gradient of {name!r}")
    add_grad(parts[prefix], rest, g)


def penalty(layers: list) -> Array:
    """The summed regularization penalty of ``layers`` (None when none has one)."""
    total = None
    for layer in layers:
        regularization = getattr(layer, "regularization", None)
        value = None if regularization is None else regularization()[0]
        if value is not None:
            total = value if total is None else total + value
    return total
