"""The minibatch loop: shuffling, validation, history, early stopping, a progress bar.

The loop never reads an array back to the host inside a step: batch losses stay on the
device and are read once per epoch (and added up on the host in float64, so finite batch
losses never overflow). The rows' order of each epoch is drawn on the host from the seed
(one small transfer per epoch), so every backend sees the same batches.

Every step is the pure training step of :mod:`nnxp.step` (compiled with ``jax.jit``, and an
epoch as one ``lax.scan`` program, under ``compile=True`` on jax).

Recovery (:mod:`nnxp.recovery`): a non-finite loss replays the epoch from a snapshot taken
at its start, so the network ends with exactly the weights of the last step whose loss was
finite. Ctrl-C (SIGINT, in the main thread) is deferred to the end of the running step (the
running epoch, compiled): ``fit`` then raises ``KeyboardInterrupt`` at once, leaving the
weights and optimizer state after the last completed step (no replay). History and early
stopping live in :mod:`nnxp.callbacks`, re-exported here.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from typing import Any

from . import checks
from .backend import asarray, to_numpy
from .callbacks import EarlyStopping as EarlyStopping  # re-exported: nnxp.training's API
from .callbacks import History, _BestEpoch, _early_stopping, _history_keys
from .checks import sequence_rows
from .losses import Loss, counted_rows
from .optimizers import Optimizer, get_optimizer
from .random import host_generator
from .recovery import (
    _build_step,
    _DeferredInterrupt,
    _Epoch,
    _final_weights_finite,
    _replay,
    _restore_last_finite,
    _steps,
)

Array = Any


def check_batch_size(batch_size: Any) -> int:
    """Return ``batch_size`` as an int if it is a positive integer (NumPy integers too),
    else raise ``ValueError``."""
    return checks.integer("batch_size", batch_size, 1)


# ---------------------------------------------------------------------- optimizer ownership
def check_optimizer(net: Any, optimizer: Optimizer) -> None:
    """Refuse an optimizer that belongs to other parameters: one used with another network,
    or with this one before ``to_backend`` moved it without ``optimizer=``."""
    owner = getattr(optimizer, "_nnxp_owner", None)
    if owner is not None:
        ref, placement = owner
        if ref() is not net:
            raise ValueError(
                f"this {type(optimizer).__name__} belongs to the parameters of another network "
                f"(its state holds their moments and step count); create a new optimizer for "
                f"this network"
            )
        if placement != net._placement:
            raise ValueError(
                f"this {type(optimizer).__name__}'s state stayed behind when the network moved "
                f"with to_backend; pass optimizer= to to_backend to move it too, or create a "
                f"new optimizer"
            )
        return
    state = getattr(optimizer, "state", None)
    if state is None:
        return
    params = net.parameters()
    shapes = [{k: tuple(v.shape) for k, v in p.items()} for p in params]
    try:
        theirs = [{k: tuple(s[next(iter(s))].shape) for k, s in layer.items()} for layer in state]
    except (AttributeError, StopIteration, TypeError):
        theirs = None
    if theirs != shapes:
        raise ValueError(
            f"this {type(optimizer).__name__} holds state for parameters of other shapes than "
            f"this network's; create a new optimizer for this network"
        )


def claim_optimizer(net: Any, optimizer: Optimizer) -> None:
    """Mark ``optimizer`` as belonging to ``net``'s parameters (where they are now)."""
    optimizer._nnxp_owner = (weakref.ref(net), net._placement)  # type: ignore[attr-defined]


# ---------------------------------------------------------------------- evaluation
def evaluate(
    net: Any, X: Array, T: Array, loss: Loss, mask: Array = None, sequence_mask: Array = None
) -> dict[str, float]:
    """Loss and (for the classification losses) accuracy of prepared ``(X, T)``.

    Rows with every output masked count in neither, nor do the padded timesteps of an
    output with the time axis under a sequence mask (given, or the first layer's
    ``compute_mask``). Runs on twins of the layers, so the layers' own caches are not
    touched.
    """
    xp = net.xp
    if sequence_mask is None and hasattr(net.layers[0], "compute_mask"):
        sequence_mask = net.layers[0].compute_mask(X)
    Y, total, count = net._inference_loss(X, T, loss, mask, sequence_mask)
    logs = {"loss": float(total) / max(float(count), 1.0)}
    if loss.name in ("cross_entropy", "binary_cross_entropy"):
        if loss.name == "cross_entropy":
            hits = xp.argmax(Y, axis=-1) == xp.argmax(T, axis=-1)
        else:
            hits = (Y > 0.5) == (T > 0.5)
        rows = counted_rows(xp, mask, sequence_rows(sequence_mask, tuple(Y.shape)))
        if rows is not None:
            counted = xp.sum(xp.astype(rows, Y.dtype))
            right = xp.sum(xp.astype(hits & rows, Y.dtype))
            logs["accuracy"] = float(right) / max(float(counted), 1.0)
        else:
            logs["accuracy"] = float(xp.mean(xp.astype(hits, Y.dtype)))
    return logs


def _progress_bar(enabled: bool, epochs: int) -> Any:
    """One bar for the whole fit, epochs as its unit (off when not a terminal)."""
    if not enabled or epochs == 0:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=epochs, desc="fit", unit="epoch", disable=None)


def _host_sum(values: list, xp: Any, on_host: bool = False) -> tuple[float, list[float]]:
    """The float64 host sum of device scalars, or of 1-d arrays of them (one transfer),
    and each value in order; ``on_host`` (NumPy): 0-d values are read one by one, which
    costs a tenth of stacking them."""
    if not values:
        return 0.0, []
    scalars = all(isinstance(v, int) or v.ndim == 0 for v in values)
    if scalars and (on_host or all(isinstance(v, int) for v in values)):
        host = [float(v) for v in values]
    elif scalars and not any(isinstance(v, int) for v in values):
        host = [float(v) for v in to_numpy(xp.stack(values)).tolist()]
    else:  # a scanned epoch: one array per program (a count may stay an int)
        parts = [xp.reshape(xp.asarray(v), (-1,)) for v in values]
        dtype = xp.result_type(*parts)
        parts = [xp.astype(v, dtype) for v in parts]
        host = [float(v) for v in to_numpy(xp.concat(parts)).tolist()]
    return math.fsum(host), host


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
    sequence_mask: Array = None,
    check_finite: bool = True,
    compile: bool = False,
) -> History:
    """Train ``net`` on ``(X, T)`` with minibatches over the first axis.

    Parameters
    ----------
    net : Sequential
    X : array of shape (n_samples, ..., n_inputs)
    T : array of the output's shape, or integer class labels for cross_entropy
    loss : {"mse", "cross_entropy", "binary_cross_entropy"} or Loss
    optimizer : {"adam", "sgd", "adamw"} or Optimizer, default "adam"
        An Optimizer instance belongs to the network it is first used with.
    epochs : int >= 0
    batch_size : int >= 1
        The last batch of an epoch holds the remaining rows and may be smaller.
    shuffle : bool
        Reshuffle the rows every epoch. The order is drawn on the host (NumPy) from the seed,
        so the same seed gives the same batches on every backend.
    seed : int, optional
        Seeds this call's shuffling (a fresh host generator) and dropout (the backend
        generator); by default the network's generators (``net.shuffle_rng``, ``net.rng``,
        seeded by ``Sequential(seed=...)``) continue.
    validation_data : tuple or dict, optional
        ``(X_val, T_val)``, ``(X_val, T_val, mask_val)`` or ``(X_val, T_val, mask_val,
        sequence_mask_val)`` (``mask_val`` may be None), or a dict with keys ``"X"``,
        ``"T"`` and optionally ``"mask"`` and ``"sequence_mask"`` (the names of this
        function's arguments). Evaluated after every epoch: ``val_loss`` and, for
        classification, ``val_accuracy``. Without ``sequence_mask_val`` the first layer's
        ``compute_mask`` (``Embedding(mask_zero=True)``) gives it, as for the training data.
    early_stopping : EarlyStopping, int (patience), dict or True, optional
        Its ``monitor`` must be a key the history will hold (checked before training).
    progress : bool
        One tqdm bar for the whole fit (epochs; latest loss and validation metrics), when
        tqdm is installed and output is a terminal.
    callbacks : list of callables ``f(epoch, logs)``, optional
        Called after each epoch with that epoch's logs; a callback returning True stops
        training.
    mask : array of the output's shape, optional
        Softmax output mask, batched with its rows.
    sequence_mask : array of shape (n_samples, n_steps), optional
        Bool or 0/1, True on the real timesteps of variable-length sequences; batched with
        its rows and given to every layer that takes it (``takes_sequence_mask``: the
        recurrent layers carry their state over padded steps, attention ignores padded
        keys, pooling averages real steps). For an output with the time axis ``(N, T, K)``
        the loss is the mean over real timesteps only. Default: the first layer's
        ``compute_mask`` of each batch (``Embedding(mask_zero=True)``: ``tokens != 0``).
    check_finite : bool
        Refuse NaN/inf in the data before training starts (``ValueError``); False trains
        on it anyway.
    compile : bool
        jax backend only (elsewhere a ``ValueError`` says so, before anything changes):
        compile the training step with ``jax.jit`` and run each epoch's equal-size batches
        as one ``jax.lax.scan`` program, plus one call for the smaller last batch. The
        first epoch traces and compiles (seconds); later ones dispatch the compiled
        programs. Results equal ``compile=False`` to rounding, and dropout draws fresh
        masks at every step. A Ctrl-C then takes effect between epochs (after the running
        epoch's programs), and a non-finite loss is still located at its batch and the
        state of the last finite one restored (by replaying that epoch step by step).

    Returns
    -------
    History
        Also kept as ``net.history``, complete up to the last finished epoch even when
        training ends with an exception.

    Raises
    ------
    FloatingPointError
        The loss (or the weights after the last step) became non-finite; the message names
        the epoch and batch. The network and optimizer keep the state with which the last
        finite batch loss was computed (the state before the call if there was none).
    KeyboardInterrupt
        Raised right after the step that was running (with ``compile=True``: the epoch
        that was running), with the weights and optimizer state after the last completed
        step; ``net.history`` holds the completed epochs.
    """
    epochs = checks.integer("epochs", epochs)
    batch_size = check_batch_size(batch_size)
    if seed is not None:
        seed = checks.integer("seed", seed)
    optimizer = get_optimizer(optimizer)
    check_optimizer(net, optimizer)
    if compile and net.backend.name != "jax":
        raise ValueError(
            f"fit(compile=True) needs the jax backend (nnxp.set_backend('jax') before building "
            f"the network); this network computes with {net.backend.name}, which nnxp does "
            f"not compile: use compile=False"
        )
    X, T, loss, mask, sequence_mask = net.prepare_sequences(
        X, T, loss, mask, sequence_mask, check_finite
    )
    assert isinstance(loss, Loss)
    pure = _build_step(net, loss, optimizer, compile)
    masks = (mask, sequence_mask)
    validation = None
    if validation_data is not None:
        Xv, Tv, Mv, Sv = _validation_parts(validation_data)
        validation = net.prepare_sequences(Xv, Tv, loss, Mv, Sv, check_finite)
    stopper = _early_stopping(early_stopping, validation is not None)
    keys = _history_keys(loss, validation is not None)
    if stopper is not None and stopper.monitor not in keys:
        raise ValueError(
            f"early_stopping monitors {stopper.monitor!r}, which this fit never records: its "
            f"history holds {keys}"
            + ("" if validation is not None else " (val_* keys need validation_data)")
        )
    callbacks = list(callbacks or [])
    claim_optimizer(net, optimizer)
    if seed is not None:
        net.rng.reseed(seed)
        order_rng = host_generator(seed)
    else:
        order_rng = net.shuffle_rng
    history = History()
    net.history = history
    best = _BestEpoch(stopper)
    n = X.shape[0]
    previous: tuple[_Epoch, int] | None = None
    bar = _progress_bar(progress, epochs)
    deferred = _DeferredInterrupt()
    try:
        with deferred as interrupt:
            for e in range(epochs):
                order = None
                if shuffle:
                    order = asarray(order_rng.permutation(n), backend=net.backend)
                epoch = _Epoch(net, optimizer, order, n, batch_size)
                totals, counts, done = [], [], 0
                steps = _steps(net, optimizer, pure, epoch, X, T, masks, interrupt, compile)
                try:
                    for total, count, k in steps:
                        totals.append(total)
                        counts.append(count)
                        done += k
                except KeyboardInterrupt:
                    if interrupt is None or not interrupt.is_set():
                        # raised inside a step (not a deferred Ctrl-C): undo the partial step
                        _replay(net, optimizer, pure, epoch, done, X, T, masks)
                    raise
                on_host = net.backend.name == "numpy"
                total, batch_totals = _host_sum(totals, net.xp, on_host)  # the epoch's one read
                count, _ = _host_sum(counts, net.xp, on_host)
                if not math.isfinite(total):
                    bad = next((k for k, v in enumerate(batch_totals) if not math.isfinite(v)), 0)
                    _restore_last_finite(net, optimizer, pure, epoch, previous, bad, X, T, masks)
                    raise FloatingPointError(
                        f"the loss became non-finite at epoch {e} (0-based), batch {bad}: "
                        f"lower the learning rate or check the data; the network keeps the "
                        f"weights of the last step with a finite loss"
                    )
                previous = (epoch, len(epoch.bounds))
                logs = {"loss": total / max(count, 1.0)}
                if validation is not None:
                    val = evaluate(net, *validation)
                    logs.update({f"val_{key}": value for key, value in val.items()})
                history.append(e, logs)
                if bar is not None:
                    bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items()}, refresh=False)
                    bar.update(1)
                stop = False
                for callback in callbacks:
                    stop = bool(callback(e, dict(logs))) or stop
                stop = best.update(net, logs) or stop
                if interrupt is not None and interrupt.is_set():
                    raise KeyboardInterrupt
                if stop:
                    history.stopped_epoch = e
                    break
            if best.weights is not None:
                net.set_weights(best.weights)
            elif previous is not None and not _final_weights_finite(net):
                epoch, n_steps = previous
                _replay(net, optimizer, pure, epoch, n_steps - 1, X, T, masks)
                raise FloatingPointError(
                    f"the last step (epoch {history.epoch[-1]}, batch {n_steps - 1}) made the "
                    f"weights non-finite: lower the learning rate or check the data; the "
                    f"network keeps the weights before that step"
                )
            if interrupt is not None and interrupt.is_set():
                raise KeyboardInterrupt
    finally:
        if bar is not None:
            bar.close()
    return history


_VALIDATION_KEYS = ("X", "T", "mask", "sequence_mask")


def _validation_parts(data: Any) -> tuple:
    """``(X_val, T_val, mask_val, sequence_mask_val)`` from fit's ``validation_data``."""
    if isinstance(data, dict):
        unknown = set(data) - set(_VALIDATION_KEYS)
        if unknown or not {"X", "T"} <= set(data):
            raise ValueError(
                f"validation_data as a dict needs keys 'X' and 'T' and may have 'mask' and "
                f"'sequence_mask', got keys {sorted(map(str, data))}"
            )
        return tuple(data.get(key) for key in _VALIDATION_KEYS)
    if not isinstance(data, (tuple, list)) or len(data) not in (2, 3, 4):
        raise ValueError(
            "validation_data must be (X_val, T_val), (X_val, T_val, mask_val), (X_val, T_val, "
            "mask_val, sequence_mask_val) or a dict with keys 'X', 'T', 'mask', "
            "'sequence_mask'"
        )
    return (*data, *(None,) * (4 - len(data)))
