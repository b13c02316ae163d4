"""The flat buffers the ranks exchange: the parameter layout, one step's local sums, the
validation sums, and the broadcast of rank 0's weights.

One step's buffer is ``[count * gradient, loss sum, count, failed]``: the gradient of every
parameter flattened in :func:`_param_layout` order, times the number of rows counted on this
rank (so the allreduce sums gradients), then three scalars.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backend import asarray, to_numpy
from ..checks import sequence_rows
from ..losses import counted_rows

Array = Any
CLASSIFICATION = ("cross_entropy", "binary_cross_entropy")


def _param_layout(net: Any) -> list[tuple[int, str, tuple[int, ...], int, int]]:
    """``(layer, name, shape, offset, size)`` of every parameter in the flat buffer."""
    layout, offset = [], 0
    for i, params in enumerate(net.parameters()):
        for name in sorted(params):
            shape = tuple(int(s) for s in params[name].shape)
            layout.append((i, name, shape, offset, math.prod(shape)))
            offset += math.prod(shape)
    return layout


def _unflatten(net: Any, layout: list, flat: Array) -> list[dict[str, Array]]:
    """The parameters' shapes again: one dict per layer from ``flat`` of shape (n_params,)."""
    out: list[dict[str, Array]] = [{} for _ in net.layers]
    for i, name, shape, offset, size in layout:
        out[i][name] = net.xp.reshape(flat[offset : offset + size], shape)
    return out


def _broadcast_weights(comm: Any, net: Any, layout: list) -> None:
    """Every rank starts from rank 0's weights (one Bcast of one flat host buffer)."""
    params = net.parameters()
    host = np.concatenate([to_numpy(params[i][name]).reshape(-1) for i, name, *_ in layout])
    comm.Bcast(host, root=0)
    flat = asarray(host, dtype=net.dtype, backend=net.backend)
    net.set_weights(
        [
            {k: net.xp.asarray(v, copy=True) for k, v in layer.items()}
            for layer in _unflatten(net, layout, flat)
        ]
    )


def _failure(net: Any, size: int) -> Array:
    """A step buffer of shape (size,) from a rank that failed: zeros and the flag set."""
    host = np.zeros(size)
    host[-1] = 1.0  # the failure flag
    return asarray(host, dtype=net.dtype, backend=net.backend)


def _local_sums(net, loss, batch, layout, n_params, tail) -> Array:
    """``[count * gradient, loss sum, count, 0]`` of this rank's rows of one global batch.

    Parameters
    ----------
    batch : (Xb, Tb, Mb, Sb) or None
        This rank's rows of the batch (``Sb``: their timestep mask, or None); None when it
        holds none of them (it sends zeros).
    tail : array of shape (2,)
        The device array ``[1, 0]``.

    Returns
    -------
    array of shape (n_params + 3,)
    """
    xp = net.xp
    if batch is None:
        return xp.zeros((n_params + 3,), dtype=net.dtype, device=net.backend.device)
    Xb, Tb, Mb, Sb = batch
    total, count = net._loss_and_delta(Xb, Tb, loss, Mb, training=True, sequence_mask=Sb)
    safe = max(count, 1) if isinstance(count, int) else count + xp.astype(count == 0, net.dtype)
    parts = [xp.reshape(net.layers[i].grads[name], (-1,)) for i, name, *_ in layout]
    parts += [xp.reshape(total / safe, (1,)), tail]
    return xp.concat(parts) * count  # the mean gradient (and loss) times count: their sums


def _validation_sums(net: Any, loss: Any, validation: tuple | None) -> np.ndarray:
    """``[loss sum, count, right, counted]`` of this rank's validation rows (as ``evaluate``:
    under an output mask or, for an output with the time axis, a timestep mask, only the
    rows the loss counts).

    Parameters
    ----------
    validation : tuple or None
        ``net.prepare_sequences`` of this rank's rows: ``(X, T, loss, mask, sequence_mask)``.

    Returns
    -------
    numpy.ndarray of shape (4,)
        Zeros when this rank holds no validation rows (``validation`` None).
    """
    sums = np.zeros(4)
    if validation is None:
        return sums
    xp = net.xp
    Xv, Tv, _, Mv, Sv = validation
    if Sv is None and hasattr(net.layers[0], "compute_mask"):
        Sv = net.layers[0].compute_mask(Xv)
    Y, total, count = net._inference_loss(Xv, Tv, loss, Mv, Sv)
    sums[0], sums[1] = float(total), float(count)
    if loss.name in CLASSIFICATION:
        if loss.name == "cross_entropy":
            hits = xp.argmax(Y, axis=-1) == xp.argmax(Tv, axis=-1)
        else:
            hits = (Y > 0.5) == (Tv > 0.5)
        rows = counted_rows(xp, Mv, sequence_rows(Sv, tuple(Y.shape)))
        if rows is not None:
            sums[2] = float(xp.sum(xp.astype(hits & rows, Y.dtype)))
            sums[3] = float(xp.sum(xp.astype(rows, Y.dtype)))
        else:
            sums[2], sums[3] = float(xp.sum(xp.astype(hits, Y.dtype))), math.prod(hits.shape)
    return sums
