"""Save and load networks: one ``.npz`` file, host arrays plus a JSON description.

The file holds every parameter as a NumPy array (``layers/<i>/<name>``), optimizer state
when asked (``optimizer/<i>/<name>/<slot>``) and, under ``__nnxp__``, a UTF-8 JSON
description: format name and version, nnxp version, dtype, seed, each layer's config
(activation names and settings included) and the optimizer's config. No pickle is written
or read. Writes are atomic: a temporary file in the same folder is written, flushed and
fsynced, then renamed over the target, so an error or a crash mid-write leaves the previous
file intact and no partial file behind. An existing file keeps its permission bits, and a
symbolic link is written through (its target is replaced, the link stays).

Loading trusts nothing: every member's ``.npy`` header is read and checked (real numbers
only, the size it declares equal to the member's declared size, before anything is
inflated), the JSON description is checked key by key, and the declared architecture is
checked against the stored array shapes before a single parameter is allocated. Every
malformed file raises a ``ValueError`` naming it.
"""

from __future__ import annotations

import io as _io
import json
import math
import os
import stat
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .backend import asarray, get_backend, to_numpy
from .layers import Layer, layer_from_config
from .layers.registry import check_rebuildable
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

    Raises
    ------
    ValueError
        A layer that :func:`load` could not rebuild (unregistered, or without a config):
        refused before anything is written.
    """
    from . import __version__

    path = Path(path)
    for layer in net.layers:
        check_rebuildable(layer)
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


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_write(path: Path, arrays: dict[str, np.ndarray]) -> None:
    if path.is_symlink():  # write through the link: replace its target, keep the link
        path = Path(os.path.realpath(path))
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_current_umask()
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.chmod(tmp, mode)
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


#: The largest ``.npy`` header read before it is parsed.
MAX_HEADER = 1 << 16
#: Keys of the JSON description.
META_KEYS = {
    "format",
    "format_version",
    "nnxp_version",
    "saved_from_backend",
    "dtype",
    "seed",
    "layers",
    "optimizer",
}


class _Bad(ValueError):
    """A malformed description (the message says what)."""


def _members(raw: bytes) -> dict[str, tuple[zipfile.ZipInfo, np.dtype, tuple, int]]:
    """Each ``.npy`` member's dtype and shape from its header, checked against the size the
    archive declares for it, before any member is inflated."""
    out = {}
    archive = zipfile.ZipFile(_io.BytesIO(raw))
    for info in archive.infolist():
        if not info.filename.endswith(".npy"):
            raise _Bad(f"member {info.filename!r} is not a .npy array")
        key = info.filename[: -len(".npy")]
        if info.compress_type != zipfile.ZIP_STORED and info.file_size > 1032 * max(
            info.compress_size, 1
        ):  # deflate cannot do better than ~1032:1: the declared size is a lie
            raise _Bad(
                f"member {key!r} declares {info.file_size} bytes from {info.compress_size} "
                f"compressed bytes, more than compression can give"
            )
        with archive.open(info) as member:
            head = _io.BytesIO(member.read(MAX_HEADER))
        try:
            version = np.lib.format.read_magic(head)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(head)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(head)
            else:
                raise _Bad(f"member {key!r}: unsupported .npy version {version}")
        except ValueError as exc:
            raise _Bad(f"member {key!r} has a malformed .npy header ({exc})") from None
        if dtype.kind not in "biuf" or dtype.hasobject or dtype.fields is not None:
            raise _Bad(f"member {key!r} holds {dtype} values; only real numbers are allowed")
        if not all(isinstance(n, int) and n >= 0 for n in shape):
            raise _Bad(f"member {key!r} declares an invalid shape {shape}")
        expected = head.tell() + math.prod(shape) * dtype.itemsize
        if info.file_size != expected:
            raise _Bad(
                f"member {key!r} declares {info.file_size} bytes but its header "
                f"(shape {shape}, {dtype}) needs {expected}"
            )
        out[key] = (info, dtype, tuple(shape), head.tell())
    return out


def _read(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """Every array and the description, read and checked before anything is built."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the file ({exc})") from exc
    try:
        members = _members(raw)
    except _Bad as exc:
        raise ValueError(f"{path}: not a valid nnxp model file: {exc}") from None
    except (
        zipfile.BadZipFile,
        ValueError,
        OSError,
        EOFError,
        KeyError,
        NotImplementedError,
    ) as exc:
        raise ValueError(
            f"{path}: not a readable nnxp model file (truncated, corrupted or not .npz: {exc})"
        ) from exc
    if META_KEY not in members:
        raise ValueError(f"{path}: an .npz file without an nnxp description: not an nnxp model")
    _, meta_dtype, meta_shape, _ = members[META_KEY]
    if meta_dtype != np.uint8 or len(meta_shape) != 1:
        raise ValueError(f"{path}: the nnxp description is corrupted (not UTF-8 bytes)")
    try:
        with np.load(_io.BytesIO(raw), allow_pickle=False) as npz:
            text = npz[META_KEY].tobytes()
        meta = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: the nnxp description is corrupted ({exc})") from exc
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise ValueError(f"{path}: not a readable nnxp model file ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"{path}: not an nnxp model (format {found!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path}: written in model format {version!r} by nnxp {meta.get('nnxp_version')}; "
            f"this nnxp reads format {FORMAT_VERSION} and older: upgrade nnxp"
        )
    try:
        shapes = _check_description(meta, members)
    except _Bad as exc:
        raise ValueError(
            f"{path}: the model description does not match its arrays ({exc})"
        ) from None
    try:
        with np.load(_io.BytesIO(raw), allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in members if key != META_KEY}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise ValueError(
            f"{path}: not a readable nnxp model file (truncated, corrupted or not .npz: {exc})"
        ) from exc
    for key, value in arrays.items():
        if tuple(value.shape) != shapes[key]:
            raise ValueError(f"{path}: member {key!r} does not match its header")
    return meta, arrays


def _check_description(meta: dict, members: dict) -> dict[str, tuple]:
    """Check the JSON description's keys and types, and the declared architecture against
    the stored arrays' shapes, without allocating any parameter; the shapes by key."""
    extra = set(meta) - META_KEYS
    if extra:
        raise _Bad(f"unknown keys {sorted(extra)} in the description")
    missing = {"dtype", "seed", "layers"} - set(meta)
    if missing:
        raise _Bad(f"the description lacks {sorted(missing)}")
    if meta["dtype"] not in ("float32", "float64"):
        raise _Bad(f"dtype must be 'float32' or 'float64', got {meta['dtype']!r}")
    seed = meta["seed"]
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise _Bad(f"seed must be a non-negative integer, got {seed!r}")
    layers = meta["layers"]
    if not isinstance(layers, list) or not layers:
        raise _Bad("layers must be a non-empty list of layer descriptions")
    for i, config in enumerate(layers):
        if not isinstance(config, dict) or not isinstance(config.get("type"), str):
            raise _Bad(f"layers[{i}] must be a dict with a 'type', got {config!r}")
    shapes = {key: shape for key, (_, _, shape, _) in members.items()}
    stored: list[dict[str, tuple]] = [{} for _ in layers]
    for key, shape in shapes.items():
        if key == META_KEY or key.startswith("optimizer/"):
            continue
        parts = key.split("/")
        if len(parts) != 3 or parts[0] != "layers" or not parts[1].isdigit():
            raise _Bad(f"unexpected member {key!r}")
        i = int(parts[1])
        if i >= len(layers):
            raise _Bad(f"member {key!r} names layer {i} of {len(layers)}")
        stored[i][parts[2]] = shape
    for i, (config, params) in enumerate(zip(layers, stored)):
        try:
            layer = layer_from_config(config)  # unbuilt: settings only, nothing allocated
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise _Bad(f"layers[{i}] {config!r}: {exc}") from None
        _check_declared_sizes(i, layer, config, params)
    optimizer = meta.get("optimizer")
    if optimizer is not None:
        if not isinstance(optimizer, dict) or set(optimizer) != {"config", "steps"}:
            raise _Bad("optimizer must be null or {'config': {...}, 'steps': int}")
        steps = optimizer["steps"]
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
            raise _Bad(f"optimizer steps must be a non-negative integer, got {steps!r}")
        if not isinstance(optimizer["config"], dict):
            raise _Bad("optimizer config must be a dict")
        for key, shape in shapes.items():
            if not key.startswith("optimizer/"):
                continue
            parts = key.split("/")
            if len(parts) != 4 or not parts[1].isdigit() or int(parts[1]) >= len(layers):
                raise _Bad(f"unexpected member {key!r}")
            param = stored[int(parts[1])].get(parts[2])
            if param != shape:
                raise _Bad(f"optimizer state {key!r} of shape {shape} for a parameter of {param}")
    elif any(key.startswith("optimizer/") for key in shapes):
        raise _Bad("optimizer state arrays without an optimizer description")
    return shapes


def _declares_shapes(layer: Any) -> bool:
    """Whether ``layer.parameter_shapes()`` is exact: a built-in layer (every one is tested
    against its ``build``), or a class whose ``parameter_shapes`` is defined with or below
    its ``build`` (a subclass that changes ``build`` but not ``parameter_shapes`` is not
    trusted); for a wrapper, every part too."""
    kind = type(layer)
    if not callable(getattr(layer, "parameter_shapes", None)):
        return False
    if not kind.__module__.startswith("nnxp."):
        shapes_owner = next((c for c in kind.__mro__ if "parameter_shapes" in vars(c)), None)
        build_owner = next((c for c in kind.__mro__ if "build" in vars(c)), None)
        if shapes_owner is None or build_owner is None or not issubclass(shapes_owner, build_owner):
            return False
        if shapes_owner is Layer:
            return False  # the base class's {}: not a statement about this layer
    parts = getattr(layer, "_parts", None)
    if isinstance(parts, dict):
        return all(_declares_shapes(part) for part in parts.values())
    return True


def _check_declared_sizes(i: int, layer: Any, config: dict, params: dict) -> None:
    """The parameters a layer's config declares must be exactly those its stored arrays
    are (names and shapes, from ``layer.parameter_shapes()``, nothing allocated), so that
    building it allocates what the file holds. A custom layer without an exact
    ``parameter_shapes``: a Dense-like one (``n_inputs``, ``n_outputs``, ``W``) exactly,
    any other one's integer settings bounded by the elements it stores."""
    if _declares_shapes(layer):
        try:
            declared = {k: tuple(v) for k, v in layer.parameter_shapes().items()}
        except (TypeError, ValueError, AttributeError) as exc:
            raise _Bad(f"layers[{i}] {config.get('type')!r}: {exc}") from None
        if declared != params:
            names = sorted(set(declared) | set(params))
            diff = [
                f"{name}: declared {declared.get(name)}, stored {params.get(name)}"
                for name in names
                if declared.get(name) != params.get(name)
            ]
            raise _Bad(
                f"layers[{i}] {config.get('type')!r} declares parameters that are not the "
                f"stored arrays ({'; '.join(diff[:4])})"
            )
        return
    n_in, n_out = getattr(layer, "n_inputs", None), getattr(layer, "n_outputs", None)
    if isinstance(n_in, int) and isinstance(n_out, int) and "W" in params:
        if params["W"] != (n_out, n_in):
            raise _Bad(
                f"layers[{i}] declares {n_in} -> {n_out} but stores W of shape {params['W']}"
            )
        if "b" in params and params["b"] != (n_out,):
            raise _Bad(f"layers[{i}] declares {n_out} outputs but stores b of {params['b']}")
        return
    stored = sum(math.prod(shape) for shape in params.values())
    for value in _integers(config):
        if value > max(stored, 1):
            raise _Bad(
                f"layers[{i}] declares a size {value} larger than the {stored} values it stores"
            )


def _integers(value: Any):
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _integers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _integers(v)


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
    if optimizer and meta.get("optimizer") is None:
        raise ValueError(f"{path}: no optimizer state was saved in this file")
    try:
        weights: list[dict[str, np.ndarray]] = [{} for _ in meta["layers"]]
        for key, value in arrays.items():
            if key.startswith("layers/"):
                _, i, param = key.split("/")
                weights[int(i)][param] = value
        config = {"layers": meta["layers"], "seed": meta["seed"]}
        net = Sequential.from_config(config, weights, backend=name, dtype=meta["dtype"])
        opt = _load_optimizer(meta, arrays, net) if optimizer else None
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
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
        for layer_state, params in zip(opt.state, net.parameters()):
            if set(layer_state) - set(params):
                raise ValueError("optimizer state names parameters the network lacks")
    from .training import check_optimizer, claim_optimizer

    check_optimizer(net, opt)
    claim_optimizer(net, opt)
    return opt
