"""The task graph: one task per row chunk over a shared reference to the network's spec,
and a tree of tasks on the workers that adds the chunks' ``(n_c, n_c * value_c)``; the
caller divides once.

With a ``client`` and ``X``'s chunks in the cluster's memory (persisted), the work follows
the data: the chunks each worker holds are computed one after the other by one task on that
worker, which returns their sum (one partial per worker, not per chunk). Nothing is then
shipped but the weights and one partial sum per worker, and the scheduler has no queued
chunk task to steal: with a task per chunk it moves chunks (tens of MB) to whichever worker
runs ahead, and on few cores those copies cost the compute they were meant to save. Chunks
not in memory keep a task each, placed by the scheduler."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask.core import flatten

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


def _where(client: Any, X: da.Array) -> list | None:
    """The worker that computes each row chunk of ``X``: one that holds the chunk in memory
    (the one with the fewest chunks so far, for a chunk held by several), None for a chunk not
    in memory; None for all when there is no ``client`` or no chunk is in memory.

    Parameters
    ----------
    client : distributed.Client or None
    X : dask array of shape (n_samples, ..., n_inputs), row-chunked

    Returns
    -------
    list of str or None, one per row chunk, or None
    """
    if client is None:
        return None
    from distributed import futures_of

    if not futures_of(X):  # a lazy X: nothing of it is in memory (and no round trip to ask)
        return None
    who = client.who_has(X)  # the keys of X's futures (a persisted X) that are in memory
    held = [sorted(who.get(key) or ()) for key in flatten(X.__dask_keys__())]
    if not any(held):
        return None
    counts: dict[str, int] = {}
    where: list[str | None] = []
    for workers in held:
        worker = min(workers, key=lambda w: counts.get(w, 0)) if workers else None
        if worker is not None:
            counts[worker] = counts.get(worker, 0) + 1
        where.append(worker)
    return where


def _in_turn(task: Callable, combine: Callable, ref: Any, chunks: list, *args: Any) -> Any:
    """``task(ref, *chunk, *args)`` of each chunk in ``chunks``, one after the other (all on
    the worker that holds them), added with ``combine`` as they come."""
    total = None
    for chunk in chunks:
        part = task(ref, *chunk, *args)
        total = part if total is None else combine(total, part)
    return total


def _run(
    build: Callable[[Any, list | None], Any],
    spec: NetworkSpec,
    client: Any,
    scheduler: Any,
    timeout: float | None,
    X: da.Array | None = None,
) -> Any:
    """Build the graph over the spec's reference and compute it on the chosen scheduler:
    with a ``client``, the spec is scattered to every worker (broadcast), and the chunks of
    ``X`` in the cluster's memory are computed where they are (:func:`_where`)."""
    if client is None:
        return dask.compute(build(_shared(spec), None), scheduler=scheduler)[0]
    where = None if X is None else _where(client, X)
    ref = client.scatter(spec, broadcast=True, hash=False)
    future = None
    try:
        future = client.compute(build(ref, where))
        return future.result(timeout=timeout)
    finally:  # a timeout or an interrupt stops the work on the cluster too
        if future is not None and not future.done():
            future.cancel()
        ref.release()


def _per_chunk(
    task: Callable,
    ref: Any,
    arrays: tuple,
    *args: Any,
    where: list | None = None,
    combine: Callable | None = None,
) -> list:
    """The delayed partial results of the row chunks of ``arrays[0]`` (and the matching
    chunks of the other arrays): ``task(ref, x, t, m, s, *args)`` per chunk, except that
    the chunks with a worker in ``where`` are grouped by it, one :func:`_in_turn` task
    (adding with ``combine``) per worker."""
    xs = _blocks(arrays[0], 0)
    blocks = [xs] + [_blocks(a, len(xs)) for a in arrays[1:]]
    parts: list = []
    groups: dict[str, list] = {}
    for i, chunk in enumerate(zip(*blocks)):
        worker = None if where is None else where[i]
        if worker is None:
            parts.append(dask.delayed(task, pure=True)(ref, *chunk, *args))
        else:
            groups.setdefault(worker, []).append(list(chunk))
    for worker in sorted(groups):
        parts.append(dask.delayed(_in_turn, pure=True)(task, combine, ref, groups[worker], *args))
    return parts


def _graph_loss_and_gradient(
    ref, X, T, mask, loss, check_finite, sequence_mask=None, where=None
) -> Any:
    parts = _per_chunk(
        _chunk_loss_and_gradient,
        ref,
        (X, T, mask, sequence_mask),
        loss,
        check_finite,
        where=where,
        combine=_add_partials,
    )
    return _tree(parts, _add_partials)


def _host_loss_and_gradient(
    spec, X, T, mask, sequence_mask, loss, check_finite, client, scheduler, timeout
) -> tuple[float, list]:
    """The mean loss and host float64 gradients of ``spec`` on the chunked data."""
    n, value, grads = _run(
        lambda ref, where: _graph_loss_and_gradient(
            ref, X, T, mask, loss, check_finite, sequence_mask, where
        ),
        spec,
        client,
        scheduler,
        timeout,
        X,
    )
    if n == 0:
        raise ValueError("every row of the data is masked: there is no loss to take the mean of")
    return value / n, [{k: v / n for k, v in g.items()} for g in grads]
