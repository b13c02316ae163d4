"""Checkpoints of :func:`nnxp.distributed.fit`: the training position, its atomic state file,
and resuming from it.

Rank 0 writes two files, each replaced atomically: ``<path>.state.npz`` (everything
``resume=`` needs) and ``path`` (``net.save``'s file, which ``nnxp.load`` reads).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..backend import asarray, to_numpy
from ..optimizers import Optimizer
from ..random import host_generator
from ..training import History

Array = Any
CHECKPOINT_KEY = "__nnxp_distributed__"
CHECKPOINT_FORMAT = "nnxp-distributed-checkpoint"
STATE_SUFFIX = ".state.npz"


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
    """``arrays`` plus the position and best weights, to ``target`` atomically (fsynced).

    Not ``nnxp.io``'s writer: that one gives a new file the umask's mode, while both
    checkpoint files keep ``mkstemp``'s owner-only mode (0600).
    """
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
