"""What ``fit`` records and when it stops: :class:`History`, :class:`EarlyStopping` and the
bookkeeping of the best epoch (``nnxp.distributed`` uses the same)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from . import checks
from .losses import Loss


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
        self.patience = checks.integer("patience", self.patience)
        self.min_delta = checks.real("min_delta", self.min_delta)
        if self.monitor is not None and not isinstance(self.monitor, str):
            raise ValueError(f"monitor must be a history key (a str), got {self.monitor!r}")
        if self.mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {self.mode!r}")


def _early_stopping(option: Any, has_validation: bool) -> EarlyStopping | None:
    if option is None or option is False:
        return None
    if option is True:
        option = EarlyStopping()
    elif isinstance(option, int) and not isinstance(option, bool):
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


def _history_keys(loss: Loss, has_validation: bool) -> list[str]:
    """The keys every epoch's logs will hold."""
    keys = ["loss"]
    if has_validation:
        keys.append("val_loss")
        if loss.name in ("cross_entropy", "binary_cross_entropy"):
            keys.append("val_accuracy")
    return keys


class _BestEpoch:
    """Early stopping's bookkeeping over the epochs of one fit: the best value of the
    monitored key so far, the epochs waited since, and the best epoch's weights."""

    def __init__(self, stopper: EarlyStopping | None) -> None:
        self.stopper = stopper
        self.best, self.waited, self.weights = math.inf, 0, None
        self.monitor = "" if stopper is None else str(stopper.monitor)
        self.sign = 1.0
        if stopper is not None and (
            stopper.mode == "max" or (stopper.mode == "auto" and "accuracy" in self.monitor)
        ):
            self.sign = -1.0

    def update(self, net: Any, logs: dict[str, float]) -> bool:
        """Take one epoch's logs; True when patience has run out."""
        stopper = self.stopper
        if stopper is None:
            return False
        current = self.sign * logs[self.monitor]
        if current < self.best - stopper.min_delta:
            self.best, self.waited = current, 0
            if stopper.restore_best_weights:
                self.weights = net.get_weights()
            return False
        self.waited += 1
        return self.waited > stopper.patience
