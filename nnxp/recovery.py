"""The steps of one epoch and what puts the network back when they go wrong.

:class:`_Epoch` holds an epoch's batches and a snapshot of its start; :func:`_steps` runs
them through the training step (``nnxp.step``); :func:`_replay` re-runs the first steps
from the snapshot, which is how a non-finite loss or an interrupt inside a step lands on the
state after the last good step; :class:`_DeferredInterrupt` moves a Ctrl-C to the end of the
running step.
"""

from __future__ import annotations

import itertools
import math
import signal
import threading
from typing import Any

from .losses import Loss
from .optimizers import Optimizer
from .step import ObjectStep, Step, build_step, overrides_step

try:  # the C functions under ``signal``, whose wrappers turn each handler into an enum and
    # back through a caught ValueError: 16 us of every fit call against 1 us
    from _signal import getsignal as _getsignal  # type: ignore[import-not-found]
    from _signal import signal as _setsignal  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - an interpreter without the _signal module
    from signal import getsignal as _getsignal
    from signal import signal as _setsignal

Array = Any


def _build_step(net: Any, loss: Loss, optimizer: Optimizer, compile: bool) -> Any:
    """fit's step: the pure step (``nnxp.step``), whose update writes into the arrays it is
    given where the library allows, as the optimizer's object API does (fit owns them, and
    its snapshots are copies); through the object API for an optimizer that overrides
    ``step``."""
    if not overrides_step(optimizer):
        if compile:
            return _compiled_step(net, loss, optimizer)
        return build_step(
            net, loss, optimizer, compile=False, donate=True, with_count=True, borrow=False
        )
    if compile:
        raise ValueError(
            f"fit(compile=True) needs the optimizer's functional form (update); this "
            f"{type(optimizer).__name__} overrides step, which cannot be compiled: use "
            f"compile=False"
        )
    return ObjectStep(net, loss, optimizer)


def _settings(obj: Any) -> tuple:
    """The plain settings of ``obj`` (its bool/int/float/str attributes): what a trace bakes
    in as constants, so a changed one (a dropout rate, a flag) compiles anew."""
    plain = (bool, int, float, str, type(None))
    items = getattr(obj, "__dict__", {}).items()
    return (type(obj), *sorted((k, v) for k, v in items if isinstance(v, plain)))


def _compiled_step(net: Any, loss: Loss, optimizer: Optimizer) -> Step:
    """fit's compiled step for ``(net, loss, optimizer)``, kept on the optimizer (which
    belongs to ``net``) and reused while the network's layers, placement and settings, the
    loss and the optimizer's settings are unchanged: fit called one epoch at a time (as
    ``partial_fit`` and benchmarks do) then traces and compiles once, not at every call."""
    fingerprint = (
        optimizer.get_config(),
        _settings(loss),
        net._placement,
        tuple((id(layer), _settings(layer)) for layer in net.layers),
    )
    cached = getattr(optimizer, "_nnxp_compiled", None)
    if cached is not None and cached[1].net is net and cached[0] == fingerprint:
        return cached[1]
    step = build_step(net, loss, optimizer, compile=True, with_count=True)
    optimizer._nnxp_compiled = (fingerprint, step)  # type: ignore[attr-defined]
    return step


class _Epoch:
    """One epoch's batches and the snapshot needed to replay them."""

    def __init__(
        self, net: Any, optimizer: Optimizer, order: Array, n: int, batch_size: int
    ) -> None:
        self.order = order
        self.bounds = [(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
        self.weights = net.get_weights()
        self.optimizer_state = optimizer.snapshot()
        self.rng_state = net.rng.get_state()

    def batches(self, xp: Any, X: Array, T: Array, M: Array, S: Array):
        """Each batch's rows of ``X``, ``T`` and the masks ``M`` and ``S`` (None stays
        None)."""
        order = self.order
        for start, stop in self.bounds:
            if order is None:
                yield (
                    X[start:stop, ...],
                    T[start:stop, ...],
                    None if M is None else M[start:stop, ...],
                    None if S is None else S[start:stop, ...],
                )
            else:
                rows = order[start:stop]
                yield (
                    xp.take(X, rows, axis=0),
                    xp.take(T, rows, axis=0),
                    None if M is None else xp.take(M, rows, axis=0),
                    None if S is None else xp.take(S, rows, axis=0),
                )

    def stacked(self, xp: Any, *data: Array):
        """The rows of every array in ``data`` (None stays None) in this epoch's order, for
        a scanned epoch: yields ``(arrays, k)``, first the ``k`` equal-size batches stacked
        on a new first axis, then the smaller last batch, if any, with ``k = 0``."""
        if not self.bounds:
            return
        n, size = self.bounds[-1][1], self.bounds[0][1]
        k = n // size
        if self.order is not None:
            data = tuple(None if a is None else xp.take(a, self.order, axis=0) for a in data)
        if k:
            yield (
                [
                    None if a is None else xp.reshape(a[: k * size, ...], (k, size, *a.shape[1:]))
                    for a in data
                ],
                k,
            )
        if k * size < n:
            yield [None if a is None else a[k * size :, ...] for a in data], 0

    def restore(self, net: Any, optimizer: Optimizer) -> None:
        """Back to the state at the start of the epoch."""
        net.set_weights(self.weights)
        optimizer.restore(self.optimizer_state)
        net.rng.set_state(self.rng_state)


def _steps(net, optimizer, pure: Step, epoch: _Epoch, X, T, masks, interrupt=None, scan=False):
    """Train on each batch of ``epoch`` through the pure step ``pure``; yields ``(total,
    count, k)`` after every ``k`` steps (``k`` is 1 unless ``scan``).

    ``masks`` is ``(output mask, sequence mask)`` (either may be None), batched with the
    rows. The layers hold the parameters after each completed step; the optimizer and (on
    jax) the generator get the threaded state back when the loop ends, however it ends. A
    deferred Ctrl-C (``interrupt`` set) ends the loop right after the running step. With
    ``scan`` (a compiled step), the equal-size batches run as one ``lax.scan`` program and
    the remainder batch as one more call: ``total`` and ``count`` are then arrays with one
    value per batch, and a Ctrl-C waits for the epoch's end."""
    xp = net.xp
    layers = net.layers
    params = net.parameters()
    state = optimizer.get_functional_state(params)
    key = net.rng.get_state() if net.backend.name == "jax" else None
    call = pure if pure.compiled else pure.run_eager
    try:
        if scan:
            for (Xs, Ts, Ms, Ss), k in epoch.stacked(xp, X, T, *masks):
                if k:
                    params, state, key, (total, count) = pure.epoch(
                        params, state, key, Xs, Ts, Ms, Ss
                    )
                else:
                    params, state, key, (total, count) = pure(params, state, key, Xs, Ts, Ms, Ss)
                yield total, count, k or 1
        else:
            for Xb, Tb, Mb, Sb in epoch.batches(xp, X, T, *masks):
                params, state, key, (total, count) = call(params, state, key, Xb, Tb, Mb, Sb)
                yield total, count, 1
                if interrupt is not None and interrupt.is_set():
                    raise KeyboardInterrupt
    finally:  # nothing reads the layers' parameters between steps: put them back once
        for layer, p in zip(layers, params):
            layer.params = p
        optimizer.set_functional_state(state)  # int(step): one host read, at the end
        if key is not None:
            net.rng.set_state(key)


def _replay(net, optimizer, pure: Step, epoch: _Epoch, n_steps: int, X, T, masks) -> None:
    """Put the network back to the state after the first ``n_steps`` steps of ``epoch``
    (step by step, with the same step); a second Ctrl-C while this runs restarts it rather
    than leaving a half-restored state."""
    while True:
        try:
            epoch.restore(net, optimizer)
            it = _steps(net, optimizer, pure, epoch, X, T, masks)
            try:
                for _ in itertools.islice(it, n_steps):
                    pass
            finally:
                it.close()
            return
        except KeyboardInterrupt:
            continue


def _restore_last_finite(net, optimizer, pure, epoch, previous, bad, X, T, masks) -> None:
    """The state with which the last finite batch loss was computed: ``bad - 1`` steps into
    this epoch, the last step but one of the previous epoch, or the state before the call."""
    if bad > 0:
        _replay(net, optimizer, pure, epoch, bad - 1, X, T, masks)
    elif previous is not None:
        _replay(net, optimizer, pure, previous[0], previous[1] - 1, X, T, masks)
    else:
        epoch.restore(net, optimizer)


class _Flag:
    """Set by the SIGINT handler, read by the loop (both in the main thread: no lock)."""

    __slots__ = ("raised",)

    def __init__(self) -> None:
        self.raised = False

    def set(self) -> None:
        self.raised = True

    def is_set(self) -> bool:
        return self.raised


class _DeferredInterrupt:
    """While active (main thread, default SIGINT handler only), Ctrl-C sets a flag that the
    loop checks after each step instead of raising in the middle of one."""

    def __init__(self) -> None:
        self.flag = _Flag()
        self.previous: Any = None

    def __enter__(self) -> _Flag | None:
        if threading.current_thread() is not threading.main_thread():
            return None
        try:
            if _getsignal(signal.SIGINT) is not signal.default_int_handler:
                return None
            self.previous = _setsignal(signal.SIGINT, lambda *_: self.flag.set())
        except (ValueError, OSError):  # not the main interpreter, no signals here
            return None
        return self.flag

    def __exit__(self, *exc: Any) -> None:
        if self.previous is not None:
            _setsignal(signal.SIGINT, self.previous)


def _final_weights_finite(net: Any) -> bool:
    """Whether every parameter is finite, with one read: ``sum(p * 0)`` is 0 for finite
    ``p`` and NaN as soon as one entry is NaN or inf (and never overflows)."""
    xp = net.xp
    zeros = [xp.sum(p * 0.0) for params in net.parameters() for p in params.values()]
    return not zeros or math.isfinite(float(sum(zeros[1:], zeros[0])))
