"""The public calls over row-chunked dask arrays: :func:`loss_and_gradient`,
:func:`evaluate` and :func:`predict`."""

from __future__ import annotations

from typing import Any

import dask
import dask.array as da
import numpy as np

from ..backend import asarray
from ..losses import Loss
from ..network import Sequential
from .checks import _aligned, _check_dask, _check_inputs, _check_network, _prepare, _sequence_mask
from .chunks import NetworkSpec, _chunk_evaluate, _chunk_predict, _output_shape
from .reduce import _add_metrics, _blocks, _host_loss_and_gradient, _per_chunk, _run, _shared, _tree

Array = Any


def loss_and_gradient(
    net: Sequential,
    X: da.Array,
    T: da.Array,
    loss: str | Loss,
    *,
    mask: da.Array | None = None,
    sequence_mask: da.Array | None = None,
    check_finite: bool = True,
    client: Any = None,
    scheduler: Any = None,
    timeout: float | None = None,
) -> tuple[float, list[dict[str, Array]]]:
    """The mean loss over a row-chunked dask dataset and its gradient: exactly
    ``net.loss_and_gradient(X, T, loss)`` of the whole data, computed chunk by chunk.

    Parameters
    ----------
    net : Sequential
    X : dask array of shape (n_samples, ..., n_inputs)
        Chunked along the first axis only (whole samples in each chunk).
    T : dask array (or NumPy array) of the output's shape, or class labels (n_samples, ...)
        Row chunks that differ from X's are rechunked to X's.
    loss : {"mse", "cross_entropy", "binary_cross_entropy"} or Loss
    mask : dask array (or NumPy array) of the output's shape, optional
        Allowed outputs of a softmax output layer; rows with none allowed do not count.
    sequence_mask : dask array (or NumPy array) of shape (n_samples, n_steps), optional
        Bool or 0/1, True on real timesteps (default: the first layer's ``compute_mask``,
        as ``Embedding(mask_zero=True)``, per chunk). For an output with the time axis
        ``(N, T, K)`` the mean runs over the real timesteps of the whole data.
    check_finite : bool
        Refuse NaN/inf in each chunk of ``X`` and ``T`` (``ValueError``).
    client : distributed.Client, optional
        Scatter the weights to every worker (broadcast) and compute there.
    scheduler : optional
        Without a client: passed to ``dask.compute`` ("synchronous", "threads",
        "processes", or None for dask's current default, a default distributed client too).
    timeout : float, optional
        Seconds to wait for the result when ``client`` is given.

    Returns
    -------
    loss : float
    grads : list of dict
        ``grads[i] == {"W": dE/dW, "b": dE/db}`` for a Dense layer, ``{}`` otherwise,
        on the network's backend and dtype.

    Raises
    ------
    TypeError
        ``X`` (or ``T``, ``mask``, ``sequence_mask``) that is not a dask array: use
        ``net.loss_and_gradient``.
    ValueError
        Data chunked along features, a row count that differs between ``X`` and ``T``,
        a sequence mask not of shape ``X.shape[:2]``, a loss the output layer cannot take,
        or every row masked.
    """
    X, T, mask, sequence_mask, loss = _prepare(
        net, X, T, mask, sequence_mask, loss, "loss_and_gradient"
    )
    value, grads = _host_loss_and_gradient(
        NetworkSpec.of(net),
        X,
        T,
        mask,
        sequence_mask,
        loss,
        check_finite,
        client,
        scheduler,
        timeout,
    )
    return value, [
        {k: asarray(v, dtype=net.dtype, backend=net.backend) for k, v in g.items()} for g in grads
    ]


def evaluate(
    net: Sequential,
    X: da.Array,
    T: da.Array,
    loss: str | Loss,
    *,
    mask: da.Array | None = None,
    sequence_mask: da.Array | None = None,
    client: Any = None,
    scheduler: Any = None,
    timeout: float | None = None,
) -> dict[str, float]:
    """``net.evaluate`` over a row-chunked dask dataset: the loss, and accuracy for the
    classification losses, each the mean over the rows ``net.evaluate`` counts (padded
    timesteps of an output with the time axis count in neither).

    Parameters and errors as :func:`loss_and_gradient`.

    Returns
    -------
    dict
        ``{"loss": float}`` plus ``"accuracy"`` for cross_entropy and binary_cross_entropy.
    """
    X, T, mask, sequence_mask, loss = _prepare(net, X, T, mask, sequence_mask, loss, "evaluate")

    def build(ref: Any, where: list | None) -> Any:
        parts = _per_chunk(
            _chunk_evaluate,
            ref,
            (X, T, mask, sequence_mask),
            loss,
            where=where,
            combine=_add_metrics,
        )
        return _tree(parts, _add_metrics)

    n, metrics = _run(build, NetworkSpec.of(net), client, scheduler, timeout, X)
    if n == 0:
        raise ValueError("every row of the data is masked: there is nothing to evaluate")
    return {k: v / n for k, v in metrics.items()}


def predict(
    net: Sequential,
    X: da.Array,
    *,
    mask: da.Array | None = None,
    sequence_mask: da.Array | None = None,
) -> da.Array:
    """The network's output for a row-chunked dask array, as a dask array chunked the same
    way along the rows (lazy: compute it, or store it, chunk by chunk).

    Parameters
    ----------
    net : Sequential
    X : dask array of shape (n_samples, ..., n_inputs)
        Chunked along the first axis only.
    mask : dask array (or NumPy array) of the output's shape, optional
    sequence_mask : dask array (or NumPy array) of shape (n_samples, n_steps), optional
        True on real timesteps (default: the first layer's ``compute_mask``, if any).

    Returns
    -------
    Y : dask array of shape (n_samples, ..., n_outputs)
        Blocks are host arrays of the chunks' library (NumPy; CuPy under dask-cuda) in the
        network's dtype, computed with the weights ``net`` has now.
    """
    _check_network(net, "predict")
    _check_dask("X", X, "predict", "net.predict(X)")
    _check_inputs(net, X)
    mask = _aligned("mask", mask, X, "predict")
    sequence_mask = _sequence_mask(sequence_mask, X, "predict")
    dtype = np.dtype(net.backend.dtype_name(net.dtype))
    out_shape = _output_shape(net, tuple(X.shape))
    meta = da.utils.meta_from_array(X._meta, ndim=len(out_shape), dtype=dtype)
    ref = _shared(NetworkSpec.of(net))
    xs = _blocks(X, 0)
    blocks = [
        da.from_delayed(
            dask.delayed(_chunk_predict, pure=True)(ref, x, m, s),
            shape=(rows, *out_shape[1:]),
            dtype=dtype,
            meta=meta,
        )
        for x, m, s, rows in zip(
            xs, _blocks(mask, len(xs)), _blocks(sequence_mask, len(xs)), X.chunks[0]
        )
    ]
    return da.concatenate(blocks, axis=0)
