"""Full-batch training with L-BFGS on the exact loss and gradient of a dask dataset."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import dask.array as da
import numpy as np

from ..backend import asarray
from ..losses import Loss
from ..network import Sequential
from .checks import _prepare
from .chunks import NetworkSpec
from .reduce import _host_loss_and_gradient


def fit_lbfgs(
    net: Sequential,
    X: da.Array,
    T: da.Array,
    loss: str | Loss,
    *,
    mask: da.Array | None = None,
    sequence_mask: da.Array | None = None,
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
    :func:`~nnxp.dask.loss_and_gradient` on the cluster. The data is read each evaluation:
    persist it in the cluster first (``X, T = client.persist([X, T])``) unless it is cheap
    to load.

    Parameters
    ----------
    net : Sequential
        Trained in place: it holds the best weights when this returns.
    X, T, loss, mask, sequence_mask, client, scheduler, timeout
        As :func:`~nnxp.dask.loss_and_gradient` (the data is checked for NaN/inf once, at
        the first evaluation).
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
    X, T, mask, sequence_mask, loss = _prepare(net, X, T, mask, sequence_mask, loss, "fit_lbfgs")
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
            spec, X, T, mask, sequence_mask, loss, not checked[0], client, scheduler, timeout
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
    """The parameters in ``layout`` order as one float64 vector."""
    return np.concatenate(
        [np.asarray(weights[i][k], dtype=np.float64).reshape(-1) for i, k, _ in layout]
    )


def _unflatten(theta: np.ndarray, layout: list, net: Sequential, dtype: np.dtype) -> list:
    """One host dict per layer from the flat vector ``theta``."""
    weights: list[dict] = [{} for _ in net.layers]
    start = 0
    for i, k, shape in layout:
        size = math.prod(shape)
        weights[i][k] = theta[start : start + size].reshape(shape).astype(dtype)
        start += size
    return weights
