"""The ``sgd``/``adam`` solvers: scikit-learn's ``_fit_stochastic`` epoch loop over an nnxp
network, stepped by nnxp's optimizers."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from ..optimizers import SGD, Adam
from ._data import DeviceRows, device_index


class Schedule:
    """scikit-learn's optimizer face (``learning_rate``, ``iteration_ends``,
    ``trigger_stopping``) over an nnxp optimizer, whose ``lr`` holds the current rate.

    Parameters
    ----------
    optimizer : nnxp.SGD or nnxp.Adam
    schedule : {"constant", "invscaling", "adaptive"}
        Only used by ``sgd``, as in scikit-learn.
    learning_rate_init, power_t : float
    """

    def __init__(self, optimizer: Any, schedule: str, learning_rate_init: float, power_t: float):
        self.optimizer = optimizer
        self.schedule = schedule if isinstance(optimizer, SGD) else "constant"
        self.learning_rate_init = float(learning_rate_init)
        self.power_t = float(power_t)

    @property
    def learning_rate(self) -> float:
        """The current learning rate (the nnxp optimizer's ``lr``)."""
        return self.optimizer.lr

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self.optimizer.lr = float(value)

    def iteration_ends(self, time_step: int) -> None:
        """After each epoch: ``invscaling`` sets ``learning_rate_init / (t + 1) ** power_t``."""
        if self.schedule == "invscaling":
            self.learning_rate = self.learning_rate_init / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg: str, verbose: Any) -> bool:
        """True to stop; ``adaptive`` divides the rate by 5 instead, until it is <= 1e-6."""
        if self.schedule != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(f"{msg} Setting learning rate to {self.learning_rate:f}")
        return False


def _shuffle(index: np.ndarray, random_state: np.random.RandomState) -> np.ndarray:
    """``sklearn.utils.shuffle(index, random_state=random_state)``: the same draws and
    result, without its per-call validation (which costs as much as a small epoch)."""
    order = np.arange(index.shape[0])
    random_state.shuffle(order)
    return index[order]


def make_schedule(est: Any) -> Schedule:
    """The optimizer ``est.solver`` names, with the estimator's hyperparameters."""
    lr = float(est.learning_rate_init)
    optimizer: SGD | Adam
    if est.solver == "sgd":
        momentum = float(est.momentum)
        nesterov = bool(est.nesterovs_momentum) and momentum > 0
        optimizer = SGD(lr, momentum=momentum, nesterov=nesterov)
    else:
        optimizer = Adam(lr, betas=(float(est.beta_1), float(est.beta_2)), eps=float(est.epsilon))
    return Schedule(optimizer, est.learning_rate, lr, est.power_t)


def fit_stochastic(
    est: Any, net: Any, X: Any, y: np.ndarray, sample_weight: Any, incremental: bool
) -> None:
    """Train ``net`` in place for up to ``est.max_iter`` epochs (one when ``incremental``),
    updating the estimator's ``n_iter_``, ``t_``, ``loss_``, ``loss_curve_`` and stopping
    state exactly as scikit-learn's ``_fit_stochastic`` does."""
    if not incremental or not hasattr(est, "_optimizer"):
        est._optimizer = make_schedule(est)
    if est.early_stopping and incremental:
        raise ValueError("partial_fit does not support early_stopping=True")
    early_stopping = est.early_stopping
    X_val = y_val = sw_val = None
    X_train, y_train, sw_train = X, y, sample_weight
    if early_stopping:
        stratify = y if est._stratify_early_stopping() else None
        arrays = [X, y] if sample_weight is None else [X, y, sample_weight]
        parts = train_test_split(
            *arrays,
            random_state=est._random_state,
            test_size=est.validation_fraction,
            stratify=stratify,
        )
        X_train, X_val, y_train, y_val = parts[:4]
        if sample_weight is not None:
            sw_train, sw_val = parts[4:]
        if X_val.shape[0] < 2:
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' "
                "or the size of your dataset."
            )
        y_val = est._validation_targets(y_val)

    n_samples = X_train.shape[0]
    if est.batch_size == "auto":
        batch_size = min(200, n_samples)
    else:
        if est.batch_size > n_samples:
            warnings.warn(
                "Got `batch_size` less than 1 or larger than sample size. "
                "It is going to be clipped",
                stacklevel=4,
            )
        batch_size = int(np.clip(est.batch_size, 1, n_samples))

    backend, dtype = net.backend, net.dtype
    rows = DeviceRows(X_train, backend, dtype)
    targets = DeviceRows(np.asarray(y_train, dtype=np.float64), backend, dtype)
    weights = None
    if sw_train is not None:
        weights = DeviceRows(np.asarray(sw_train, dtype=np.float64)[:, None], backend, dtype)
    optimizer = est._optimizer.optimizer
    sample_idx = np.arange(n_samples, dtype=int)
    try:
        est.n_iter_ = 0
        for _ in range(est.max_iter):
            order = host_order = None
            if est.shuffle:
                sample_idx = _shuffle(sample_idx, est._random_state)
                host_order, order = sample_idx, device_index(sample_idx, backend)
            accumulated = 0.0
            for start in range(0, n_samples, batch_size):  # sklearn's gen_batches
                stop = min(start + batch_size, n_samples)
                batch = slice(start, stop)
                Xb = rows.rows(start, stop, order, host_order)
                Tb = targets.rows(start, stop, order, host_order)
                wb, w_sum = None, float(stop - start)
                if weights is not None:
                    wb = weights.rows(start, stop, order, host_order)
                    index = batch if host_order is None else host_order[batch]
                    w_sum = float(np.sum(sw_train[index]))
                batch_loss, grads = est._loss_and_gradient(net, Xb, Tb, wb, w_sum, report=True)
                accumulated += batch_loss * (stop - start)
                optimizer.step(net.parameters(), grads)

            est.n_iter_ += 1
            est.loss_ = accumulated / n_samples
            est.t_ += n_samples
            est.loss_curve_.append(est.loss_)
            if est.verbose:
                print(f"Iteration {est.n_iter_}, loss = {est.loss_:.8f}")
            _update_no_improvement_count(est, net, early_stopping, X_val, y_val, sw_val)
            est._optimizer.iteration_ends(est.t_)

            if est._no_improvement_count > est.n_iter_no_change:
                what = "Validation score" if early_stopping else "Training loss"
                msg = (
                    f"{what} did not improve more than tol={est.tol:f} for "
                    f"{est.n_iter_no_change} consecutive epochs."
                )
                if est._optimizer.trigger_stopping(msg, est.verbose):
                    break
                est._no_improvement_count = 0

            if incremental:
                break
            if est.n_iter_ == est.max_iter:
                warnings.warn(
                    f"Stochastic Optimizer: Maximum iterations ({est.max_iter}) reached and the "
                    "optimization hasn't converged yet.",
                    ConvergenceWarning,
                    stacklevel=4,
                )
    except KeyboardInterrupt:
        warnings.warn("Training interrupted by user.", stacklevel=4)

    if early_stopping:
        net.set_weights(est._best_weights)


def _update_no_improvement_count(est, net, early_stopping, X_val, y_val, sw_val) -> None:
    if early_stopping:
        score = est._score_network(net, X_val, y_val, sw_val)
        est.validation_scores_.append(score)
        if est.verbose:
            print(f"Validation score: {est.validation_scores_[-1]:f}")
        last = est.validation_scores_[-1]
        if last < est.best_validation_score_ + est.tol:
            est._no_improvement_count += 1
        else:
            est._no_improvement_count = 0
        if last > est.best_validation_score_:
            est.best_validation_score_ = last
            est._best_weights = net.get_weights()
    else:
        if est.loss_curve_[-1] > est.best_loss_ - est.tol:
            est._no_improvement_count += 1
        else:
            est._no_improvement_count = 0
        if est.loss_curve_[-1] < est.best_loss_:
            est.best_loss_ = est.loss_curve_[-1]
