"""Save and load networks: one ``.npz`` file, host arrays plus a JSON description.

The file holds every parameter as a NumPy array (``layers/<i>/<name>``), optimizer state
when asked (``optimizer/<i>/<name>/<slot>``) and, under ``__nnxp__``, a UTF-8 JSON
description: format name and version, nnxp version, dtype, seed, each layer's config
(activation names and settings included) and the optimizer's config. No pickle is written
or read. Writes are atomic: a temporary file in the same folder is written, flushed and
fsynced, then renamed over the target, so an error or a crash mid-write leaves the previous
file intact and no partial file behind.
"""

from __future__ import annotations

import io as _io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .backend import asarray, get_backend, to_numpy
from .network import Sequential
from .optimizers import Optimizer, optimizer_from_config

FORMAT = "nnxp-model"
FORMAT_VERSION = 1
META_KEY = "__nnxp__"


def save(net: Sequential, path: str | os.PathLike, optimizer: Optimizer | None = None) -> Path:
    """Write ``net`` (and ``optimizer``'s state, if given) to ``path`` atomically.

    Parameters
    ----------
    net : Sequential
    path : str or PathLike
        The file to write, conventionally ``*.npz``; replaced only once the new file is
        complete on disk.
    optimizer : Optimizer, optional
        Saved with its hyperparameters, step count and state, to resume training.

    Returns
    -------
    Path
    """
    from . import __version__

    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    for i, params in enumerate(net.parameters()):
        for name, value in params.items():
            arrays[f"layers/{i}/{name}"] = to_numpy(value)
    meta: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "nnxp_version": __version__,
        "saved_from_backend": net.backend.name,
        "dtype": net.backend.dtype_name(net.dtype),
        "seed": net.seed,
        "layers": [layer.get_config() for layer in net.layers],
        "optimizer": None,
    }
    if optimizer is not None:
        meta["optimizer"] = {"config": optimizer.get_config(), "steps": optimizer.steps}
        for i, layer_state in enumerate(optimizer.state or []):
            for name, slots in layer_state.items():
                for slot, value in slots.items():
                    arrays[f"optimizer/{i}/{name}/{slot}"] = to_numpy(value)
    arrays[META_KEY] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    _atomic_write(path, arrays)
    return path


def _atomic_write(path: Path, arrays: dict[str, np.ndarray]) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]  # numpy's stub misreads **kwds
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _read(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """Every array and the description, read and checked before anything is built."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the file ({exc})") from exc
    try:
        with np.load(_io.BytesIO(raw), allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise ValueError(
            f"{path}: not a readable nnxp model file (truncated, corrupted or not .npz: {exc})"
        ) from exc
    if META_KEY not in arrays:
        raise ValueError(f"{path}: an .npz file without an nnxp description: not an nnxp model")
    try:
        meta = json.loads(arrays.pop(META_KEY).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: the nnxp description is corrupted ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not an nnxp model (format {meta.get('format')!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path}: written in model format {version!r} by nnxp {meta.get('nnxp_version')}; "
            f"this nnxp reads format {FORMAT_VERSION} and older: upgrade nnxp"
        )
    return meta, arrays


def load(
    path: str | os.PathLike, backend: str | None = None, *, optimizer: bool = False
) -> Sequential | tuple[Sequential, Optimizer]:
    """Read a network saved by :func:`save` onto ``backend`` (the current one by default).

    Parameters
    ----------
    path : str or PathLike
    backend : {"numpy", "array_api_strict", "torch", "cupy"}, optional
        Whatever backend the file was saved from.
    optimizer : bool
        Also rebuild the saved optimizer (with its state) and return ``(net, optimizer)``.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Truncated, corrupted, foreign or newer-format files, or a description that does not
        match the arrays; the message names the file. Nothing half-built is returned.
    """
    path = Path(path)
    meta, arrays = _read(path)
    name = backend or get_backend().name
    try:
        weights: list[dict[str, np.ndarray]] = [{} for _ in meta["layers"]]
        for key, value in arrays.items():
            if key.startswith("layers/"):
                _, i, param = key.split("/")
                weights[int(i)][param] = value
        net = Sequential.from_config(meta, weights, backend=name, dtype=meta["dtype"])
        opt = _load_optimizer(meta, arrays, net) if optimizer else None
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ValueError(
            f"{path}: the model description does not match its arrays ({exc})"
        ) from exc
    if opt is not None:
        return net, opt
    return net


def _load_optimizer(meta: dict, arrays: dict, net: Sequential) -> Optimizer:
    saved = meta.get("optimizer")
    if saved is None:
        raise ValueError("no optimizer state was saved in this file")
    opt = optimizer_from_config(saved["config"])
    opt.steps = saved["steps"]
    prefix = "optimizer/"
    if any(key.startswith(prefix) for key in arrays):
        opt.state = [{} for _ in net.layers]
        for key, value in arrays.items():
            if key.startswith(prefix):
                _, i, name, slot = key.split("/")
                slots = opt.state[int(i)].setdefault(name, {})
                slots[slot] = asarray(value, dtype=net.dtype, backend=net.backend)
    return opt
