"""What runs on the workers: the network rebuilt from its shipped weights, and the
per-chunk tasks that return ``n_c`` (the rows the chunk's mean divides by) and ``n_c``
times the chunk's mean values.

``n_c`` is counted with the network's own pieces (:func:`nnxp.checks.sequence_rows` and
:func:`nnxp.losses.counted_rows`, as ``Sequential.loss_and_gradient`` counts): every leading
position of the output; under an output mask only the rows with an allowed output; under a
timestep mask (given, or the first layer's ``compute_mask``) and an output with the time
axis, only the real steps.
"""

from __future__ import annotations

import math
import threading
import types
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backend import array_library, to_numpy
from ..checks import sequence_rows
from ..losses import Loss, counted_rows
from ..network import Sequential

Array = Any


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
    if chunk is None:
        return None
    return chunk if array_library(chunk) in ("numpy", "cupy") else np.asarray(chunk)


def _host_bool(a: Array) -> np.ndarray | None:
    return None if a is None else np.asarray(to_numpy(a)) != 0


def _rows_counted(net: Sequential, Xc: Array, Mc: Array, Sc: Array) -> int:
    """How many rows a chunk's mean divides by, counted as the network counts them."""
    out_shape = tuple(net.output_shape(Xc))
    if Sc is None and hasattr(net.layers[0], "compute_mask"):
        Sc = net.layers[0].compute_mask(Xc)  # Embedding(mask_zero=True): X != 0
    rows = sequence_rows(_host_bool(Sc), out_shape)
    counted = counted_rows(np, _host_bool(Mc), rows)
    if counted is None:
        return math.prod(out_shape[:-1])
    return int(np.count_nonzero(counted))


def _chunk_loss_and_gradient(
    spec: NetworkSpec,
    Xc: Array,
    Tc: Array,
    Mc: Array,
    Sc: Array,
    loss: str | Loss,
    check_finite: bool,
) -> tuple[int, float, list | None]:
    """``(n_c, n_c * loss_c, [n_c * grad_c])`` of one chunk, on the host in float64."""
    Xc, Tc, Mc, Sc = (_host_chunk(a) for a in (Xc, Tc, Mc, Sc))
    if Xc.shape[0] == 0:
        return 0, 0.0, None
    net = _network(spec, _chunk_backend(Xc))
    n = _rows_counted(net, Xc, Mc, Sc)
    if n == 0:  # every row masked: nothing to add, but the chunk is still checked
        net.prepare_sequences(Xc, Tc, loss, Mc, Sc, check_finite)
        return 0, 0.0, None
    value, grads = net.loss_and_gradient(
        Xc, Tc, loss, mask=Mc, sequence_mask=Sc, check_finite=check_finite
    )
    host = [{k: n * np.asarray(to_numpy(v), dtype=np.float64) for k, v in g.items()} for g in grads]
    return n, n * float(value), host


def _chunk_evaluate(
    spec: NetworkSpec, Xc: Array, Tc: Array, Mc: Array, Sc: Array, loss: str | Loss
) -> tuple[int, dict[str, float]]:
    """``(n_c, {metric: n_c * value})`` of one chunk."""
    Xc, Tc, Mc, Sc = (_host_chunk(a) for a in (Xc, Tc, Mc, Sc))
    if Xc.shape[0] == 0:
        return 0, {}
    net = _network(spec, _chunk_backend(Xc))
    n = _rows_counted(net, Xc, Mc, Sc)
    if n == 0:
        net.prepare_sequences(Xc, Tc, loss, Mc, Sc)
        return 0, {}
    metrics = net.evaluate(Xc, Tc, loss, mask=Mc, sequence_mask=Sc)
    return n, {k: n * float(v) for k, v in metrics.items()}


def _chunk_predict(spec: NetworkSpec, Xc: Array, Mc: Array = None, Sc: Array = None) -> Array:
    """The network's output for one chunk (an empty chunk gives an empty block)."""
    Xc, Mc, Sc = (_host_chunk(a) for a in (Xc, Mc, Sc))
    net = _network(spec, _chunk_backend(Xc))
    if Xc.shape[0] == 0:
        out = _output_shape(net, tuple(Xc.shape))
        return Xc[:0, ...].reshape((0, *out[1:])).astype(np.dtype(spec.dtype))
    return net.predict(Xc, mask=Mc, sequence_mask=Sc)


def _output_shape(net: Sequential, shape: tuple) -> tuple:
    """The network's output shape for an input of ``shape`` (rows may be NaN: unknown)."""
    try:
        out: tuple = tuple(net.output_shape(types.SimpleNamespace(shape=shape)))
    except Exception:  # a network whose output_shape wants more than a shape
        out = (*shape[:-1], net.n_outputs)
    if any(n is None or (isinstance(n, float) and math.isnan(n)) for n in out[1:]):
        raise ValueError(f"cannot tell the network's output shape for input shape {shape}")
    return out
