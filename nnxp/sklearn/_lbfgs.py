"""The ``lbfgs`` solver: ``scipy.optimize.minimize(method="L-BFGS-B")`` on the flattened
parameters, with nnxp's exact loss and gradient (one host round trip per evaluation)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.optimize
from sklearn.exceptions import ConvergenceWarning

from ..backend import asarray, to_numpy
from ._data import DeviceRows


def pack(net: Any) -> np.ndarray:
    """Every parameter on the host, flattened in scikit-learn's order: the ``coefs_``
    ((n_in, n_out) layout) of every layer, then every ``intercepts_``."""
    params = net.parameters()
    coefs = [to_numpy(p["W"]).T.ravel() for p in params]
    intercepts = [to_numpy(p["b"]).ravel() for p in params]
    return np.concatenate(coefs + intercepts).astype(np.float64)


def pack_grads(grads: list) -> np.ndarray:
    """Gradients (nnxp layout) flattened in :func:`pack`'s order."""
    coefs = [to_numpy(g["W"]).T.ravel() for g in grads]
    intercepts = [to_numpy(g["b"]).ravel() for g in grads]
    return np.concatenate(coefs + intercepts).astype(np.float64)


def unpack(net: Any, theta: np.ndarray) -> None:
    """Put a :func:`pack`-ed vector back into the network's layers (on its device)."""
    layers = [layer for layer in net.layers if layer.params]
    start = 0
    shapes = [(layer.n_inputs, layer.n_outputs) for layer in layers]
    coefs = []
    for n_in, n_out in shapes:
        coefs.append(theta[start : start + n_in * n_out].reshape(n_in, n_out))
        start += n_in * n_out
    for layer, W, (_, n_out) in zip(layers, coefs, shapes):
        layer.W = asarray(np.ascontiguousarray(W.T), net.dtype, net.backend)
        layer.b = asarray(theta[start : start + n_out], net.dtype, net.backend)
        start += n_out


def objective(
    theta: np.ndarray, est: Any, net: Any, rows: DeviceRows, T: DeviceRows, w: Any
) -> tuple[float, np.ndarray]:
    """The L2-penalised objective and its gradient at ``theta`` (both float64 on the host).

    Sparse data is densified a block at a time: the loss and gradient of the blocks are
    summed with their weights (their share of the samples or of the sample weight)."""
    unpack(net, theta)
    sample_weight = w
    total = float(rows.n) if sample_weight is None else float(np.sum(sample_weight))
    value, grad = 0.0, np.zeros(0)
    for start, stop, Xb in rows.blocks():
        Tb = T.rows(start, stop)
        wb, share = None, float(stop - start)
        if sample_weight is not None:
            wb = asarray(sample_weight[start:stop, None], net.dtype, net.backend)
            share = float(np.sum(sample_weight[start:stop]))
        loss, grads = est._loss_and_gradient(net, Xb, Tb, wb, share, report=False, penalty=False)
        part = pack_grads(grads) * (share / total)
        value += loss * (share / total)
        grad = part if grad.size == 0 else grad + part
    # the penalty 0.5 * alpha * ||W||^2 / sum(w) once, on the host copy of the weights
    alpha = float(est.alpha)
    if alpha:
        n_coefs = sum(layer.n_inputs * layer.n_outputs for layer in net.layers if layer.params)
        W = theta[:n_coefs]
        value += 0.5 * alpha * float(W @ W) / total
        grad[:n_coefs] += alpha * W / total
    return value, grad


def fit_lbfgs(est: Any, net: Any, X: Any, y: np.ndarray, sample_weight: Any) -> None:
    """Minimise the objective from the network's current weights; sets ``n_iter_`` and
    ``loss_`` as scikit-learn does (``max_iter``, ``max_fun``, ``tol`` as its options)."""
    rows = DeviceRows(X, net.backend, net.dtype)
    T = DeviceRows(np.asarray(y, dtype=np.float64), net.backend, net.dtype)
    sw = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    iteration = [0]

    def progress(intermediate_result: Any) -> None:
        iteration[0] += 1
        print(f"Iteration {iteration[0]}, loss = {intermediate_result.fun:.8f}")

    result = scipy.optimize.minimize(
        objective,
        pack(net),
        args=(est, net, rows, T, sw),
        method="L-BFGS-B",
        jac=True,
        callback=progress if est.verbose else None,
        options={"maxfun": int(est.max_fun), "maxiter": int(est.max_iter), "gtol": float(est.tol)},
    )
    est.n_iter_ = min(result.nit, int(est.max_iter))
    if result.status != 0:
        warnings.warn(
            f"lbfgs failed to converge after {est.n_iter_} iteration(s) "
            f"(status={result.status}):\n{result.message}\n\n"
            "Increase the number of iterations to improve the convergence "
            f"(max_iter={est.max_iter}).\nYou might also want to scale the data as shown in:\n"
            "    https://scikit-learn.org/stable/modules/preprocessing.html",
            ConvergenceWarning,
            stacklevel=3,
        )
    est.loss_ = float(result.fun)
    unpack(net, result.x)
