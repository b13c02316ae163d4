"""The minibatch loop: shuffling, validation, history, early stopping, a progress bar.

The loop never reads an array back to the host inside a step: batch losses stay on the
device and are summed and read once per epoch. Recovery when something goes wrong between
two reads (a non-finite loss, a KeyboardInterrupt) replays the epoch from a snapshot taken
at its start, so the network ends with exactly the weights of the last good step.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .losses import Loss
from .optimizers import Optimizer, get_optimizer
from .random import Generator

Array = Any


@dataclass
class History:
    """What ``fit`` returns, as Keras's: ``history["loss"]`` holds one value per epoch, with
    ``val_loss``/``val_accuracy`` when validation data is given.

    Attributes
    ----------
    history : dict of str to list of float
    epoch : list of int
        The epochs that ran (0-based).
    stopped_epoch : int or None
        The epoch at which early stopping (or a callback) ended training.
    """

    history: dict[str, list[float]] = field(default_factory=dict)
    epoch: list[int] = field(default_factory=list)
    stopped_epoch: int | None = None

    def append(self, epoch: int, logs: dict[str, float]) -> None:
        """Record one epoch's logs."""
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)


@dataclass
class EarlyStopping:
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    Parameters
    ----------
    monitor : str, optional
        A history key; ``"val_loss"`` when validation data is given, else ``"loss"``.
    patience : int
    min_delta : float
    mode : {"auto", "min", "max"}
        ``auto`` maximises keys containing "accuracy" and minimises the others.
    restore_best_weights : bool
        Put back the weights of the best epoch when training ends.
    """

    monitor: str | None = None
    patience: int = 5
    min_delta: float = 0.0
    mode: str = "auto"
    restore_best_weights: bool = True

    def __post_init__(self) -> None:
        if (
            isinstance(self.patience, bool)
            or not isinstance(self.patience, int)
            or self.patience < 0
        ):
            raise ValueError(f"patience must be a non-negative integer, got {self.patience!r}")
        if self.mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {self.mode!r}")


def check_batch_size(batch_size: Any) -> int:
    """Return ``batch_size`` if it is a positive integer, else raise ``ValueError``."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


def _early_stopping(option: Any, has_validation: bool) -> EarlyStopping | None:
    if option is None or option is False:
        return None
    if option is True:
        option = EarlyStopping()
    elif isinstance(option, int):
        option = EarlyStopping(patience=option)
    elif isinstance(option, dict):
        option = EarlyStopping(**option)
    if not isinstance(option, EarlyStopping):
        raise TypeError(
            "early_stopping must be an EarlyStopping, an int patience, a dict or True, "
            f"got {option!r}"
        )
    if option.monitor is None:
        option = EarlyStopping(
            "val_loss" if has_validation else "loss",
            option.patience,
            option.min_delta,
            option.mode,
            option.restore_best_weights,
        )
    return option


def evaluate(net: Any, X: Array, T: Array, loss: Loss, mask: Array = None) -> dict[str, float]:
    """Loss and (for the classification losses) accuracy of prepared ``(X, T)``."""
    xp = net.xp
    Y = net._forward(X, False, mask)
    total, _ = loss.total_and_delta(net._output_layer().output(), T, xp, mask)
    logs = {"loss": float(total) / math.prod(X.shape[:-1])}
    if loss.name == "cross_entropy":
        hits = xp.argmax(Y, axis=-1) == xp.argmax(T, axis=-1)
        logs["accuracy"] = float(xp.mean(xp.astype(hits, Y.dtype)))
    elif loss.name == "binary_cross_entropy":
        hits = (Y > 0.5) == (T > 0.5)
        logs["accuracy"] = float(xp.mean(xp.astype(hits, Y.dtype)))
    return logs


class _Epoch:
    """One epoch's batches and the snapshot needed to replay them."""

    def __init__(
        self, net: Any, optimizer: Optimizer, rng: Generator, n: int, batch_size: int, shuffle: bool
    ) -> None:
        self.order = rng.permutation(n) if shuffle else None
        self.bounds = [(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
        self.weights = net.get_weights()
        self.optimizer_state = optimizer.snapshot()
        self.rng_state = net.rng.get_state()

    def batches(self, xp: Any, *data: Array):
        """Each batch's rows of every array in ``data`` (None stays None)."""
        for start, stop in self.bounds:
            if self.order is None:
                yield [None if a is None else a[start:stop, ...] for a in data]
            else:
                rows = self.order[start:stop]
                yield [None if a is None else xp.take(a, rows, axis=0) for a in data]


def _steps(net, optimizer, epoch: _Epoch, X, T, loss, mask):
    """Train on each batch of ``epoch`` in turn; yields each batch's summed loss."""
    params = net.parameters()
    for Xb, Tb, Mb in epoch.batches(net.xp, X, T, mask):
        total = net._loss_and_delta(Xb, Tb, loss, Mb, training=True)
        optimizer.step(params, net.gradients())
        yield total


def _replay(net, optimizer, epoch: _Epoch, n_steps: int, X, T, loss, mask) -> None:
    """Put the network back to the state after the first ``n_steps`` steps of ``epoch``."""
    net.set_weights(epoch.weights)
    optimizer.restore(epoch.optimizer_state)
    net.rng.set_state(epoch.rng_state)
    for _ in itertools.islice(_steps(net, optimizer, epoch, X, T, loss, mask), n_steps):
        pass


def _progress_bar(enabled: bool, total: int, desc: str) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, disable=None)  # disable=None: off when not a TTY


def fit(
    net: Any,
    X: Array,
    T: Array,
    *,
    loss: str | Loss,
    optimizer: str | Optimizer = "adam",
    epochs: int = 10,
    batch_size: int = 32,
    shuffle: bool = True,
    seed: int | None = None,
    validation_data: tuple | None = None,
    early_stopping: Any = None,
    progress: bool = True,
    callbacks: list[Callable[[int, dict], Any]] | None = None,
    mask: Array = None,
    check_finite: bool = True,
) -> History:
    """Train ``net`` on ``(X, T)`` with minibatches over the first axis.

    Parameters
    ----------
    net : Sequential
    X : array of shape (n_samples, ..., n_inputs)
    T : array of the output's shape, or integer class labels for cross_entropy
    loss : {"mse", "cross_entropy", "binary_cross_entropy"} or Loss
    optimizer : {"adam", "sgd", "adamw"} or Optimizer, default "adam"
    epochs : int >= 0
    batch_size : int >= 1
        The last batch of an epoch holds the remaining rows and may be smaller.
    shuffle : bool
        Reshuffle the rows every epoch with the backend's generator, on the device.
    seed : int, optional
        Seed for shuffling and dropout in this call; by default the network's generator
        (seeded by ``Sequential(seed=...)``) continues.
    validation_data : (X_val, T_val) or (X_val, T_val, mask_val), optional
        Evaluated after every epoch: ``val_loss`` and, for classification, ``val_accuracy``.
    early_stopping : EarlyStopping, int (patience), dict or True, optional
    progress : bool
        A tqdm bar per epoch (when tqdm is installed and output is a terminal).
    callbacks : list of callables ``f(epoch, logs)``, optional
        Called after each epoch with that epoch's logs; a callback returning True stops
        training.
    mask : array of the output's shape, optional
        Softmax output mask, batched with its rows.
    check_finite : bool
        Refuse NaN/inf in the data before training starts (``ValueError``); False trains
        on it anyway.

    Returns
    -------
    History
        Also kept as ``net.history``, complete up to the last finished epoch even when
        training ends with an exception.

    Raises
    ------
    FloatingPointError
        The loss became non-finite; the message names the epoch and batch. The network keeps
        the weights with which the last finite batch loss was computed.
    KeyboardInterrupt
        Re-raised after the network is put back to the weights (and optimizer state) of the
        last completed step; ``net.history`` holds the completed epochs.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
    check_batch_size(batch_size)
    X, T, loss, mask = net.prepare(X, T, loss, mask, check_finite)
    validation = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("validation_data must be (X_val, T_val) or (X_val, T_val, mask_val)")
        mask_val = validation_data[2] if len(validation_data) == 3 else None
        validation = net.prepare(*validation_data[:2], loss, mask_val, check_finite)
    optimizer = get_optimizer(optimizer)
    stopper = _early_stopping(early_stopping, validation is not None)
    callbacks = list(callbacks or [])
    if seed is not None:
        net.rng.reseed(seed)
    history = History()
    net.history = history
    best, best_weights, waited = math.inf, None, 0
    sign = 1.0
    monitor = "" if stopper is None else str(stopper.monitor)
    if stopper is not None and (
        stopper.mode == "max" or (stopper.mode == "auto" and "accuracy" in monitor)
    ):
        sign = -1.0
    n, n_samples = X.shape[0], math.prod(X.shape[:-1])
    xp = net.xp
    previous: tuple[_Epoch, int] | None = None
    for e in range(epochs):
        epoch = _Epoch(net, optimizer, net.rng, n, batch_size, shuffle)
        values = []
        bar = _progress_bar(progress, len(epoch.bounds), f"epoch {e + 1}/{epochs}")
        try:
            for total in _steps(net, optimizer, epoch, X, T, loss, mask):
                values.append(total)
                if bar is not None:
                    bar.update(1)
            total = float(xp.sum(xp.stack(values))) if values else 0.0  # the epoch's one read
            if bar is not None:
                bar.set_postfix(loss=f"{total / n_samples:.4g}")
        except KeyboardInterrupt:
            _replay(net, optimizer, epoch, len(values), X, T, loss, mask)
            raise
        finally:
            if bar is not None:
                bar.close()
        if not math.isfinite(total):
            bad = next(k for k, v in enumerate(values) if not math.isfinite(float(v)))
            if bad > 0:
                _replay(net, optimizer, epoch, bad - 1, X, T, loss, mask)
            elif previous is not None:
                _replay(net, optimizer, previous[0], previous[1] - 1, X, T, loss, mask)
            else:
                net.set_weights(epoch.weights)
            raise FloatingPointError(
                f"the loss became non-finite at epoch {e} (0-based), batch {bad}: lower the "
                f"learning rate or check the data; the network keeps the weights of the last "
                f"step with a finite loss"
            )
        previous = (epoch, len(epoch.bounds))
        logs = {"loss": total / n_samples}
        if validation is not None:
            val = evaluate(net, *validation)
            logs.update({f"val_{key}": value for key, value in val.items()})
        history.append(e, logs)
        stop = False
        for callback in callbacks:
            stop = bool(callback(e, dict(logs))) or stop
        if stopper is not None:
            if monitor not in logs:
                raise ValueError(
                    f"early_stopping monitors {monitor!r}, which is not among {sorted(logs)}"
                )
            current = sign * logs[monitor]
            if current < best - stopper.min_delta:
                best, waited = current, 0
                if stopper.restore_best_weights:
                    best_weights = net.get_weights()
            else:
                waited += 1
                stop = stop or waited > stopper.patience
        if stop:
            history.stopped_epoch = e
            break
    if best_weights is not None:
        net.set_weights(best_weights)
    return history
