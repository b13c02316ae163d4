"""The loss, gradient, prediction and evaluation of a network over row-chunked dask arrays,
and full-batch training with L-BFGS on them.

Import it explicitly (``import nnxp.dask``); ``import nnxp`` does not import dask.

How it works: the network's architecture and host (NumPy) weights go into the task graph once
per call -- scattered to every worker with ``client.scatter(..., broadcast=True)`` when a
``client`` is given, else as one ``dask.delayed`` object that every chunk task shares (each
worker fetches it once) -- and each worker rebuilds the network from them, once per thread and
call. Each chunk ``c`` gives the public ``net.loss_and_gradient`` (or ``net.evaluate``) mean
values and the count ``n_c`` of rows that mean divides by; a tree of tasks on the workers adds
``n_c * value_c`` and ``n_c``, and the caller divides once: ``sum_c n_c value_c / sum_c n_c``.
That is the in-memory mean for any chunking (ragged last chunks too), and stays exact for
penalties that every chunk's mean holds. Chunks compute with the array library they hold
(NumPy; CuPy under dask-cuda), in the network's dtype; the results come back as host arrays
and are put on the network's backend at the end.

The weights are a snapshot taken at the call: training the network afterwards does not change
a dask array that :func:`predict` returned.
"""

from __future__ import annotations

import math
import threading
import types
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np

from .backend import array_library, asarray, to_numpy
from .losses import Loss, get_loss
from .network import Sequential

Array = Any
_SPLIT_EVERY = 8  # partial sums added per reduction task


# ------------------------------------------------------------------- the network on workers
@dataclass(frozen=True, eq=False)
class NetworkSpec:
    """What a worker needs to rebuild a network: architecture, dtype and host weights.

    Attributes
    ----------
    config : dict
        :meth:`Sequential.get_config`.
    dtype : {"float32", "float64"}
    weights : list of dict of numpy.ndarray
        One dict per layer, as :meth:`Sequential.parameters` gives, on the host.
    """

    config: dict
    dtype: str
    weights: list

    @classmethod
    def of(cls, net: Sequential, weights: list | None = None) -> NetworkSpec:
        """The spec of ``net`` with its own weights, or with host ``weights`` in their place."""
        if weights is None:
            weights = [{k: to_numpy(v) for k, v in p.items()} for p in net.parameters()]
        return cls(net.get_config(), net.backend.dtype_name(net.dtype), weights)

    def build(self, backend: str) -> Sequential:
        return Sequential.from_config(self.config, self.weights, backend=backend, dtype=self.dtype)


_LOCAL = threading.local()


def _network(spec: NetworkSpec, backend: str) -> Sequential:
    """The network of ``spec`` on ``backend``, built once per thread and spec (a network
    caches its passes, so threads never share one)."""
    entry = getattr(_LOCAL, "entry", None)
    if entry is None or entry[0] is not spec or entry[1] != backend:
        entry = (spec, backend, spec.build(backend))
        _LOCAL.entry = entry
    return entry[2]


def _chunk_backend(chunk: Array) -> str:
    """The backend a chunk is computed with: its own library (NumPy, or CuPy under dask-cuda)."""
    return "cupy" if array_library(chunk) == "cupy" else "numpy"


def _host_chunk(chunk: Array) -> Array:
    return chunk if array_library(chunk) in ("numpy", "cupy") else np.asarray(chunk)


def _rows_counted(net: Sequential, Xc: Array, Mc: Array) -> int:
    """How many rows a chunk's mean divides by: every leading position of the output, or
    under a softmax mask only those with at least one allowed output."""
    if Mc is None:
        return math.prod(net.output_shape(Xc)[:-1])
    return int(np.count_nonzero(np.any(np.asarray(to_numpy(Mc)) != 0, axis=-1)))


# ---------------------------------------------------------------------------- chunk tasks
def _chunk_loss_and_gradient(
    spec: NetworkSpec, Xc: Array, Tc: Array, Mc: Array, loss: str | Loss, check_finite: bool
) -> tuple[int, float, list | None]:
    """``(n_c, n_c * loss_c, [n_c * grad_c])`` of one chunk, on the host in float64."""
    Xc, Tc = _host_chunk(Xc), _host_chunk(Tc)
    Mc = None if Mc is None else _host_chunk(Mc)
    if Xc.shape[0] == 0:
        return 0, 0.0, None
    net = _network(spec, _chunk_backend(Xc))
    n = _rows_counted(net, Xc, Mc)
    if n == 0:  # every row masked: nothing to add, but the chunk is still checked
        net.prepare(Xc, Tc, loss, Mc, check_finite)
        return 0, 0.0, None
    value, grads = net.loss_and_gradient(Xc, Tc, loss, mask=Mc, check_finite=check_finite)
    host = [{k: n * np.asarray(to_numpy(v), dtype=np.float64) for k, v in g.items()} for g in grads]
    return n, n * float(value), host


def _add_partials(*parts: tuple[int, float, list | None]) -> tuple[int, float, list | None]:
    n = sum(p[0] for p in parts)
    value = math.fsum(p[1] for p in parts)
    grads = None
    for part in parts:
        if part[2] is None:
            continue
        if grads is None:
            grads = [{k: np.array(v, copy=True) for k, v in g.items()} for g in part[2]]
        else:
            for total, g in zip(grads, part[2]):
                for k, v in g.items():
                    total[k] += v
    return n, value, grads


def _chunk_evaluate(
    spec: NetworkSpec, Xc: Array, Tc: Array, Mc: Array, loss: str | Loss
) -> tuple[int, dict[str, float]]:
    """``(n_c, {metric: n_c * value})`` of one chunk."""
    Xc, Tc = _host_chunk(Xc), _host_chunk(Tc)
    Mc = None if Mc is None else _host_chunk(Mc)
    if Xc.shape[0] == 0:
        return 0, {}
    net = _network(spec, _chunk_backend(Xc))
    n = _rows_counted(net, Xc, Mc)
    if n == 0:
        net.prepare(Xc, Tc, loss, Mc)
        return 0, {}
    return n, {k: n * float(v) for k, v in net.evaluate(Xc, Tc, loss, mask=Mc).items()}


def _add_metrics(*parts: tuple[int, dict[str, float]]) -> tuple[int, dict[str, float]]:
    keys = {k for _, metrics in parts for k in metrics}
    return sum(p[0] for p in parts), {
        k: math.fsum(metrics.get(k, 0.0) for _, metrics in parts) for k in sorted(keys)
    }


def _chunk_predict(spec: NetworkSpec, Xc: Array, Mc: Array = None) -> Array:
    Xc = _host_chunk(Xc)
    Mc = None if Mc is None else _host_chunk(Mc)
    net = _network(spec, _chunk_backend(Xc))
    if Xc.shape[0] == 0:
        out = _output_shape(net, tuple(Xc.shape))
        return Xc[:0, ...].reshape((0, *out[1:])).astype(np.dtype(spec.dtype))
    return net.predict(Xc, mask=Mc)


# ---------------------------------------------------------------------------- checks
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


def _prepare(
    net: Any, X: Any, T: Any, mask: Any, loss: Any, caller: str
) -> tuple[da.Array, da.Array, da.Array | None, str | Loss]:
    _check_network(net, caller)
    _check_dask("X", X, caller, f"net.{caller}(X, T, loss)")
    _check_inputs(net, X)
    T = _aligned("T", T, X, caller)
    mask = _aligned("mask", mask, X, caller)
    resolved = get_loss(loss)  # unknown names fail here, before any task runs
    out = net.layers[-1]
    if hasattr(out, "activation"):
        resolved.check_activation(out.activation, out.label)
    return X, T, mask, loss if isinstance(loss, str) else resolved


# ---------------------------------------------------------------------------- graphs
def _blocks(a: da.Array | None, n: int) -> list:
    if a is None:
        return [None] * n
    return list(a.to_delayed().reshape(-1))


def _tree(parts: list, combine: Callable) -> Any:
    """Add the partial results on the workers, ``_SPLIT_EVERY`` at a time."""
    while len(parts) > 1:
        parts = [
            dask.delayed(combine, pure=True)(*parts[i : i + _SPLIT_EVERY])
            for i in range(0, len(parts), _SPLIT_EVERY)
        ]
    return parts[0]


def _shared(spec: NetworkSpec) -> Any:
    """One graph key holding the spec, which every chunk task depends on."""
    return dask.delayed(spec, name=f"nnxp-network-{uuid.uuid4().hex}", traverse=False)


def _run(
    build: Callable[[Any], Any],
    spec: NetworkSpec,
    client: Any,
    scheduler: Any,
    timeout: float | None,
) -> Any:
    """Build the graph over the spec's reference and compute it on the chosen scheduler."""
    if client is None:
        return dask.compute(build(_shared(spec)), scheduler=scheduler)[0]
    ref = client.scatter(spec, broadcast=True, hash=False)
    future = None
    try:
        future = client.compute(build(ref))
        return future.result(timeout=timeout)
    finally:  # a timeout or an interrupt stops the work on the cluster too
        if future is not None and not future.done():
            future.cancel()
        ref.release()


def _graph_loss_and_gradient(ref, X, T, mask, loss, check_finite) -> Any:
    xs = _blocks(X, 0)
    parts = [
        dask.delayed(_chunk_loss_and_gradient, pure=True)(ref, x, t, m, loss, check_finite)
        for x, t, m in zip(xs, _blocks(T, len(xs)), _blocks(mask, len(xs)))
    ]
    return _tree(parts, _add_partials)


def _host_loss_and_gradient(
    spec, X, T, mask, loss, check_finite, client, scheduler, timeout
) -> tuple[float, list]:
    """The mean loss and host float64 gradients of ``spec`` on the chunked data."""
    n, value, grads = _run(
        lambda ref: _graph_loss_and_gradient(ref, X, T, mask, loss, check_finite),
        spec,
        client,
        scheduler,
        timeout,
    )
    if n == 0:
        raise ValueError("every row of the data is masked: there is no loss to take the mean of")
    return value / n, [{k: v / n for k, v in g.items()} for g in grads]


# ---------------------------------------------------------------------------- public API
def loss_and_gradient(
    net: Sequential,
    X: da.Array,
    T: da.Array,
    loss: str | Loss,
    *,
    mask: da.Array | None = None,
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
        ``X`` (or ``T``, ``mask``) that is not a dask array: use ``net.loss_and_gradient``.
    ValueError
        Data chunked along features, a row count that differs between ``X`` and ``T``,
        a loss the output layer cannot take, or every row masked.
    """
    X, T, mask, loss = _prepare(net, X, T, mask, loss, "loss_and_gradient")
    value, grads = _host_loss_and_gradient(
        NetworkSpec.of(net), X, T, mask, loss, check_finite, client, scheduler, timeout
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
    client: Any = None,
    scheduler: Any = None,
    timeout: float | None = None,
) -> dict[str, float]:
    """``net.evaluate`` over a row-chunked dask dataset: the loss, and accuracy for the
    classification losses, each the mean over the rows ``net.evaluate`` counts.

    Parameters and errors as :func:`loss_and_gradient`.

    Returns
    -------
    dict
        ``{"loss": float}`` plus ``"accuracy"`` for cross_entropy and binary_cross_entropy.
    """
    X, T, mask, loss = _prepare(net, X, T, mask, loss, "evaluate")

    def build(ref: Any) -> Any:
        xs = _blocks(X, 0)
        parts = [
            dask.delayed(_chunk_evaluate, pure=True)(ref, x, t, m, loss)
            for x, t, m in zip(xs, _blocks(T, len(xs)), _blocks(mask, len(xs)))
        ]
        return _tree(parts, _add_metrics)

    n, metrics = _run(build, NetworkSpec.of(net), client, scheduler, timeout)
    if n == 0:
        raise ValueError("every row of the data is masked: there is nothing to evaluate")
    return {k: v / n for k, v in metrics.items()}


def predict(net: Sequential, X: da.Array, *, mask: da.Array | None = None) -> da.Array:
    """The network's output for a row-chunked dask array, as a dask array chunked the same
    way along the rows (lazy: compute it, or store it, chunk by chunk).

    Parameters
    ----------
    net : Sequential
    X : dask array of shape (n_samples, ..., n_inputs)
        Chunked along the first axis only.
    mask : dask array (or NumPy array) of the output's shape, optional

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
    dtype = np.dtype(net.backend.dtype_name(net.dtype))
    out_shape = _output_shape(net, tuple(X.shape))
    meta = da.utils.meta_from_array(X._meta, ndim=len(out_shape), dtype=dtype)
    ref = _shared(NetworkSpec.of(net))
    xs = _blocks(X, 0)
    blocks = [
        da.from_delayed(
            dask.delayed(_chunk_predict, pure=True)(ref, x, m),
            shape=(rows, *out_shape[1:]),
            dtype=dtype,
            meta=meta,
        )
        for x, m, rows in zip(xs, _blocks(mask, len(xs)), X.chunks[0])
    ]
    return da.concatenate(blocks, axis=0)


def _output_shape(net: Sequential, shape: tuple) -> tuple:
    """The network's output shape for an input of ``shape`` (rows may be NaN: unknown)."""
    try:
        out: tuple = tuple(net.output_shape(types.SimpleNamespace(shape=shape)))
    except Exception:  # a network whose output_shape wants more than a shape
        out = (*shape[:-1], net.n_outputs)
    if any(n is None or (isinstance(n, float) and math.isnan(n)) for n in out[1:]):
        raise ValueError(f"cannot tell the network's output shape for input shape {shape}")
    return out


def fit_lbfgs(
    net: Sequential,
    X: da.Array,
    T: da.Array,
    loss: str | Loss,
    *,
    mask: da.Array | None = None,
    maxiter: int = 100,
    tol: float | None = None,
    client: Any = None,
    scheduler: Any = None,
    timeout: float | None = None,
    callback: Callable[[np.ndarray], Any] | None = None,
) -> Any:
    """Full-batch training with L-BFGS on the exact loss and gradient of a dask dataset.

    ``scipy.optimize.minimize(method="L-BFGS-B", jac=True)`` runs on the caller's machine over
    the flattened parameters (float64); every function evaluation is one
    :func:`loss_and_gradient` on the cluster. The data is read each evaluation: persist it in
    the cluster first (``X, T = client.persist([X, T])``) unless it is cheap to load.

    Parameters
    ----------
    net : Sequential
        Trained in place: it holds the best weights when this returns.
    X, T, loss, mask, client, scheduler, timeout
        As :func:`loss_and_gradient` (the data is checked for NaN/inf once, at the first
        evaluation).
    maxiter : int
        Most L-BFGS iterations.
    tol : float, optional
        ``scipy.optimize.minimize``'s ``tol``.
    callback : callable, optional
        Called with the flat parameter vector after each iteration.

    Returns
    -------
    scipy.optimize.OptimizeResult
        ``x`` (flat parameters), ``fun`` (final loss), ``nit``, ``nfev``, ``success``, ...
    """
    from scipy.optimize import minimize

    if not isinstance(maxiter, int) or isinstance(maxiter, bool) or maxiter < 1:
        raise ValueError(f"fit_lbfgs: maxiter must be a positive integer, got {maxiter!r}")
    X, T, mask, loss = _prepare(net, X, T, mask, loss, "fit_lbfgs")
    layout = [(i, k, tuple(v.shape)) for i, p in enumerate(net.parameters()) for k, v in p.items()]
    if not layout:
        raise ValueError("fit_lbfgs: the network has no parameters to train")
    dtype = np.dtype(net.backend.dtype_name(net.dtype))
    template = NetworkSpec.of(net)
    theta0 = _flatten(template.weights, layout)
    checked = [False]

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        spec = NetworkSpec(template.config, template.dtype, _unflatten(theta, layout, net, dtype))
        value, grads = _host_loss_and_gradient(
            spec, X, T, mask, loss, not checked[0], client, scheduler, timeout
        )
        checked[0] = True
        return value, _flatten(grads, layout)

    result = minimize(
        fun,
        theta0,
        jac=True,
        method="L-BFGS-B",
        tol=tol,
        callback=callback,
        options={"maxiter": maxiter},
    )
    host = _unflatten(result.x, layout, net, dtype)
    net.set_weights(
        [{k: asarray(v, dtype=net.dtype, backend=net.backend) for k, v in p.items()} for p in host]
    )
    return result


def _flatten(weights: Sequence[dict], layout: list) -> np.ndarray:
    return np.concatenate(
        [np.asarray(weights[i][k], dtype=np.float64).reshape(-1) for i, k, _ in layout]
    )


def _unflatten(theta: np.ndarray, layout: list, net: Sequential, dtype: np.dtype) -> list:
    weights: list[dict] = [{} for _ in net.layers]
    start = 0
    for i, k, shape in layout:
        size = math.prod(shape)
        weights[i][k] = theta[start : start + size].reshape(shape).astype(dtype)
        start += size
    return weights
