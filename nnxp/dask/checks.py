"""Checks of the dask inputs, before any task runs: a network, dask arrays (or NumPy ones
for targets and masks) chunked along the rows only, row counts that agree, and the rows of
``T`` and the masks put into X's row chunks."""

from __future__ import annotations

import math
from typing import Any

import dask.array as da
import numpy as np

from ..losses import Loss, get_loss
from ..network import Sequential


def _check_network(net: Any, caller: str) -> None:
    if not isinstance(net, Sequential):
        raise TypeError(f"nnxp.dask.{caller} needs an nnxp.Sequential, got {type(net).__name__}")


def _check_dask(name: str, a: Any, caller: str, in_memory: str) -> None:
    if not isinstance(a, da.Array):
        raise TypeError(
            f"nnxp.dask.{caller} takes dask arrays, but {name} is {type(a).__module__}."
            f"{type(a).__name__}; for arrays in memory use {in_memory}, or wrap the data with "
            f"dask.array.from_array({name}, chunks=(rows, -1))"
        )


def _check_row_chunks(name: str, a: da.Array) -> None:
    """Whole rows in every chunk: one chunk on each axis but the first."""
    if a.ndim == 0:
        raise ValueError(f"{name} must have a row axis, got a 0-d dask array")
    for axis in range(1, a.ndim):
        if len(a.chunks[axis]) > 1:
            whole = ", ".join(f"{i}: -1" for i in range(1, a.ndim))
            raise ValueError(
                f"{name} is chunked along axis {axis} (chunks {a.chunks[axis]}); nnxp.dask needs "
                f"row chunks that hold whole samples: chunk along the first axis only, e.g. "
                f"{name}.rechunk({{{whole}}})"
            )


def _check_inputs(net: Sequential, X: da.Array) -> None:
    _check_row_chunks("X", X)
    if X.ndim < 2:
        raise ValueError(f"X must have shape (n_samples, ..., n_inputs), got shape {X.shape}")
    if net.n_inputs is not None and X.shape[-1] != net.n_inputs:
        raise ValueError(
            f"X has {X.shape[-1]} features, the network's first layer expects {net.n_inputs}"
        )
    if X.shape[0] == 0:
        raise ValueError("X is empty (0 samples)")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_) or np.issubdtype(
        X.dtype, np.complexfloating
    ):
        raise TypeError(f"X must hold real numbers, got dtype {X.dtype}")


def _aligned(name: str, a: Any, X: da.Array, caller: str) -> da.Array | None:
    """``a`` (targets or mask: dask, or a NumPy array) with X's row chunks.

    Row chunks that differ from X's are rechunked to X's (exact, costs a shuffle of ``a``);
    chunks of unknown size (after filtering rows) pair up block by block.
    """
    if a is None:
        return None
    if isinstance(a, np.ndarray):
        if a.ndim == 0 or (not math.isnan(X.shape[0]) and a.shape[0] != X.shape[0]):
            raise ValueError(f"X has {X.shape[0]} rows but {name} has shape {a.shape}")
        a = da.from_array(a, chunks=(X.chunks[0], *a.shape[1:]))
    _check_dask(name, a, caller, f"net.{caller}")
    _check_row_chunks(name, a)
    if not math.isnan(X.shape[0]) and not math.isnan(a.shape[0]) and a.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but {name} has {a.shape[0]}")
    if a.chunks[0] != X.chunks[0]:
        unknown = any(math.isnan(c) for c in (*X.chunks[0], *a.chunks[0]))
        if not unknown:
            a = a.rechunk({0: X.chunks[0]})
        elif len(a.chunks[0]) != len(X.chunks[0]):
            raise ValueError(
                f"X has {len(X.chunks[0])} row chunks and {name} {len(a.chunks[0])}, of unknown "
                f"sizes; call X.compute_chunk_sizes() and {name}.compute_chunk_sizes() first"
            )
        # else: as many chunks of unknown size (rows filtered alike); each task checks its pair
    return a


def _sequence_mask(S: Any, X: da.Array, caller: str) -> da.Array | None:
    """A timestep mask (bool or 0/1) of shape ``X.shape[:2]``, in X's row chunks; its
    values are checked by each chunk's task."""
    S = _aligned("sequence_mask", S, X, caller)
    if S is not None and (S.ndim != 2 or S.shape[1] != X.shape[1]):
        raise ValueError(
            f"sequence_mask must have shape (n_samples, n_steps) = {tuple(X.shape[:2])} (the "
            f"first two axes of X, shape {tuple(X.shape)}), got {tuple(S.shape)}"
        )
    if S is not None and not (np.issubdtype(S.dtype, np.number) or S.dtype == np.bool_):
        raise TypeError(
            f"sequence_mask must be boolean (True on real steps) or 0/1 numbers, got dtype "
            f"{S.dtype}"
        )
    return S


def _prepare(
    net: Any, X: Any, T: Any, mask: Any, sequence_mask: Any, loss: Any, caller: str
) -> tuple[da.Array, da.Array, da.Array | None, da.Array | None, str | Loss]:
    """``(X, T, mask, sequence_mask, loss)`` checked, the arrays in X's row chunks."""
    _check_network(net, caller)
    _check_dask("X", X, caller, f"net.{caller}(X, T, loss)")
    _check_inputs(net, X)
    T = _aligned("T", T, X, caller)
    mask = _aligned("mask", mask, X, caller)
    sequence_mask = _sequence_mask(sequence_mask, X, caller)
    resolved = get_loss(loss)  # unknown names fail here, before any task runs
    out = net.layers[-1]
    if hasattr(out, "activation"):
        resolved.check_activation(out.activation, out.label)
    return X, T, mask, sequence_mask, loss if isinstance(loss, str) else resolved
