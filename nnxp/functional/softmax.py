"""Softmax and log-softmax over an axis (the last by default), masked or not, and softplus."""

from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace

Array = Any


# --------------------------------------------------------------------------- softmax


def softmax(A: Array, axis: int = -1, *, xp: Any = None) -> Array:
    """Softmax of ``A`` along ``axis`` (the last by default), max-subtracted so it never
    overflows; every slice along ``axis`` sums to one."""
    xp = xp or array_namespace(A)
    E = xp.exp(A - xp.max(A, axis=axis, keepdims=True))
    return E / xp.sum(E, axis=axis, keepdims=True)


def softmax_with_log(
    A: Array, mask: Array = None, axis: int = -1, *, xp: Any = None
) -> tuple[Array, Array]:
    """``(softmax(A), log_softmax(A))`` sharing one max-subtraction and one sum; with
    ``mask``, the masked softmax and its log (``-inf`` on masked entries)."""
    xp = xp or array_namespace(A)
    if mask is None:
        Z = A - xp.max(A, axis=axis, keepdims=True)
    else:
        Z = _masked_logits(A, as_bool_mask(mask, A, xp), axis, xp)
    E = xp.exp(Z)
    s = xp.sum(E, axis=axis, keepdims=True)
    if mask is not None:
        s = xp.where(s == 0, 1.0, s)  # all-masked slices: zeros, not 0/0
    return E / s, Z - xp.log(s)


def log_softmax(A: Array, axis: int = -1, *, xp: Any = None) -> Array:
    """``log(softmax(A))`` computed without forming the softmax: finite for any finite ``A``."""
    xp = xp or array_namespace(A)
    Z = A - xp.max(A, axis=axis, keepdims=True)
    return Z - xp.log(xp.sum(xp.exp(Z), axis=axis, keepdims=True))


def softplus(A: Array, *, xp: Any = None) -> Array:
    """``log(1 + exp(A))`` without overflow: ``max(A, 0) + log1p(exp(-|A|))``."""
    xp = xp or array_namespace(A)
    return xp.maximum(A, 0.0) + xp.log1p(xp.exp(-xp.abs(A)))


# --------------------------------------------------------------------------- masked softmax


def as_bool_mask(mask: Array, A: Array, xp: Any) -> Array:
    """``mask`` as a bool array: bool as is, numbers ``!= 0`` (0/1 masks).

    Raises
    ------
    ValueError
        A mask with more dimensions than ``A``, or one that does not broadcast to ``A``.
    TypeError
        A mask that is not an array of ``A``'s library, or not bool or real numbers.
    """
    shape = getattr(mask, "shape", None)
    if shape is None or not hasattr(mask, "dtype"):
        raise TypeError(f"mask must be an array (bool or 0/1 numbers), got {type(mask).__name__}")
    shape, target = tuple(shape), tuple(A.shape)
    if len(shape) > len(target):
        raise ValueError(
            f"mask of shape {shape} has more dimensions than the logits of shape {target}"
        )
    for m, a in zip(reversed(shape), reversed(target)):
        if m not in (1, a):
            raise ValueError(
                f"mask of shape {shape} does not broadcast to the logits' shape {target}"
            )
    if mask.dtype == xp.bool:
        return mask
    if not xp.isdtype(mask.dtype, ("real floating", "integral")):
        raise TypeError(f"mask must be bool or 0/1 numbers, got dtype {mask.dtype}")
    return mask != 0


def _masked_logits(A: Array, mask: Array, axis: int, xp: Any) -> Array:
    """``A - max(allowed A)`` on allowed entries, ``-inf`` on masked ones; an all-masked
    slice shifts by 0 so nothing becomes ``-inf - -inf``."""
    Am = xp.where(mask, A, -xp.inf)
    m = xp.max(Am, axis=axis, keepdims=True)
    return Am - xp.where(m == -xp.inf, 0.0, m)


def masked_softmax(A: Array, mask: Array, axis: int = -1, *, xp: Any = None) -> Array:
    """Softmax over ``axis`` of the entries that ``mask`` allows; exactly 0 elsewhere.

    Computed in logit space: masked logits are removed before the max-subtraction, so the
    allowed entries are renormalised to sum to one whatever the masked logits hold. A slice
    with every entry masked gives all zeros, never NaN.

    Parameters
    ----------
    A : array of shape ``(..., K)``
    mask : bool or 0/1 numeric array broadcastable to ``A`` (no more dimensions than ``A``)
        True (or 1) where the output is allowed.
    axis : int

    Returns
    -------
    array of shape ``A.shape``
    """
    return softmax_with_log(A, mask, axis, xp=xp)[0]


def masked_log_softmax(A: Array, mask: Array, axis: int = -1, *, xp: Any = None) -> Array:
    """``log(masked_softmax(A, mask))``: finite on allowed entries, ``-inf`` on masked ones."""
    return softmax_with_log(A, mask, axis, xp=xp)[1]
