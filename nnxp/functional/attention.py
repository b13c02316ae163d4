"""Attention kernels: multi-head scaled dot-product self-attention (PyTorch's
``nn.MultiheadAttention`` with ``batch_first=True``) and additive attention pooling.

Multi-head attention parameters follow PyTorch::

    in_proj_weight (3D, D)  rows: query, key, value projections
    in_proj_bias (3D,)      out_proj_weight (D, D)   out_proj_bias (D,)

Masks say what is *allowed* (True = attend), the opposite of PyTorch's ``key_padding_mask``.
A query whose every key is masked gets zero weights (PyTorch gives NaN there).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from array_api_compat import array_namespace, device

from .softmax import softmax_with_log

Array = Any


class AttentionCache(NamedTuple):
    X: Array
    Q: Array  # (N, H, T, d)
    K: Array
    V: Array
    P: Array  # (N, H, T, T) attention weights
    O: Array  # (N, T, D) the heads' outputs, merged
    W_in: Array
    W_out: Array
    scale: float


def _fold(A: Array, xp: Any) -> Array:
    return xp.reshape(A, (-1, A.shape[-1]))


def _split_heads(A: Array, H: int, xp: Any) -> Array:
    """``(N, T, D)`` -> ``(N, H, T, D/H)``."""
    N, T, D = A.shape
    return xp.permute_dims(xp.reshape(A, (N, T, H, D // H)), (0, 2, 1, 3))


def _merge_heads(A: Array, xp: Any) -> Array:
    """``(N, H, T, d)`` -> ``(N, T, H*d)``."""
    N, H, T, d = A.shape
    return xp.reshape(xp.permute_dims(A, (0, 2, 1, 3)), (N, T, H * d))


def attention_mask(
    key_mask: Array, causal: bool, T: int, *, device: Any = None, xp: Any
) -> Array | None:
    """The bool mask of allowed (query, key) pairs, broadcastable to ``(N, H, T, T)``.

    Parameters
    ----------
    key_mask : bool array of shape (N, T) or None
        True for real keys.
    causal : bool
        Query ``t`` may attend to keys ``<= t`` only.
    """
    allowed = None
    if causal:
        steps = xp.arange(T, device=device)
        allowed = steps[None, :] <= steps[:, None]  # (T, T): key <= query
    if key_mask is not None:
        keys = key_mask[:, None, None, :]  # (N, 1, 1, T)
        allowed = keys if allowed is None else xp.logical_and(keys, allowed)
    return allowed


def mha_forward(
    X: Array,
    in_proj_weight: Array,
    in_proj_bias: Array,
    out_proj_weight: Array,
    out_proj_bias: Array,
    num_heads: int,
    *,
    key_mask: Array = None,
    causal: bool = False,
    xp: Any = None,
) -> tuple[Array, AttentionCache]:
    """Multi-head self-attention ``softmax(Q K^T / sqrt(d)) V`` followed by the output projection.

    Parameters
    ----------
    X : array of shape (N, T, D)
    in_proj_weight : array of shape (3D, D)
    in_proj_bias : array of shape (3D,)
    out_proj_weight : array of shape (D, D)
    out_proj_bias : array of shape (D,)
    num_heads : int
        ``H``, dividing ``D``; each head has ``d = D / H`` features.
    key_mask : bool array of shape (N, T), optional
        True for real keys (padded keys get zero weight).
    causal : bool

    Returns
    -------
    Y : array of shape (N, T, D)
    cache : AttentionCache (``cache.P`` holds the weights, shape (N, H, T, T))
    """
    xp = xp or array_namespace(X)
    N, T, D = X.shape
    QKV = xp.matmul(X, xp.matrix_transpose(in_proj_weight)) + in_proj_bias
    Q = _split_heads(QKV[..., :D], num_heads, xp)
    K = _split_heads(QKV[..., D : 2 * D], num_heads, xp)
    V = _split_heads(QKV[..., 2 * D :], num_heads, xp)
    scale = 1.0 / (D // num_heads) ** 0.5
    S = xp.matmul(Q * scale, xp.matrix_transpose(K))
    P = softmax_with_log(S, attention_mask(key_mask, causal, T, device=device(X), xp=xp), xp=xp)[0]
    O = _merge_heads(xp.matmul(P, V), xp)
    Y = xp.matmul(O, xp.matrix_transpose(out_proj_weight)) + out_proj_bias
    return Y, AttentionCache(X, Q, K, V, P, O, in_proj_weight, out_proj_weight, scale)


def mha_backward(
    dY: Array, cache: AttentionCache, *, need_dX: bool = True, xp: Any = None
) -> tuple[Array, Array, Array, Array, Array]:
    """Gradients of :func:`mha_forward`.

    Returns
    -------
    dX : array of shape (N, T, D) or None
    d_in_proj_weight (3D, D), d_in_proj_bias (3D,), d_out_proj_weight (D, D), d_out_proj_bias (D,)
    """
    X, Q, K, V, P, O, W_in, W_out, scale = cache
    xp = xp or array_namespace(dY)
    H = Q.shape[1]
    dY_f = _fold(dY, xp)
    d_out_w = xp.matmul(xp.matrix_transpose(dY_f), _fold(O, xp))
    d_out_b = xp.sum(dY_f, axis=0)
    dO = _split_heads(xp.matmul(dY, W_out), H, xp)  # (N, H, T, d)
    dP = xp.matmul(dO, xp.matrix_transpose(V))
    dV = xp.matmul(xp.matrix_transpose(P), dO)
    dS = P * (dP - xp.sum(P * dP, axis=-1, keepdims=True)) * scale
    dQ = xp.matmul(dS, K)
    dK = xp.matmul(xp.matrix_transpose(dS), Q)  # Q here is unscaled: scale is in dS
    dQKV = xp.concat([_merge_heads(dQ, xp), _merge_heads(dK, xp), _merge_heads(dV, xp)], axis=-1)
    dQKV_f = _fold(dQKV, xp)
    d_in_w = xp.matmul(xp.matrix_transpose(dQKV_f), _fold(X, xp))
    d_in_b = xp.sum(dQKV_f, axis=0)
    dX = xp.matmul(dQKV, W_in) if need_dX else None
    return dX, d_in_w, d_in_b, d_out_w, d_out_b


# --------------------------------------------------------------------------- additive pooling


def additive_pooling_forward(
    X: Array, W: Array, b: Array, v: Array, *, mask: Array = None, xp: Any = None
) -> tuple[Array, tuple]:
    """Bahdanau-style attention pooling over time.

    ``s_t = v . tanh(W x_t + b)``, ``a = softmax_t(s)`` over the real steps, ``y = sum_t a_t x_t``.

    Parameters
    ----------
    X : array of shape (N, T, F)
    W : array of shape (U, F)
    b, v : arrays of shape (U,)
    mask : bool array of shape (N, T), optional
        True for real steps; padded steps get zero weight.

    Returns
    -------
    Y : array of shape (N, F)
    cache : tuple for :func:`additive_pooling_backward` (``cache[1]`` is ``a``, shape (N, T))
    """
    xp = xp or array_namespace(X)
    Hd = xp.tanh(xp.matmul(X, xp.matrix_transpose(W)) + b)  # (N, T, U)
    s = xp.sum(Hd * v, axis=-1)  # (N, T)
    a = softmax_with_log(s, mask, xp=xp)[0]
    Y = xp.sum(a[:, :, None] * X, axis=1)
    return Y, (X, a, Hd, W, v)


def additive_pooling_backward(
    dY: Array, cache: tuple, *, need_dX: bool = True, xp: Any = None
) -> tuple[Array, Array, Array, Array]:
    """Gradients of :func:`additive_pooling_forward`: ``dX`` (or None), ``dW``, ``db``, ``dv``."""
    X, a, Hd, W, v = cache
    xp = xp or array_namespace(dY)
    da = xp.sum(X * dY[:, None, :], axis=-1)  # (N, T)
    ds = a * (da - xp.sum(a * da, axis=-1, keepdims=True))
    dv = xp.sum(_fold(ds[:, :, None] * Hd, xp), axis=0)
    dZ = (ds[:, :, None] * v) * (1.0 - Hd * Hd)  # (N, T, U)
    dZ_f = _fold(dZ, xp)
    dW = xp.matmul(xp.matrix_transpose(dZ_f), _fold(X, xp))
    db = xp.sum(dZ_f, axis=0)
    dX = None
    if need_dX:
        dX = a[:, :, None] * dY[:, None, :] + xp.matmul(dZ, W)
    return dX, dW, db, dv
