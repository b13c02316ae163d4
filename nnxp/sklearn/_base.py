"""What ``MLPClassifier`` and ``MLPRegressor`` share: scikit-learn's parameters and their
validation, the initial weights, the fit driver, and the nnxp network that holds the model.

The fitted network is ``network_`` (a :class:`nnxp.Sequential` on the estimator's backend);
``coefs_``/``intercepts_`` are read-only host copies in scikit-learn's ``(n_in, n_out)``
layout, refreshed after every ``fit``/``partial_fit``. Assigning new arrays to them (as
scikit-learn's tests do) is noticed: the network is rebuilt from them once, before it is used.
"""

from __future__ import annotations

import numbers
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, is_classifier
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ..backend import BACKEND_NAMES, array_library, asarray, to_numpy, use_backend
from ..layers import Dense
from ..network import Sequential
from ._data import DeviceRows
from ._lbfgs import fit_lbfgs, objective
from ._loss import SklearnLoss, report_divisor
from ._stochastic import fit_stochastic

STOCHASTIC_SOLVERS = ("sgd", "adam")
# scikit-learn's activation names -> nnxp's; "exp" (Poisson) is a linear layer whose output
# is exponentiated on the host, so that the loss sees the log-mean
HIDDEN = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
OUTPUT = {"identity": "linear", "exp": "linear", "logistic": "sigmoid", "softmax": "softmax"}


def host(X: Any) -> Any:
    """Backend arrays (torch, cupy, array-api-strict, jax) come to the host for validation."""
    return X if array_library(X) in (None, "numpy") else to_numpy(X)


def _read_only(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


class BaseMLP(BaseEstimator):
    """Base class of the estimators; see :class:`nnxp.sklearn.MLPClassifier`."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions({"identity", "logistic", "tanh", "relu"})],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        # nnxp's SGD takes momentum in [0, 1): a momentum of 1 never forgets a gradient
        "momentum": [Interval(Real, 0, 1, closed="left")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "backend": [StrOptions(set(BACKEND_NAMES))],
        "device": "no_validation",
    }

    # ------------------------------------------------------------------ the fit driver
    def _hidden_sizes(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        if not hasattr(sizes, "__iter__"):
            sizes = [sizes]
        sizes = list(sizes)
        if any(isinstance(s, bool) or not isinstance(s, numbers.Integral) for s in sizes):
            raise ValueError(f"hidden_layer_sizes must hold integers, got {sizes}.")
        if np.any(np.array(sizes) <= 0):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        return [int(s) for s in sizes]

    def _fit(self, X: Any, y: Any, sample_weight: Any = None, incremental: bool = False):
        hidden = self._hidden_sizes()
        if incremental:
            self._refuse_early_stopping()
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, y = self._validate_input(host(X), host(y), incremental, reset=first_pass)
        n_features = X.shape[1]
        if sample_weight is not None:
            sample_weight = _check_sample_weight(host(sample_weight), X)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        self.n_outputs_ = y.shape[1]
        layer_units = [n_features, *hidden, self.n_outputs_]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(y, layer_units, X.dtype)
        net = self._network()
        if first_pass or not hasattr(self, "_best_weights"):
            self._best_weights = net.get_weights()
        if self.solver in STOCHASTIC_SOLVERS:
            for name, value in (("loss_curve_", []), ("_no_improvement_count", 0)):
                if not hasattr(self, name):
                    setattr(self, name, value)
            fit_stochastic(self, net, X, y, sample_weight, incremental)
        else:
            fit_lbfgs(self, net, X, y, sample_weight)
        self._sync_coefs(net)
        if not all(np.isfinite(w).all() for w in (*self.coefs_, *self.intercepts_)):
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may"
                " contain large values and need to be preprocessed."
            )
        return self

    def _initialize(self, y: np.ndarray, layer_units: list[int], dtype: Any) -> None:
        """scikit-learn's ``_initialize``: counters, output activation, Glorot-uniform
        weights drawn from ``random_state`` (the same draws as scikit-learn's MLP)."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._output_activation()
        coefs, intercepts = [], []
        factor = 2.0 if self.activation == "logistic" else 6.0
        for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            coef = self._random_state.uniform(-bound, bound, (fan_in, fan_out))
            intercept = self._random_state.uniform(-bound, bound, fan_out)
            coefs.append(coef.astype(dtype, copy=False))
            intercepts.append(intercept.astype(dtype, copy=False))
        self.coefs_, self.intercepts_ = coefs, intercepts
        self.__dict__.pop("network_", None)
        if self.solver in STOCHASTIC_SOLVERS:
            self.loss_curve_: list[float] = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_: list[float] | None = []
                self.best_validation_score_: float | None = -np.inf
                self.best_loss_: float | None = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    # ------------------------------------------------------------------ the network
    def _in_sync(self) -> bool:
        refs = self.__dict__.get("_synced")
        if refs is None or "network_" not in self.__dict__:
            return False
        coefs, intercepts = self.__dict__.get("coefs_"), self.__dict__.get("intercepts_")
        if coefs is not refs[0] or intercepts is not refs[1]:
            return False
        same = (a is b for a, b in zip((*coefs, *intercepts), refs[2]))
        return len(coefs) + len(intercepts) == len(refs[2]) and all(same)

    def _network(self) -> Sequential:
        """``network_``, rebuilt from ``coefs_``/``intercepts_`` only when those were
        replaced since the last fit (never per predict call)."""
        if self._in_sync():
            net = self.__dict__["network_"]
            if net.backend.name != self.backend or (
                self.device is not None and net.backend.device != self.device
            ):  # set_params(backend=...) after fit: move the network and the optimizer state
                schedule = self.__dict__.get("_optimizer")
                optimizer = None if schedule is None else schedule.optimizer
                net.to_backend(self.backend, self.device, optimizer=optimizer)
                self.__dict__.pop("_best_weights", None)
            return net
        coefs = [np.asarray(c) for c in self.coefs_]
        intercepts = [np.asarray(b) for b in self.intercepts_]
        dtype = coefs[0].dtype if coefs[0].dtype in (np.float32, np.float64) else np.dtype(float)
        hidden, output = HIDDEN[self.activation], OUTPUT[self.out_activation_]
        last = len(coefs) - 1
        layers = [
            Dense(int(W.shape[0]), int(W.shape[1]), output if i == last else hidden, init="zeros")
            for i, W in enumerate(coefs)
        ]
        with use_backend(self.backend, self.device) as backend:
            net = Sequential(layers, seed=0, dtype=dtype.name)
            for layer, W, b in zip(layers, coefs, intercepts):
                layer.W = asarray(np.ascontiguousarray(W.T), net.dtype, backend)
                layer.b = asarray(np.reshape(b, (-1,)), net.dtype, backend)
        self.network_ = net
        self._sync_coefs(net)
        return net

    def _sync_coefs(self, net: Sequential) -> None:
        """Host copies of the network's parameters as ``coefs_``/``intercepts_``."""
        params = net.parameters()
        self.coefs_ = [_read_only(np.array(to_numpy(p["W"]).T, order="C")) for p in params]
        self.intercepts_ = [_read_only(np.array(to_numpy(p["b"]))) for p in params]
        self._synced = (self.coefs_, self.intercepts_, (*self.coefs_, *self.intercepts_))

    def _loss_kind(self) -> str:
        if is_classifier(self):
            return "log_loss" if self.out_activation_ == "softmax" else "binary_log"
        return "poisson" if self.loss == "poisson" else "squared_error"

    def _loss_and_gradient(
        self, net, Xb, Tb, wb, w_sum: float, *, report: bool, penalty: bool = True
    ) -> tuple[float, list]:
        """scikit-learn's batch loss and gradient through ``net.loss_and_gradient``: the
        data term (see :mod:`._loss`) plus ``0.5 * alpha * ||W||^2 / w_sum``."""
        kind = self._loss_kind()
        loss, grads = net.loss_and_gradient(Xb, Tb, SklearnLoss(kind, wb), check_finite=False)
        if report:
            loss /= report_divisor(kind, self.n_outputs_)
        alpha = float(self.alpha)
        if penalty and alpha:
            xp, params = net.xp, net.parameters()
            squares = xp.stack([xp.sum(p["W"] * p["W"]) for p in params if p])
            loss += 0.5 * alpha * float(xp.sum(squares)) / w_sum
            scale = alpha / w_sum
            grads = [
                {"W": g["W"] + scale * p["W"], "b": g["b"]} if g else g
                for g, p in zip(grads, params)
            ]
        return loss, grads

    def _loss_grad_lbfgs(self, packed, X, y, sample_weight=None, *unused):
        """scikit-learn's ``_loss_grad_lbfgs``: the objective and its gradient at ``packed``
        (scikit-learn's parameter order), which also become the estimator's weights."""
        net = self._network()
        y = np.asarray(y, dtype=np.float64)
        T = DeviceRows(y.reshape(len(y), -1), net.backend, net.dtype)
        rows = DeviceRows(X, net.backend, net.dtype)
        value, grad = objective(np.asarray(packed, np.float64), self, net, rows, T, sample_weight)
        self._sync_coefs(net)
        return value, grad

    # ------------------------------------------------------------------ predictions
    def _validate_predict_input(self, X: Any) -> Any:
        return validate_data(
            self, host(X), accept_sparse=["csr", "csc"], dtype=(np.float64, np.float32), reset=False
        )

    def _forward_host(self, X: Any, net: Sequential | None = None) -> np.ndarray:
        """The model's output for validated ``X`` as NumPy ``(n_samples, n_outputs_)``,
        computed on the network's device (sparse X a block of rows at a time)."""
        net = net or self._network()
        rows = DeviceRows(X, net.backend, net.dtype)
        parts = [to_numpy(net.predict(Xb)) for _, _, Xb in rows.blocks()]
        out = parts[0] if len(parts) == 1 else np.concatenate(parts)
        if self.out_activation_ == "exp":
            out = np.exp(out)
        return out.astype(np.result_type(X.dtype, out.dtype), copy=False)

    def _score_network(self, net, X, y, sample_weight) -> float:
        """The validation score (accuracy or R^2) of early stopping; NaN when the
        predictions are not finite."""
        y_pred = self._predict_from_output(self._forward_host(X, net))
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return float(self._score_function(y, y_pred, sample_weight=sample_weight))

    def _refuse_early_stopping(self) -> None:
        """partial_fit cannot hold out a validation set: refused before anything changes."""
        if self.early_stopping and self.solver in STOCHASTIC_SOLVERS:
            raise ValueError("partial_fit does not support early_stopping=True")

    def _check_solver(self) -> bool:
        if self.solver not in STOCHASTIC_SOLVERS:
            raise AttributeError(
                "partial_fit is only available for stochastic optimizers. "
                f"{self.solver} is not stochastic."
            )
        return True

    def export_onnx(self, path: Any, **options: Any) -> Any:
        """Write the fitted model as an ONNX graph (``nnxp.onnx.export_onnx``; extra
        ``onnx``). The graph computes the network's output: the class probabilities of
        a multiclass model, the positive-class (or per-label) probabilities of a
        binary (multilabel) one, the predictions of a squared-error regressor. ``options``
        (``opset``, ...) go to ``nnxp.onnx.export_onnx``."""
        check_is_fitted(self)
        if self.out_activation_ == "exp":
            raise ValueError(
                "export_onnx: a Poisson regressor (loss='poisson') ends in exp, which the "
                "exported network does not hold yet; got out_activation_='exp'"
            )
        from ..onnx import export_onnx

        self._network()
        return export_onnx(self, path, **options)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
