"""Input checks at the network's entry points: data, masks, targets, settings.

Every check raises a ``ValueError``/``TypeError`` naming what was expected and what was
received, before any state changes. ``Sequential`` calls these once per public call; the
training step never does.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any

from array_api_compat import array_namespace, device, is_torch_array

from .layers import check_backend

Array = Any

#: Tolerance on the row sums of probability targets, by the precision they were made in.
ROW_SUM_TOLERANCE = {2: 1e-2, 4: 1e-4, 8: 1e-8}


def integer(name: str, value: Any, low: int = 0) -> int:
    """``value`` as a Python int (NumPy integers accepted) if it is an integer >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        kind = "positive" if low == 1 else "non-negative" if low == 0 else f">= {low}"
        raise ValueError(f"{name} must be a {kind} integer, got {value!r}")
    return operator.index(value)


def real(name: str, value: Any, low: float = -math.inf) -> float:
    """``value`` as a Python float (NumPy scalars accepted) if it is a real number >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    return float(value)


def detached(x: Array) -> Array:
    """A torch tensor that requires grad, detached (nnxp computes its own gradients: an
    autograd graph hanging off the data would keep every step's activations alive)."""
    if is_torch_array(x) and getattr(x, "requires_grad", False):
        return x.detach()
    return x


def check_inputs(net: Any, X: Array, *, allow_empty: bool = False) -> Array:
    """Check ``X`` belongs to ``net``'s backend and fits its first layer; cast it to the
    network dtype (unless the first layer takes integers: ``integer_input = True``).

    Raises
    ------
    TypeError
        An array of another backend or device, or a dtype that is not a real number.
    ValueError
        Wrong rank or feature count (named by the first layer), or an empty axis.
    """
    first = net.layers[0]
    check_backend(X, net.backend, f"{first.label} input X")
    X = detached(X)
    xp = net.xp
    if getattr(first, "integer_input", False):  # token ids: the first layer checks them
        pass
    elif X.dtype != net.dtype:
        if not xp.isdtype(X.dtype, ("real floating", "integral", "bool")):
            raise TypeError(f"{first.label} input X must hold real numbers, got dtype {X.dtype}")
        X = xp.astype(X, net.dtype)
    check = getattr(first, "check_input", None)
    if check is not None:
        check(X)
    elif X.ndim < 2:
        raise ValueError(
            f"{first.label} expects input of shape (n_samples, ...), got shape {tuple(X.shape)}"
        )
    if X.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{first.label} input X is empty (0 samples)")
    empty = [axis for axis, size in enumerate(X.shape) if size == 0 and axis > 0]
    if empty:
        raise ValueError(
            f"{first.label} input X has shape {tuple(X.shape)}: axis {empty[0]} is empty "
            f"(0 entries); every axis but the first (samples) needs at least one"
        )
    return X


def check_mask(net: Any, mask: Array, out_shape: tuple[int, ...]) -> Array:
    """Check a softmax mask (bool, or 0/1 numbers) of the output's shape; return it as bool."""
    if mask is None:
        return None
    xp = net.xp
    check_backend(mask, net.backend, "mask")
    mask = detached(mask)
    if tuple(mask.shape) != tuple(out_shape):
        raise ValueError(
            f"mask must have the shape of the network output {tuple(out_shape)}, got "
            f"{tuple(mask.shape)}"
        )
    if mask.dtype == xp.bool:
        return mask
    if not xp.isdtype(mask.dtype, ("real floating", "integral")):
        raise TypeError(f"mask must be boolean or 0/1 numbers, got dtype {mask.dtype}")
    if bool(xp.any((mask != 0) & (mask != 1))):
        raise ValueError("mask must hold only 0 and 1 (or be boolean)")
    return mask == 1


def check_sequence_mask(net: Any, sequence_mask: Array, X: Array) -> Array:
    """Check a timestep mask for input ``X`` (checked already): bool, or 0/1 numbers, of
    shape ``(n_samples, n_steps)`` = ``X.shape[:2]``, on the network's backend; return it
    as bool (True on real steps). Reads one flag back for a numeric mask."""
    if sequence_mask is None:
        return None
    xp = net.xp
    check_backend(sequence_mask, net.backend, "sequence_mask")
    sequence_mask = detached(sequence_mask)
    expected = tuple(X.shape[:2])
    if X.ndim < 2 or tuple(sequence_mask.shape) != expected:
        raise ValueError(
            f"sequence_mask must have shape (n_samples, n_steps) = {expected} (the first two "
            f"axes of X, shape {tuple(X.shape)}), got {tuple(sequence_mask.shape)}"
        )
    if sequence_mask.dtype == xp.bool:
        return sequence_mask
    if not xp.isdtype(sequence_mask.dtype, ("real floating", "integral")):
        raise TypeError(
            f"sequence_mask must be boolean (True on real steps) or 0/1 numbers, got dtype "
            f"{sequence_mask.dtype}"
        )
    if bool(xp.any((sequence_mask != 0) & (sequence_mask != 1))):
        raise ValueError("sequence_mask must hold only 0 and 1 (or be boolean)")
    return sequence_mask == 1


def sequence_rows(sequence_mask: Array, out_shape: tuple) -> Array:
    """The rows of an output of shape ``out_shape`` that a sequence mask ``(N, T)`` keeps:
    for an output with the time axis (``(N, T, ..., K)``) the mask broadcast to
    ``out_shape[:-1]``; None for an output without it (``(N, K)``: after an RNN without
    ``return_sequences``, or pooling), whose loss ignores the sequence mask."""
    if sequence_mask is None or len(out_shape) < 3:
        return None
    if tuple(out_shape[:2]) != tuple(sequence_mask.shape):
        return None
    if len(out_shape) == 3:
        return sequence_mask
    xp = array_namespace(sequence_mask)
    extra = (1,) * (len(out_shape) - 3)
    rows = xp.reshape(sequence_mask, (*sequence_mask.shape, *extra))
    return xp.broadcast_to(rows, tuple(out_shape[:-1]))


def check_targets(
    net: Any,
    T: Array,
    loss: Any,
    out_shape: tuple[int, ...],
    mask: Array = None,
    rows: Array = None,
) -> Array:
    """Check targets against the output shape and loss; make integer class labels one-hot.

    Class labels of any integer dtype (uint8 included) are compared as int64, so a label
    dtype narrower than the class count never wraps around. Under ``rows`` (bool, the
    output's shape without its last axis: False at padded timesteps) the targets of the
    rows left out are not checked (labels there may be anything, e.g. -1) and become 0.
    """
    xp = net.xp
    check_backend(T, net.backend, "targets T")
    T = detached(T)
    out_shape = tuple(out_shape)
    if tuple(T.shape[:1]) != out_shape[:1]:
        raise ValueError(f"X has {out_shape[0]} rows but T has {T.shape[0] if T.ndim else 0}")
    n_classes = out_shape[-1]
    from_labels = loss.name == "cross_entropy" and tuple(T.shape) == out_shape[:-1]
    precision = 0  # bytes of the targets' own float precision (0: exact)
    if from_labels:
        if not xp.isdtype(T.dtype, "integral"):
            raise TypeError(
                f"class labels of shape {tuple(T.shape)} must be integers, got {T.dtype}"
            )
        T = xp.astype(T, xp.int64)
        if rows is not None:
            T = xp.where(rows, T, 0)
        if bool(xp.any((T < 0) | (T >= n_classes))):
            raise ValueError(f"class labels must lie in [0, {n_classes}), the output width")
        classes = xp.arange(n_classes, dtype=xp.int64, device=net.backend.device)
        T = xp.astype(T[..., None] == classes, net.dtype)
    elif tuple(T.shape) != out_shape:
        raise ValueError(
            f"loss {loss.name!r}: targets T must have shape {out_shape} (the output of "
            f"{net.layers[-1].label})"
            + (
                f" or class labels of shape {out_shape[:-1]}"
                if loss.name == "cross_entropy"
                else ""
            )
            + f", got {tuple(T.shape)}"
        )
    if T.dtype != net.dtype:
        if not xp.isdtype(T.dtype, ("real floating", "integral", "bool")):
            raise TypeError(f"targets T must hold real numbers, got dtype {T.dtype}")
        if xp.isdtype(T.dtype, "real floating"):
            precision = xp.finfo(T.dtype).bits // 8
        T = xp.astype(T, net.dtype)
    if rows is not None:
        T = xp.where(rows[..., None], T, 0.0)
    if loss.name == "cross_entropy" and (mask is not None or not from_labels):
        # (one-hot rows made from labels sum to one: only a mask can make them wrong)
        precision = min(precision or 8, xp.finfo(net.dtype).bits // 8)
        check_probability_rows(xp, T, mask, ROW_SUM_TOLERANCE[precision], rows)
    return T


def check_probability_rows(
    xp: Any, T: Array, mask: Array, tolerance: float, rows: Array = None
) -> None:
    """Cross-entropy targets: non-negative rows summing to one (the fused delta ``Y - T``
    holds for those); with a mask, no mass on masked outputs and all-masked rows all zero.

    ``tolerance`` bounds ``|row sum - 1|``; it follows the precision the targets were made
    in (1e-4 for float32 targets even in a float64 network). Rows outside ``rows`` (padded
    timesteps, all zero by then) are not required to sum to one."""
    if mask is not None and bool(xp.any(xp.where(mask, 0.0, T) != 0)):
        rows = xp.any(xp.where(mask, 0.0, T) != 0, axis=-1)
        first = int(xp.argmax(xp.astype(xp.reshape(rows, (-1,)), xp.int8)))
        raise ValueError(
            "targets put probability on outputs the mask forbids (first at flattened row "
            f"{first}); class labels must name an allowed output"
        )
    if math.prod(T.shape) == 0:
        return
    # the row sums as a matrix-vector product: a reduction over a short last axis (the
    # classes) is several times slower, and this runs on the whole data set every fit
    sums = T @ xp.ones((T.shape[-1],), dtype=T.dtype, device=device(T))
    if mask is not None:
        sums = xp.where(xp.any(mask, axis=-1), sums, 1.0)
    if rows is not None:
        sums = xp.where(rows, sums, 1.0)
    smallest = float(xp.min(T))
    if smallest < 0:
        raise ValueError(
            "cross_entropy targets must be probability rows: non-negative, each summing to 1; "
            f"the smallest entry is {smallest!r}"
        )
    error = xp.abs(sums - 1.0)
    worst = float(xp.max(error))
    if worst > tolerance:
        raise ValueError(
            "cross_entropy targets must be probability rows: non-negative, each summing "
            f"to 1 (one-hot rows or integer class labels); row sums lie in "
            f"[{float(xp.min(sums))!r}, {float(xp.max(sums))!r}], off by up to {worst:.3g} "
            f"(tolerance {tolerance:g} for targets of this precision)"
        )


def all_finite(xp: Any, values: Array, block: int = 1 << 20) -> bool:
    """``all(isfinite(values))`` over blocks of rows (a bounded temporary, not a boolean
    copy of the whole data set), read back once."""
    n = values.shape[0]
    if n == 0:
        return True
    rows = max(1, block // max(1, math.prod(values.shape[1:])))
    blocks = (values[i : min(i + rows, n), ...] for i in range(0, n, rows))
    flags = [xp.all(xp.isfinite(part)) for part in blocks]
    return bool(xp.all(xp.stack(flags)))
