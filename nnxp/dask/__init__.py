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
penalties that every chunk's mean holds. With a ``client`` and ``X`` persisted, the work
follows the data: each worker computes the chunks it holds one after the other in one task
and returns their sum, so no chunk travels between workers (a task per chunk lets the
scheduler steal queued chunks, copying them to another worker); chunks not in memory get a
task each. ``n_c`` is counted as the network counts: rows
with an allowed output under ``mask``, and for an output with the time axis under a
timestep mask (``sequence_mask=``, or the first layer's ``compute_mask``) the real steps
only. Chunks compute with the array library they hold (NumPy; CuPy under dask-cuda), in the
network's dtype; the results come back as host arrays and are put on the network's backend
at the end.

The weights are a snapshot taken at the call: training the network afterwards does not change
a dask array that :func:`predict` returned.

The package: :mod:`~nnxp.dask.api` (the public calls), :mod:`~nnxp.dask.checks` (input
checks, rechunking to X's rows), :mod:`~nnxp.dask.chunks` (the network on the workers and
the per-chunk tasks), :mod:`~nnxp.dask.reduce` (the task graph and its tree reduction) and
:mod:`~nnxp.dask.lbfgs` (:func:`fit_lbfgs`).
"""

from __future__ import annotations

from .api import evaluate, loss_and_gradient, predict
from .chunks import NetworkSpec
from .lbfgs import fit_lbfgs

__all__ = ["NetworkSpec", "evaluate", "fit_lbfgs", "loss_and_gradient", "predict"]
