"""``nnxp.distributed.fit``: check and agree on the input, broadcast rank 0's weights, resume,
then run the epoch loop (:mod:`nnxp.distributed.loop`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from ..optimizers import Optimizer, get_optimizer
from ..training import (
    History,
    _history_keys,
    _validation_parts,
    check_optimizer,
    claim_optimizer,
)
from .agree import _agree, _describe, _network_fact, _positive_int, _resolve_early_stopping
from .buffers import _broadcast_weights, _param_layout
from .checkpoint import _resume, _Run
from .comm import _check_comm, _Guarded, _Reducer, _Watchdog
from .loop import _Options, _Trainer

Array = Any


def fit(
    net: Any,
    X: Array,
    T: Array,
    *,
    comm: Any = None,
    loss: Any,
    optimizer: str | Optimizer = "adam",
    epochs: int = 10,
    batch_size: int = 32,
    shuffle: bool = True,
    seed: int | None = None,
    validation_data: tuple | None = None,
    early_stopping: Any = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: str | os.PathLike | None = None,
    mask: Array = None,
    sequence_mask: Array = None,
    progress: bool = True,
    callbacks: list[Callable[[int, dict], Any]] | None = None,
    check_finite: bool = True,
    timeout: float | None = None,
    cuda_aware: bool | None = None,
) -> History:
    """Train ``net`` data-parallel over the ranks of ``comm``; every rank calls this.

    Parameters
    ----------
    net : Sequential
        The same architecture and dtype on every rank; rank 0's weights are broadcast first.
    X : array of shape (n_rank, ..., n_inputs)
        This rank's shard: rows ``offset .. offset + n_rank - 1`` of the global data, the
        ranks' shards in rank order (sizes may differ; each holds at least one row).
    T : array of the output's shape (or class labels), the same rows
    comm : mpi4py.MPI.Intracomm, default ``MPI.COMM_WORLD``
    loss, optimizer, epochs, shuffle, early_stopping, check_finite
        As :func:`nnxp.training.fit`.
    batch_size : int
        The GLOBAL batch size, as single-process training would use it.
    seed : int, optional
        Seeds the batch order (``numpy.random.default_rng(seed)``, one permutation per
        epoch, as single-process fit) and the dropout masks; drawn on rank 0 when None (a
        resumed run then keeps the seed of the checkpoint).
    validation_data : tuple or dict, optional
        This rank's shard of the validation rows (may be empty), in any form
        :func:`nnxp.training.fit` takes: ``(X_val, T_val)``, ``(X_val, T_val, mask_val)``,
        ``(X_val, T_val, mask_val, sequence_mask_val)`` (``mask_val`` may be None) or a dict
        with keys ``"X"``, ``"T"``, ``"mask"``, ``"sequence_mask"``; the sums (loss and
        accuracy over the rows ``evaluate`` counts) are allreduced.
    checkpoint : path, optional
        Every ``checkpoint_every`` steps (default: at the end of every epoch) rank 0 writes
        the network and optimizer there (``net.save``: ``nnxp.load`` reads it) and, first,
        ``<path>.state.npz`` (the same plus the training position, which ``resume=`` and
        :func:`checkpoint_info` read); each file is replaced atomically.
    checkpoint_every : int >= 1, optional
    resume : path, optional
        A checkpoint (or its ``.state.npz``) to continue from (read on rank 0, broadcast):
        the run ends with the weights an uninterrupted one would have had. ``epochs``
        counts from the start of the first run.
    mask : array of the output's shape, optional
        This rank's rows of the softmax output mask.
    sequence_mask : array of shape (n_rank, n_steps), optional
        This rank's rows of the timestep mask (bool or 0/1, True on real steps; default: the
        first layer's ``compute_mask``, as ``Embedding(mask_zero=True)``). For an output with
        the time axis the loss is the mean over the real timesteps of the global batch: each
        rank counts its real steps and the counts are allreduced with the gradient sums.
    progress : bool
        A progress bar on rank 0 (tqdm, when output is a terminal).
    callbacks : list of callables ``f(epoch, logs)``, optional
        Called on every rank after each epoch with the (global, identical) logs; training
        stops when one returns True on any rank. Print or write only on rank 0 in them.
    timeout : float, optional
        Seconds a collective may wait before the whole job is aborted (a dead or hung rank).
    cuda_aware : bool, optional
        CuPy only: hand device buffers to MPI (needs a CUDA-aware MPI); else staged through
        the host once per step.

    Returns
    -------
    History
        The same on every rank (also ``net.history``), plus ``history.allreduce_seconds``
        (this call's time in the per-step allreduce on this rank, waiting for slower ranks
        included) and ``history.steps`` (steps since the start of the run, a resumed run's
        earlier steps included).

    Raises
    ------
    TypeError
        ``comm`` is not an MPI intracommunicator.
    ValueError
        On every rank, before training: a rank's input is refused, or the ranks disagree on
        the feature shape, dtypes, network or options.
    DistributedError
        Another rank raised during training; every rank stops at the same step.
    FloatingPointError
        The epoch's loss became non-finite; every rank keeps the weights of the epoch start.
    """
    raw = _check_comm(comm)
    valid = isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0
    watchdog = _Watchdog(timeout if valid else None, raw.Get_rank())
    comm = _Guarded(raw, watchdog)
    try:
        rank, world = comm.Get_rank(), comm.Get_size()
        error: BaseException | None = None
        facts: dict[str, Any] = {}
        validation = None
        try:
            facts = {
                "feature shape and dtype of X": _describe(X),
                "target shape and dtype of T": _describe(T),
                "network": _network_fact(net),
                "epochs": epochs,
                "batch_size": batch_size,
                "shuffle": shuffle,
                "seed": seed,
                "checkpoint_every": checkpoint_every,
                "timeout": timeout,
                "loss": getattr(loss, "name", loss),
                "optimizer": repr(optimizer),
                "validation_data given": validation_data is not None,
                "mask given": mask is not None,
                "sequence_mask given": sequence_mask is not None,
                "early_stopping": repr(early_stopping),
                "resume": resume is not None,
            }
            epochs = _positive_int("epochs", epochs, low=0)
            batch_size = _positive_int("batch_size", batch_size)
            if checkpoint_every is not None:
                checkpoint_every = _positive_int("checkpoint_every", checkpoint_every)
            if seed is not None:
                seed = _positive_int("seed", seed, low=0)
            if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
                raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
            opt = get_optimizer(optimizer)
            check_optimizer(net, opt)
            X, T, loss, mask, sequence_mask = net.prepare_sequences(
                X, T, loss, mask, sequence_mask, check_finite
            )
            if validation_data is not None:
                Xv, Tv, Mv, Sv = _validation_parts(validation_data)
                if getattr(Xv, "shape", (1,))[0]:  # an empty shard: nothing here
                    validation = net.prepare_sequences(Xv, Tv, loss, Mv, Sv, check_finite)
            keys = _history_keys(loss, validation_data is not None)
            stopper = _resolve_early_stopping(early_stopping, keys)
        except Exception as exc:  # reported to every rank by _agree
            error = exc
        _agree(comm, error, facts)
        claim_optimizer(net, opt)
        counts = comm.allgather(int(X.shape[0]))
        seed_given = seed is not None
        if seed is None:
            seed = comm.bcast(
                int(np.random.SeedSequence().generate_state(1)[0]) if rank == 0 else None
            )
        layout = _param_layout(net)
        reducer = _Reducer(comm, net.backend, cuda_aware)
        run = _Run(seed, batch_size, sum(counts), shuffle, world)
        _broadcast_weights(comm, net, layout)
        if resume is not None:
            _resume(comm, resume, net, opt, run, seed_given)
        net.history = run.history
        options = _Options(
            validation,
            validation_data is not None,
            stopper,
            checkpoint,
            checkpoint_every,
            progress,
            list(callbacks or []),
        )
        shard = (sum(counts[:rank]), counts[rank])
        trainer = _Trainer(
            net, (X, T, mask, sequence_mask), loss, opt, reducer, layout, shard, options
        )
        trainer.train(run, epochs)
        run.history.allreduce_seconds = reducer.seconds  # type: ignore[attr-defined]
        run.history.steps = run.step  # type: ignore[attr-defined]
        return run.history
    finally:
        watchdog.close()
