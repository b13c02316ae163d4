"""Data-parallel training over MPI: each rank holds a shard of the rows and a copy of the network.

Run the same script on every rank (``mpiexec -n 4 python train.py``)::

    from mpi4py import MPI
    import nnxp, nnxp.distributed

    comm = MPI.COMM_WORLD
    X_shard, T_shard = ...  # this rank's contiguous block of the global rows (rank order)
    net = nnxp.Sequential([...], seed=0)  # rank 0's initial weights are broadcast
    history = nnxp.distributed.fit(net, X_shard, T_shard, comm=comm, loss="cross_entropy",
                                   optimizer="sgd", epochs=10, batch_size=1024, seed=0)

How a step runs (the Horovod / ChainerMN scheme, with the batch order of single-process fit):

- Every rank draws the same global permutation of ``0..N-1`` on the host,
  ``numpy.random.default_rng(seed).permutation(N)`` once per epoch; a global batch is the next
  ``batch_size`` indices. Each rank trains on the rows of that batch it holds (the number
  differs from rank to rank and may be 0), so no per-rank batch division is configured.
- Each rank packs ``count * gradient`` of its rows (the gradient SUM), its loss sum, its
  count and an ok-flag into ONE flat buffer; ONE ``Allreduce`` sums it; every rank divides by
  the global count and takes the same optimizer step. In float64 the weights equal
  single-process training with the same batch order to rounding (<= 1e-12 relative).
- Buffers are staged through host NumPy once per step for torch and array-api-strict, and for
  CuPy unless ``cuda_aware=True`` (mpi4py cannot ask MPICH whether it was built CUDA-aware).
- Dropout: each rank draws the masks of its own rows from ``net.rng``, reseeded every step
  from ``(seed, rank, step)``: deterministic per rank, so a resumed run repeats them (the
  masks differ from single-process ``fit``'s, so with dropout only the batch order matches).
- Failures: an exception on one rank sets its flag in the next allreduce; every rank then
  raises at the same step (the failing rank its own exception, the others
  :class:`DistributedError` naming it), each with the weights of the last completed step. A
  rank that dies ends the job through ``mpiexec``; ``timeout=`` aborts the job when a
  collective waits longer than that (a hung rank). Only rank 0 shows the progress bar and
  writes checkpoints (atomically).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import training
from .backend import asarray, to_numpy
from .optimizers import Optimizer, get_optimizer
from .random import host_generator
from .training import EarlyStopping, History

Array = Any
CHECKPOINT_KEY = "__nnxp_distributed__"
CHECKPOINT_FORMAT = "nnxp-distributed-checkpoint"
STATE_SUFFIX = ".state.npz"
CLASSIFICATION = ("cross_entropy", "binary_cross_entropy")


class DistributedError(RuntimeError):
    """Another rank failed; this rank stopped at the same step (its weights are consistent)."""


# ---------------------------------------------------------------------- MPI plumbing
def _mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError as exc:  # pragma: no cover - the extra is installed in CI
        raise ImportError(
            "nnxp.distributed needs mpi4py and an MPI library: pip install 'nnxp[mpi]'"
        ) from exc
    return MPI


def _check_comm(comm: Any) -> Any:
    MPI = _mpi()
    if comm is None:
        return MPI.COMM_WORLD
    if not isinstance(comm, MPI.Intracomm):
        raise TypeError(
            f"comm must be an MPI intracommunicator (mpi4py.MPI.COMM_WORLD or a split of it), "
            f"got {type(comm).__name__}"
        )
    return comm


class _Watchdog:
    """Aborts the MPI job when one collective waits longer than ``timeout`` seconds."""

    def __init__(self, timeout: float | None, rank: int) -> None:
        self.timeout, self.rank = timeout, rank
        self.deadline: float | None = None
        self.what = ""
        self._stop = threading.Event()
        if timeout is not None:
            threading.Thread(target=self._watch, daemon=True, name="nnxp-watchdog").start()

    def arm(self, what: str) -> None:
        if self.timeout is not None:
            self.what, self.deadline = what, time.monotonic() + self.timeout

    def disarm(self) -> None:
        self.deadline = None

    def close(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        assert self.timeout is not None
        while not self._stop.wait(min(0.2, self.timeout / 4)):
            deadline = self.deadline
            if deadline is not None and time.monotonic() > deadline:
                os.write(
                    2,
                    f"nnxp.distributed: rank {self.rank} waited more than {self.timeout} s in "
                    f"{self.what}: another rank died or hangs; aborting the MPI job\n".encode(),
                )
                _mpi().COMM_WORLD.Abort(70)


COLLECTIVES = ("allgather", "allreduce", "bcast", "Bcast")


class _Guarded:
    """The communicator with each (lower-case and broadcast) collective under the watchdog."""

    def __init__(self, comm: Any, watchdog: _Watchdog) -> None:
        self.comm, self.watchdog = comm, watchdog

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.comm, name)
        if name not in COLLECTIVES:
            return method

        def guarded(*args: Any, **kwargs: Any) -> Any:
            self.watchdog.arm(f"comm.{name}")
            try:
                return method(*args, **kwargs)
            finally:
                self.watchdog.disarm()

        return guarded


class _Reducer:
    """In-place Allreduce (sum) of one flat buffer, staged through the host unless CUDA-aware;
    counts the seconds spent in it (waiting for slower ranks included)."""

    def __init__(self, comm: _Guarded, backend: Any, cuda_aware: bool | None) -> None:
        self.comm, self.watchdog = comm, comm.watchdog
        self.on_device = backend.name == "cupy" and bool(cuda_aware)
        self.seconds = 0.0

    def __call__(self, flat: Array, what: str) -> Any:
        """The sum of ``flat`` over the ranks: a host array (a device one when CUDA-aware)."""
        MPI = _mpi()
        if self.on_device:
            import cupy

            cupy.cuda.get_current_stream().synchronize()
            buffer = flat
        else:
            buffer = np.require(to_numpy(flat), requirements=["C", "W"])
        start = time.perf_counter()
        self.watchdog.arm(what)
        self.comm.comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        self.watchdog.disarm()
        self.seconds += time.perf_counter() - start
        return buffer


def _raise_if_failed(comm: Any, failed: float, error: BaseException | None, where: str) -> None:
    """After a collective whose flag said some rank failed: raise on every rank."""
    if not failed:
        return
    messages = comm.allgather(None if error is None else f"{type(error).__name__}: {error}")
    if error is not None:
        raise error
    rank = next(r for r, m in enumerate(messages) if m is not None)
    raise DistributedError(
        f"nnxp.distributed.fit stopped at {where}: rank {rank} failed ({messages[rank]}); "
        f"every rank stopped with the weights of the last completed step"
    )


# ---------------------------------------------------------------------- collective checks
def _positive_int(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _describe(x: Any) -> Any:
    shape = getattr(x, "shape", None)
    if shape is None:
        return type(x).__name__
    return (tuple(int(s) for s in shape[1:]), str(x.dtype).rsplit(".", 1)[-1])


def _network_fact(net: Any) -> str:
    layers = json.dumps(net.get_config()["layers"], sort_keys=True)
    return f"{net!r} (layer configs {hashlib.sha1(layers.encode()).hexdigest()[:10]})"


def _agree(comm: Any, local_error: BaseException | None, facts: dict) -> None:
    """Allgather each rank's error and facts; raise on every rank when any rank failed or a
    fact differs between ranks."""
    message = None if local_error is None else f"{type(local_error).__name__}: {local_error}"
    gathered = comm.allgather((message, facts))
    if local_error is not None:
        raise local_error
    failed = [(r, m) for r, (m, _) in enumerate(gathered) if m is not None]
    if failed:
        raise ValueError(
            f"nnxp.distributed.fit: rank {failed[0][0]} refused its input ({failed[0][1]})"
        )
    for key in facts:
        values = [f[key] for _, f in gathered]
        if any(v != values[0] for v in values):
            listing = ", ".join(f"rank {r}: {v!r}" for r, v in enumerate(values))
            raise ValueError(
                f"nnxp.distributed.fit: every rank must have the same {key}; {listing}"
            )


def _resolve_early_stopping(option: Any, keys: list[str]) -> EarlyStopping | None:
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
            f"early_stopping must be an EarlyStopping, an int patience, a dict or True, got "
            f"{option!r}"
        )
    if option.monitor is None:
        monitor = "val_loss" if "val_loss" in keys else "loss"
        option = EarlyStopping(
            monitor, option.patience, option.min_delta, option.mode, option.restore_best_weights
        )
    if option.monitor not in keys:
        raise ValueError(
            f"early_stopping monitors {option.monitor!r}, which this fit never records: its "
            f"history holds {keys}"
        )
    return option


# ---------------------------------------------------------------------- one step's pieces
def _param_layout(net: Any) -> list[tuple[int, str, tuple[int, ...], int, int]]:
    """``(layer, name, shape, offset, size)`` of every parameter in the flat buffer."""
    layout, offset = [], 0
    for i, params in enumerate(net.parameters()):
        for name in sorted(params):
            shape = tuple(int(s) for s in params[name].shape)
            layout.append((i, name, shape, offset, math.prod(shape)))
            offset += math.prod(shape)
    return layout


def _unflatten(net: Any, layout: list, flat: Array) -> list[dict[str, Array]]:
    out: list[dict[str, Array]] = [{} for _ in net.layers]
    for i, name, shape, offset, size in layout:
        out[i][name] = net.xp.reshape(flat[offset : offset + size], shape)
    return out


def _step_seed(seed: int, rank: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1)[0])


def _failure(net: Any, size: int) -> Array:
    host = np.zeros(size)
    host[-1] = 1.0  # the failure flag
    return asarray(host, dtype=net.dtype, backend=net.backend)


def _local_sums(net, loss, batch, layout, n_params, tail) -> Array:
    """``[count * gradient, loss sum, count, 0]`` of this rank's rows of one global batch.

    ``tail`` is the device array ``[1, 0]``; a rank with no rows sends zeros.
    """
    xp = net.xp
    if batch is None:
        return xp.zeros((n_params + 3,), dtype=net.dtype, device=net.backend.device)
    Xb, Tb, Mb = batch
    result = net._loss_and_delta(Xb, Tb, loss, Mb, training=True)
    total, count = result if isinstance(result, tuple) else (result, math.prod(Xb.shape[:-1]))
    safe = max(count, 1) if isinstance(count, int) else count + xp.astype(count == 0, net.dtype)
    parts = [xp.reshape(net.layers[i].grads[name], (-1,)) for i, name, *_ in layout]
    parts += [xp.reshape(total / safe, (1,)), tail]
    return xp.concat(parts) * count  # the mean gradient (and loss) times count: their sums


def _validation_sums(net: Any, loss: Any, validation: tuple | None) -> np.ndarray:
    """``[loss sum, count, right, counted]`` of this rank's validation rows (as ``evaluate``)."""
    sums = np.zeros(4)
    if validation is None:
        return sums
    xp = net.xp
    Xv, Tv, _, Mv = validation
    if hasattr(net, "_inference_loss"):
        Y, total, count = net._inference_loss(Xv, Tv, loss, Mv)
    else:  # the network before regularization and masked counts
        Y = net._forward(Xv, False, Mv)
        total, _ = loss.total_and_delta(net._output_layer().output(), Tv, xp, Mv)
        count = math.prod(Xv.shape[:-1])
    sums[0], sums[1] = float(total), float(count)
    if loss.name in CLASSIFICATION:
        if loss.name == "cross_entropy":
            hits = xp.argmax(Y, axis=-1) == xp.argmax(Tv, axis=-1)
        else:
            hits = (Y > 0.5) == (Tv > 0.5)
        if Mv is not None:
            rows = xp.any(Mv, axis=-1)
            sums[2] = float(xp.sum(xp.astype(hits & rows, Y.dtype)))
            sums[3] = float(xp.sum(xp.astype(rows, Y.dtype)))
        else:
            sums[2], sums[3] = float(xp.sum(xp.astype(hits, Y.dtype))), math.prod(hits.shape)
    return sums


class _Shard:
    """This rank's rows of every global batch of one epoch (indices on the device)."""

    def __init__(self, order: np.ndarray, offset: int, n_local: int, batch_size: int, backend):
        positions = np.flatnonzero((order >= offset) & (order < offset + n_local))
        self.rows = asarray(order[positions] - offset, backend=backend)  # once per epoch
        n = order.size
        self.cuts = np.searchsorted(positions, np.arange(0, n, batch_size)).tolist()
        self.cuts.append(int(positions.size))

    def batch(self, j: int, xp: Any, X, T, mask) -> tuple | None:
        a, b = self.cuts[j], self.cuts[j + 1]
        if a == b:
            return None
        rows = self.rows[a:b]
        M = None if mask is None else xp.take(mask, rows, axis=0)
        return xp.take(X, rows, axis=0), xp.take(T, rows, axis=0), M


# ---------------------------------------------------------------------- checkpoints
def state_path(path: str | os.PathLike) -> Path:
    """The resume file written next to a checkpoint: ``<path>.state.npz``."""
    path = Path(path)
    return path if path.name.endswith(STATE_SUFFIX) else path.with_name(path.name + STATE_SUFFIX)


def _write_checkpoint(path: Path, net: Any, optimizer: Optimizer, state: dict, best: Any) -> None:
    """Two files, each replaced atomically: ``<path>.state.npz`` (everything ``resume=``
    needs: ``net.save``'s arrays plus the training position), then ``path`` itself
    (``net.save``'s file, which ``nnxp.load`` reads). A crash between the two leaves each
    file complete; resuming reads only the state file."""
    folder = path.parent if str(path.parent) else Path(".")
    fd, name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".model.npz")
    os.close(fd)
    model = Path(name)
    try:
        net.save(model, optimizer=optimizer)  # written and fsynced; renamed to path last
        with np.load(model, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        _write_state(folder, state_path(path), arrays, state, best)
        os.replace(model, path)
    finally:
        model.unlink(missing_ok=True)


def _write_state(folder: Path, target: Path, arrays: dict, state: dict, best: Any) -> None:
    """``arrays`` plus the position and best weights, to ``target`` atomically (fsynced)."""
    arrays[CHECKPOINT_KEY] = np.frombuffer(json.dumps(state).encode("utf-8"), dtype=np.uint8)
    for i, params in enumerate(best or []):
        for name, value in params.items():
            arrays[f"distributed/best/{i}/{name}"] = to_numpy(value)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_checkpoint(path: Any) -> dict:
    path = state_path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: resume and checkpoint_info need the state file that "
            f"nnxp.distributed.fit(checkpoint=...) writes next to the checkpoint (not an nnxp "
            f"distributed checkpoint, or the path is wrong)"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except Exception as exc:
        raise ValueError(f"{path}: not a readable nnxp.distributed checkpoint ({exc})") from exc
    if CHECKPOINT_KEY not in arrays or "__nnxp__" not in arrays:
        raise ValueError(f"{path}: not an nnxp.distributed checkpoint state file")
    state = json.loads(arrays.pop(CHECKPOINT_KEY).tobytes().decode("utf-8"))
    model = json.loads(arrays.pop("__nnxp__").tobytes().decode("utf-8"))
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not an nnxp.distributed checkpoint")
    return {"state": state, "model": model, "arrays": arrays}


def checkpoint_info(path: str | os.PathLike) -> dict:
    """The training position stored in a checkpoint written by :func:`fit`.

    Returns
    -------
    dict
        ``epoch`` (0-based, the one in progress), ``batch`` (its steps done), ``step`` (steps
        done in all), ``seed``, ``batch_size``, ``n_global``, ``world_size``, ``history``
        and the host generator state. The network loads with
        ``nnxp.load(path, optimizer=True)``.

    Raises
    ------
    ValueError
        Not a checkpoint of :func:`fit`.
    """
    return _read_checkpoint(path)["state"]


def _host_weights(net: Any, arrays: dict, prefix: str) -> list[dict[str, Array]]:
    weights = []
    for i, params in enumerate(net.parameters()):
        layer = {}
        for name, current in params.items():
            value = arrays[f"{prefix}/{i}/{name}"]
            if tuple(value.shape) != tuple(current.shape):
                raise ValueError(f"parameter {i}/{name} has shape {value.shape} in the checkpoint")
            layer[name] = asarray(value, dtype=net.dtype, backend=net.backend)
        weights.append(layer)
    return weights


def _apply_checkpoint(ckpt: dict, net: Any, optimizer: Optimizer) -> None:
    model, arrays = ckpt["model"], ckpt["arrays"]
    if model["layers"] != json.loads(json.dumps(net.get_config()["layers"])):
        raise ValueError("the checkpoint holds another architecture than net")
    saved = model.get("optimizer") or {}
    given = json.loads(json.dumps(optimizer.get_config()))
    if saved.get("config") != given:
        raise ValueError(
            f"the checkpoint was written with optimizer {saved.get('config')}, fit was given "
            f"{given}"
        )
    net.set_weights(_host_weights(net, arrays, "layers"))
    optimizer.steps = int(saved["steps"])
    slots = [key for key in arrays if key.startswith("optimizer/")]
    optimizer.state = [{} for _ in net.layers] if slots else None
    for key in slots:
        _, i, name, slot = key.split("/")
        value = asarray(arrays[key], dtype=net.dtype, backend=net.backend)
        optimizer.state[int(i)].setdefault(name, {})[slot] = value  # type: ignore[index]


# ---------------------------------------------------------------------- the loop
class _Run:
    """Where training stands: what a checkpoint stores besides the weights."""

    def __init__(self, seed: int, batch_size: int, n_global: int, shuffle: bool, world: int):
        self.fixed = {
            "seed": seed,
            "batch_size": batch_size,
            "n_global": n_global,
            "shuffle": shuffle,
        }
        self.world = world
        self.rng = host_generator(seed)
        self.epoch = self.batch = self.step = 0
        self.total = self.count = 0.0
        self.epoch_rng_state: Any = self.rng.bit_generator.state
        self.history = History()
        self.best, self.waited = math.inf, 0
        self.best_weights: list | None = None

    def state(self) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "version": 1,
            **self.fixed,
            "world_size": self.world,
            "epoch": self.epoch,
            "batch": self.batch,
            "step": self.step,
            "loss_total": self.total,
            "loss_count": self.count,
            "rng_state": self.epoch_rng_state,
            "history": self.history.history,
            "epochs_done": self.history.epoch,
            "best": self.best,
            "waited": self.waited,
            "has_best": self.best_weights is not None,
        }

    def restore(self, ckpt: dict, net: Any, where: str, seed_given: bool) -> None:
        state = ckpt["state"]
        if not seed_given:  # continue with the interrupted run's seed
            self.fixed["seed"] = state["seed"]
        for key, value in self.fixed.items():
            if state[key] != value:
                raise ValueError(
                    f"{where}: the checkpoint was written with {key}={state[key]!r}, this fit "
                    f"has {key}={value!r}: the batches would differ"
                )
        self.epoch, self.batch, self.step = state["epoch"], state["batch"], state["step"]
        self.total, self.count = state["loss_total"], state["loss_count"]
        self.rng.bit_generator.state = state["rng_state"]
        self.history.history = {k: list(v) for k, v in state["history"].items()}
        self.history.epoch = list(state["epochs_done"])
        self.best, self.waited = float(state["best"]), int(state["waited"])
        if state["has_best"]:
            self.best_weights = _host_weights(net, ckpt["arrays"], "distributed/best")


def _broadcast_weights(comm: Any, net: Any, layout: list) -> None:
    """Every rank starts from rank 0's weights (one Bcast of one flat host buffer)."""
    params = net.parameters()
    host = np.concatenate([to_numpy(params[i][name]).reshape(-1) for i, name, *_ in layout])
    comm.Bcast(host, root=0)
    flat = asarray(host, dtype=net.dtype, backend=net.backend)
    net.set_weights(
        [
            {k: net.xp.asarray(v, copy=True) for k, v in layer.items()}
            for layer in _unflatten(net, layout, flat)
        ]
    )


def _resume(comm: Any, path: Any, net: Any, optimizer: Optimizer, run: _Run, seed_given: bool):
    """Rank 0 reads the checkpoint and broadcasts it; every rank applies it (or raises)."""
    ckpt: Any = None
    if comm.Get_rank() == 0:
        try:
            ckpt = _read_checkpoint(path)
        except Exception as exc:
            ckpt = exc
    ckpt = comm.bcast(ckpt, root=0)
    if isinstance(ckpt, BaseException):
        raise ckpt
    try:
        run.restore(ckpt, net, f"resume={path!s}", seed_given)
        _apply_checkpoint(ckpt, net, optimizer)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"resume={path!s}: {exc}") from exc


@dataclass
class _Options:
    validation: tuple | None  # this rank's prepared validation rows (None: none here)
    has_validation: bool
    stopper: EarlyStopping | None
    checkpoint: Any
    checkpoint_every: int | None
    progress: bool
    callbacks: list


class _Trainer:
    """The epoch loop of one rank: steps, checkpoints, validation, early stopping."""

    def __init__(self, net, data, loss, optimizer, reducer, layout, shard, options: _Options):
        self.net, (self.X, self.T, self.mask), self.loss = net, data, loss
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
            batch = shard.batch(j, net.xp, self.X, self.T, self.mask)
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
    validation_data : (X_val, T_val) or (X_val, T_val, mask_val), optional
        This rank's shard of the validation rows (may be empty); the sums are allreduced.
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
            if hasattr(training, "check_optimizer"):
                training.check_optimizer(net, opt)
            X, T, loss, mask = net.prepare(X, T, loss, mask, check_finite)
            keys = ["loss"]
            if validation_data is not None:
                if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (
                    2,
                    3,
                ):
                    raise ValueError(
                        "validation_data must be (X_val, T_val) or (X_val, T_val, mask_val)"
                    )
                keys += (
                    ["val_loss", "val_accuracy"] if loss.name in CLASSIFICATION else ["val_loss"]
                )
                if getattr(validation_data[0], "shape", (1,))[0]:  # an empty shard: nothing here
                    mask_val = validation_data[2] if len(validation_data) == 3 else None
                    validation = net.prepare(*validation_data[:2], loss, mask_val, check_finite)
            stopper = _resolve_early_stopping(early_stopping, keys)
        except Exception as exc:  # reported to every rank by _agree
            error = exc
        _agree(comm, error, facts)
        if hasattr(training, "claim_optimizer"):
            training.claim_optimizer(net, opt)
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
        trainer = _Trainer(net, (X, T, mask), loss, opt, reducer, layout, shard, options)
        trainer.train(run, epochs)
        run.history.allreduce_seconds = reducer.seconds  # type: ignore[attr-defined]
        run.history.steps = run.step  # type: ignore[attr-defined]
        return run.history
    finally:
        watchdog.close()
