"""The epoch loop of one rank: this rank's rows of each global batch, one allreduce per step,
checkpoints, validation, early stopping and callbacks (the same decisions on every rank).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..backend import asarray, to_numpy
from ..training import EarlyStopping
from .buffers import CLASSIFICATION, _failure, _local_sums, _unflatten, _validation_sums
from .checkpoint import _Run, _write_checkpoint
from .comm import _mpi, _raise_if_failed


def _step_seed(seed: int, rank: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1)[0])


class _Shard:
    """This rank's rows of every global batch of one epoch (indices on the device)."""

    def __init__(self, order: np.ndarray, offset: int, n_local: int, batch_size: int, backend):
        positions = np.flatnonzero((order >= offset) & (order < offset + n_local))
        self.rows = asarray(order[positions] - offset, backend=backend)  # once per epoch
        n = order.size
        self.cuts = np.searchsorted(positions, np.arange(0, n, batch_size)).tolist()
        self.cuts.append(int(positions.size))

    def batch(self, j: int, xp: Any, X, T, mask, sequence_mask=None) -> tuple | None:
        """``(Xb, Tb, Mb, Sb)``: this rank's rows of global batch ``j`` (None: none here)."""
        a, b = self.cuts[j], self.cuts[j + 1]
        if a == b:
            return None
        rows = self.rows[a:b]
        M = None if mask is None else xp.take(mask, rows, axis=0)
        S = None if sequence_mask is None else xp.take(sequence_mask, rows, axis=0)
        return xp.take(X, rows, axis=0), xp.take(T, rows, axis=0), M, S


@dataclass
class _Options:
    validation: tuple | None  # this rank's prepare_sequences output (None: no rows here)
    has_validation: bool
    stopper: EarlyStopping | None
    checkpoint: Any
    checkpoint_every: int | None
    progress: bool
    callbacks: list


class _Trainer:
    """The epoch loop of one rank: steps, checkpoints, validation, early stopping."""

    def __init__(self, net, data, loss, optimizer, reducer, layout, shard, options: _Options):
        self.net, (self.X, self.T, self.mask, self.sequence_mask), self.loss = net, data, loss
        self.optimizer, self.reducer, self.layout = optimizer, reducer, layout
        self.comm, self.rank = reducer.comm, reducer.comm.Get_rank()
        self.offset, self.n_local = shard
        self.n_params = sum(entry[4] for entry in layout)
        self.tail = net.xp.asarray([1.0, 0.0], dtype=net.dtype, device=net.backend.device)
        self.o = options

    def train(self, run: _Run, epochs: int) -> None:
        n_global, batch_size = run.fixed["n_global"], run.fixed["batch_size"]
        n_batches = -(-n_global // batch_size)
        every = self.o.checkpoint_every or n_batches
        bar = _bar(self.o.progress and self.rank == 0, epochs, run.epoch)
        try:
            while run.epoch < epochs:
                run.epoch_rng_state = run.rng.bit_generator.state
                if run.fixed["shuffle"]:
                    order = run.rng.permutation(n_global)
                else:
                    order = np.arange(n_global)
                shard = _Shard(order, self.offset, self.n_local, batch_size, self.net.backend)
                snapshot = (self.net.get_weights(), self.optimizer.snapshot())
                for j in range(run.batch, n_batches):
                    self.step(run, shard, j)
                    run.batch, run.step = j + 1, run.step + 1
                    if self.o.checkpoint is not None and run.step % every == 0:
                        self.save(run)
                logs = self.end_of_epoch(run, snapshot)
                if bar is not None:
                    bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items()}, refresh=False)
                    bar.update(1)
                run.epoch, run.batch, run.total, run.count = run.epoch + 1, 0, 0.0, 0.0
                if self.stop(run, logs) | self.callback_stop(run, logs):
                    run.history.stopped_epoch = run.epoch - 1
                    break
        finally:
            if bar is not None:
                bar.close()
        if run.best_weights is not None:
            self.net.set_weights(run.best_weights)

    def step(self, run: _Run, shard: _Shard, j: int) -> None:
        net, P, error = self.net, self.n_params, None
        try:
            net.rng.reseed(_step_seed(run.fixed["seed"], self.rank, run.step))
            batch = shard.batch(j, net.xp, self.X, self.T, self.mask, self.sequence_mask)
            flat = _local_sums(net, self.loss, batch, self.layout, P, self.tail)
        except Exception as exc:  # every rank learns of it from the flag
            flat, error = _failure(net, P + 3), exc
        where = f"epoch {run.epoch}, step {j}"
        reduced = self.reducer(flat, f"the allreduce of {where}")
        total, count, failed = (float(v) for v in to_numpy(reduced[P:]))
        _raise_if_failed(self.comm, failed, error, where)
        grads = reduced[:P] if self.reducer.on_device else asarray(reduced[:P], backend=net.backend)
        grads = grads / max(count, 1.0)
        self.optimizer.step(net.parameters(), _unflatten(net, self.layout, grads))
        run.total, run.count = run.total + total, run.count + count

    def save(self, run: _Run) -> None:
        error = None
        if self.rank == 0:
            try:
                state = run.state()
                path = Path(self.o.checkpoint)
                _write_checkpoint(path, self.net, self.optimizer, state, run.best_weights)
            except Exception as exc:
                error = exc
        failed = self.comm.allreduce(0 if error is None else 1)
        _raise_if_failed(self.comm, failed, error, f"the checkpoint after step {run.step}")

    def end_of_epoch(self, run: _Run, snapshot: tuple) -> dict[str, float]:
        if not math.isfinite(run.total):
            self.net.set_weights(snapshot[0])
            self.optimizer.restore(snapshot[1])
            raise FloatingPointError(
                f"the loss became non-finite in epoch {run.epoch} (0-based): lower the learning "
                f"rate or check the data; every rank keeps the weights of that epoch's start"
            )
        logs = {"loss": run.total / max(run.count, 1.0)}
        if self.o.has_validation:
            sums, error = np.zeros(5), None
            try:
                sums[:4] = _validation_sums(self.net, self.loss, self.o.validation)
            except Exception as exc:
                sums[4], error = 1.0, exc
            sums = self.reducer(sums, "the validation allreduce")
            _raise_if_failed(self.comm, float(sums[4]), error, f"validation, epoch {run.epoch}")
            logs["val_loss"] = float(sums[0]) / max(float(sums[1]), 1.0)
            if self.loss.name in CLASSIFICATION:
                logs["val_accuracy"] = float(sums[2]) / max(float(sums[3]), 1.0)
        run.history.append(run.epoch, logs)
        return logs

    def stop(self, run: _Run, logs: dict[str, float]) -> bool:
        """Early stopping, the same decision on every rank (the logs are the same)."""
        stopper = self.o.stopper
        if stopper is None:
            return False
        monitor = str(stopper.monitor)
        maximize = stopper.mode == "max" or (stopper.mode == "auto" and "accuracy" in monitor)
        current = -logs[monitor] if maximize else logs[monitor]
        if current < run.best - stopper.min_delta:
            run.best, run.waited = current, 0
            if stopper.restore_best_weights:
                run.best_weights = self.net.get_weights()
            return False
        run.waited += 1
        return run.waited > stopper.patience

    def callback_stop(self, run: _Run, logs: dict[str, float]) -> bool:
        """Call every callback on every rank; stop when one returns True on any rank."""
        if not self.o.callbacks:
            return False
        stop = False
        for callback in self.o.callbacks:
            stop = bool(callback(run.epoch - 1, dict(logs))) or stop
        return bool(self.comm.allreduce(int(stop), op=_mpi().MAX))


def _bar(enabled: bool, epochs: int, done: int) -> Any:
    """One bar for the whole fit on rank 0, epochs as its unit (off when not a terminal)."""
    if not enabled or epochs == 0:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=epochs, initial=done, desc="fit", unit="epoch", disable=None)
