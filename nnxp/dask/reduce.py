"""The task graph: one task per row chunk over a shared reference to the network's spec,
and a tree of tasks on the workers that adds the chunks' ``(n_c, n_c * value_c)``; the
caller divides once."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from typing import Any

import dask
import dask.array as da
import numpy as np

from .chunks import NetworkSpec, _chunk_loss_and_gradient

_SPLIT_EVERY = 8  # partial sums added per reduction task


def _add_partials(*parts: tuple[int, float, list | None]) -> tuple[int, float, list | None]:
    """The sum of ``(n_c, n_c * loss_c, [n_c * grad_c])`` partials."""
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


def _add_metrics(*parts: tuple[int, dict[str, float]]) -> tuple[int, dict[str, float]]:
    """The sum of ``(n_c, {metric: n_c * value})`` partials."""
    keys = {k for _, metrics in parts for k in metrics}
    return sum(p[0] for p in parts), {
        k: math.fsum(metrics.get(k, 0.0) for _, metrics in parts) for k in sorted(keys)
    }


def _blocks(a: da.Array | None, n: int) -> list:
    """The row blocks of ``a`` as delayed objects (``n`` Nones when ``a`` is None)."""
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
    """Build the graph over the spec's reference and compute it on the chosen scheduler:
    with a ``client``, the spec is scattered to every worker (broadcast)."""
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


def _per_chunk(task: Callable, ref: Any, arrays: tuple, *args: Any) -> list:
    """One delayed ``task(ref, x, t, m, s, *args)`` per row chunk of ``arrays[0]``."""
    xs = _blocks(arrays[0], 0)
    blocks = [xs] + [_blocks(a, len(xs)) for a in arrays[1:]]
    return [dask.delayed(task, pure=True)(ref, *chunk, *args) for chunk in zip(*blocks)]


def _graph_loss_and_gradient(ref, X, T, mask, loss, check_finite, sequence_mask=None) -> Any:
    parts = _per_chunk(
        _chunk_loss_and_gradient, ref, (X, T, mask, sequence_mask), loss, check_finite
    )
    return _tree(parts, _add_partials)


def _host_loss_and_gradient(
    spec, X, T, mask, sequence_mask, loss, check_finite, client, scheduler, timeout
) -> tuple[float, list]:
    """The mean loss and host float64 gradients of ``spec`` on the chunked data."""
    n, value, grads = _run(
        lambda ref: _graph_loss_and_gradient(ref, X, T, mask, loss, check_finite, sequence_mask),
        spec,
        client,
        scheduler,
        timeout,
    )
    if n == 0:
        raise ValueError("every row of the data is masked: there is no loss to take the mean of")
    return value / n, [{k: v / n for k, v in g.items()} for g in grads]
