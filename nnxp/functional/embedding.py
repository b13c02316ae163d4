"""Embedding lookup and its weight gradient, a scatter-add written in the standard Array API.

The Array API has no scatter-add (``numpy.add.at``, ``torch.index_add_``). The gradient of
``Y = W[ids]`` is ``dW[v] = sum of dY rows whose id is v``; two standard formulations:

``"sorted"`` (the default)
    Sort the ids (stable argsort), gather the ``dY`` rows in that order, and sum each run of
    equal ids with a segmented inclusive scan (Hillis-Steele: ``log2(n)`` shifted adds, an
    add only where the shifted row has the same id). The last row of each run holds the run's
    sum; ``searchsorted`` finds it for every vocabulary entry (zero for absent ids). Work is
    ``O(n D log n + V D)``; every sum adds only rows of the same id (no prefix-sum
    differences, so no cancellation): exact up to the rounding of those adds.
``"onehot"``
    ``dW = onehot(ids).T @ dY`` in blocks of rows, ``O(n V D)`` flops on the matrix unit:
    exact (products with 0 and 1), simple, and fast on GPUs for small vocabularies.
"""

from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace, device

Array = Any

METHODS = ("sorted", "onehot")


def embedding_forward(ids: Array, W: Array, *, xp: Any = None) -> Array:
    """``W[ids]``: rows of ``W`` for integer ``ids`` of any shape.

    Parameters
    ----------
    ids : integer array of shape (...)
    W : array of shape (V, D)

    Returns
    -------
    array of shape (..., D)
    """
    xp = xp or array_namespace(W)
    flat = xp.reshape(ids, (-1,))
    return xp.reshape(xp.take(W, flat, axis=0), (*ids.shape, W.shape[1]))


def embedding_backward(
    ids: Array,
    dY: Array,
    n_tokens: int,
    *,
    method: str = "sorted",
    block: int = 4096,
    xp: Any = None,
) -> Array:
    """``dE/dW`` for ``Y = W[ids]``: the rows of ``dY`` summed per id.

    Parameters
    ----------
    ids : integer array of shape (...)
    dY : array of shape (..., D)
    n_tokens : int
        ``V``, the number of rows of ``W``.
    method : {"sorted", "onehot"}
    block : int
        Rows per one-hot block (``"onehot"``).

    Returns
    -------
    dW : array of shape (V, D)
    """
    xp = xp or array_namespace(dY)
    D = dY.shape[-1]
    flat = xp.reshape(ids, (-1,))
    rows = xp.reshape(dY, (flat.shape[0], D))
    if method == "onehot":
        return _onehot_grad(flat, rows, n_tokens, block, xp)
    if method == "sorted":
        return _sorted_grad(flat, rows, n_tokens, xp)
    raise ValueError(f"embedding gradient method must be one of {METHODS}, got {method!r}")


def _onehot_grad(flat: Array, rows: Array, V: int, block: int, xp: Any) -> Array:
    vocab = xp.arange(V, dtype=flat.dtype, device=device(flat))
    dW = xp.zeros((V, rows.shape[1]), dtype=rows.dtype, device=device(rows))
    n = flat.shape[0]
    for start in range(0, n, block):
        stop = min(start + block, n)
        onehot = xp.astype(flat[start:stop, None] == vocab, rows.dtype)  # (B, V)
        dW = dW + xp.matmul(xp.matrix_transpose(onehot), rows[start:stop, ...])
    return dW


def _sorted_grad(flat: Array, rows: Array, V: int, xp: Any) -> Array:
    n, D = rows.shape[0], rows.shape[1]
    if n == 0:
        return xp.zeros((V, D), dtype=rows.dtype, device=device(rows))
    order = xp.argsort(flat, stable=True)
    keys = xp.take(flat, order)
    S = xp.take(rows, order, axis=0)
    shift = 1
    while shift < n:  # segmented inclusive scan: S[i] = sum of its run up to i
        same = keys[shift:] == keys[:-shift]  # (n - shift,)
        added = xp.where(same[:, None], S[:-shift, ...], 0.0)
        S = xp.concat([S[:shift, ...], S[shift:, ...] + added], axis=0)
        shift *= 2
    vocab = xp.arange(V, dtype=keys.dtype, device=device(keys))
    end = xp.searchsorted(keys, vocab, side="right")  # one past each id's run
    start = xp.searchsorted(keys, vocab, side="left")
    last = xp.clip(end - 1, 0, n - 1)
    present = end > start
    return xp.where(present[:, None], xp.take(S, last, axis=0), 0.0)
