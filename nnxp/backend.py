"""The backend registry: which array library nnxp computes with, and on which device.

This is the only module that names numpy, cupy, torch, jax and array_api_strict. Every other
module receives the Array API namespace ``xp`` from here (or from its arrays) and uses
nothing else. Heavy libraries are imported lazily, when a backend is first asked for.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import importlib.util
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

BACKEND_NAMES = ("numpy", "array_api_strict", "torch", "cupy", "jax")


class BackendUnavailable(RuntimeError):
    """Raised inside the registry when a backend cannot run here; carries the reason."""


class WrongDevice(BackendUnavailable):
    """The library works here, but not on the device that was asked for."""


@dataclass(frozen=True)
class Backend:
    """One array library on one device.

    Attributes
    ----------
    name : str
        One of ``"numpy"``, ``"array_api_strict"``, ``"torch"``, ``"cupy"``, ``"jax"``.
    xp : module
        The Array API namespace (array_api_compat's wrapper where the library needs one).
    device : object
        The device new arrays are created on (``"cpu"`` for numpy).
    """

    name: str
    xp: Any
    device: Any

    def dtype(self, dtype: Any = None) -> Any:
        """Resolve ``"float32"``/``"float64"`` (or a dtype object) to this backend's dtype.

        ``None`` gives float32, nnxp's default. On jax, float64 needs JAX's x64 mode, which
        only the user switches on (nnxp never flips JAX's global flag).
        """
        if dtype is None:
            return self.xp.float32
        if isinstance(dtype, str):
            if dtype not in ("float32", "float64"):
                raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
            self._check_float64(dtype)
            return getattr(self.xp, dtype)
        for name in ("float32", "float64"):
            if dtype == getattr(self.xp, name):
                self._check_float64(name)
                return getattr(self.xp, name) if self.name == "jax" else dtype
        if isinstance(dtype, type) or isinstance(dtype, np.dtype):
            try:
                numpy_name = np.dtype(dtype).name
            except TypeError:
                numpy_name = ""
            if numpy_name in ("float32", "float64"):
                self._check_float64(numpy_name)
                return getattr(self.xp, numpy_name)
        raise TypeError(
            f"dtype must be 'float32', 'float64' or the {self.name} backend's float dtype, "
            f"got {dtype!r}"
        )

    def _check_float64(self, name: str) -> None:
        if name == "float64" and self.name == "jax" and not jax_x64_enabled():
            raise ValueError(
                "dtype 'float64' on the jax backend needs JAX's 64-bit mode, which is off "
                "(without it JAX silently computes in float32). Enable it before creating "
                "arrays: jax.config.update('jax_enable_x64', True), or set JAX_ENABLE_X64=1 "
                "in the environment; nnxp does not change this global flag for you"
            )

    def dtype_name(self, dtype: Any) -> str:
        """``"float32"`` or ``"float64"`` for one of this backend's float dtypes."""
        for name in ("float32", "float64"):
            if dtype == getattr(self.xp, name):
                return name
        raise TypeError(f"{dtype!r} is not a float dtype nnxp computes in")

    def __repr__(self) -> str:
        return f"Backend(name={self.name!r}, device={self.device!r})"


def _numpy_namespace() -> Any:
    """array_api_compat's NumPy namespace with ``sum``/``max``/``min`` going straight to
    the ufunc reductions: the same results (``np.sum`` is ``np.add.reduce`` behind a Python
    dispatch layer) for half the call cost, which matters on small batches."""
    import types

    import array_api_compat.numpy as compat

    namespace = types.ModuleType("nnxp.numpy_namespace", compat.__doc__)
    namespace.__dict__.update({k: v for k, v in vars(compat).items() if not k.startswith("__")})

    def reduction(ufunc: Any) -> Callable[..., Any]:
        # a C-level partial: no Python frame per call (axis and keepdims are keyword-only
        # in the standard, so every call names them or takes these defaults)
        return functools.partial(ufunc.reduce, axis=None, keepdims=False)

    namespace.sum = reduction(np.add)  # type: ignore[attr-defined]
    namespace.max = reduction(np.maximum)  # type: ignore[attr-defined]
    namespace.min = reduction(np.minimum)  # type: ignore[attr-defined]
    return namespace


_NUMPY_NAMESPACE: Any = None


def _load_numpy(device: Any) -> Backend:
    global _NUMPY_NAMESPACE
    if device not in (None, "cpu"):
        raise BackendUnavailable(f"numpy only runs on 'cpu', not {device!r}")
    if _NUMPY_NAMESPACE is None:
        _NUMPY_NAMESPACE = _numpy_namespace()
    return Backend("numpy", _NUMPY_NAMESPACE, "cpu")


def _load_array_api_strict(device: Any) -> Backend:
    if importlib.util.find_spec("array_api_strict") is None:
        raise BackendUnavailable("array_api_strict is not installed (pip install 'nnxp[test]')")
    import array_api_strict as xp

    if device is None:
        device = xp.Device("CPU_DEVICE")
    elif isinstance(device, str):
        device = xp.Device(device)
    return Backend("array_api_strict", xp, device)


def _load_torch(device: Any) -> Backend:
    if importlib.util.find_spec("torch") is None:
        raise BackendUnavailable("torch is not installed (pip install 'nnxp[torch]')")
    import array_api_compat.torch as xp
    import torch

    if device is None:
        device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise WrongDevice("torch is installed but has no CUDA device here")
    return Backend("torch", xp, device)


def _load_cupy(device: Any) -> Backend:
    if importlib.util.find_spec("cupy") is None:
        raise BackendUnavailable(
            "cupy is not installed (pip install 'nnxp[cuda12]' or 'nnxp[cuda13]')"
        )
    try:
        import array_api_compat.cupy as xp
        import cupy

        if not cupy.cuda.is_available():
            raise BackendUnavailable(
                f"cupy {cupy.__version__} is installed but no CUDA device answers"
            )
        if isinstance(device, cupy.cuda.Device):
            dev = device
        else:
            dev = cupy.cuda.Device(0 if device is None else int(str(device).split(":")[-1]))
        dev.compute_capability  # noqa: B018 - touches the device, raises if absent
    except BackendUnavailable:
        raise
    except Exception as exc:  # CUDA driver/runtime errors come in many types
        raise BackendUnavailable(f"cupy is installed but CUDA failed: {exc}") from exc
    return Backend("cupy", xp, dev)


def jax_x64_enabled() -> bool:
    """Whether the user switched JAX's 64-bit mode on (``jax.config.jax_enable_x64``)."""
    import jax

    return bool(jax.config.jax_enable_x64)  # type: ignore[attr-defined]  # a dynamic option


def _load_jax(device: Any) -> Backend:
    if importlib.util.find_spec("jax") is None:
        raise BackendUnavailable("jax is not installed (pip install 'nnxp[jax]')")
    import jax
    import jax.numpy as xp

    if device is None:
        device = jax.devices()[0]
    elif isinstance(device, str):
        kind, _, index = device.partition(":")
        kind = {"cuda": "gpu", "rocm": "gpu"}.get(kind, kind)
        try:
            devices = jax.devices(kind)
        except RuntimeError as exc:
            raise WrongDevice(f"jax has no {kind!r} device here ({exc})") from None
        number = int(index or 0)
        if number >= len(devices):
            raise WrongDevice(f"jax has {len(devices)} {kind!r} device(s), not {device!r}")
        device = devices[number]
    return Backend("jax", xp, device)


_LOADERS: dict[str, Callable[[Any], Backend]] = {
    "numpy": _load_numpy,
    "array_api_strict": _load_array_api_strict,
    "torch": _load_torch,
    "cupy": _load_cupy,
    "jax": _load_jax,
}

_current: contextvars.ContextVar[Backend | None] = contextvars.ContextVar(
    "nnxp_backend", default=None
)


def _make(name: str, device: Any = None) -> Backend:
    if name not in _LOADERS:
        raise ValueError(
            f"unknown backend {name!r}; valid names are {', '.join(BACKEND_NAMES)} "
            f"(available here: {', '.join(available_backends())})"
        )
    try:
        return _LOADERS[name](device)
    except WrongDevice as exc:
        if device is not None and backend_status(name) is None:
            default = _LOADERS[name](None).device
            raise ValueError(
                f"backend {name!r} works here but not on device {device!r}: {exc}. "
                f"Leave device out to use its default ({default}), or run where that "
                f"device exists"
            ) from None
        raise ValueError(
            f"backend {name!r} is not available: {exc}. "
            f"Available here: {', '.join(available_backends())}"
        ) from None
    except BackendUnavailable as exc:
        raise ValueError(
            f"backend {name!r} is not available: {exc}. "
            f"Available here: {', '.join(available_backends())}"
        ) from None


def backend_status(name: str) -> str | None:
    """Return ``None`` when backend ``name`` works here, else the reason it does not."""
    try:
        _LOADERS[name](None)
    except BackendUnavailable as exc:
        return str(exc)
    return None


def available_backends() -> list[str]:
    """Names of the backends that really run here (cupy only where a CUDA device answers).

    Returns
    -------
    list of str
        A subset of ``("numpy", "array_api_strict", "torch", "cupy", "jax")`` in that order.
    """
    return [name for name in BACKEND_NAMES if backend_status(name) is None]


def set_backend(name: str, device: Any = None) -> Backend:
    """Make ``name`` the current backend for this thread/context and return it.

    Parameters
    ----------
    name : {"numpy", "array_api_strict", "torch", "cupy", "jax"}
    device : optional
        The device to compute on: ``"cpu"``/``"cuda:1"`` for torch, an integer for cupy,
        ``"CPU_DEVICE"``/``"device1"`` for array_api_strict, ``"cpu"``/``"gpu:0"`` or a
        ``jax.Device`` for jax. ``None`` picks the default (CUDA for torch when present,
        ``jax.devices()[0]`` for jax).

    Notes
    -----
    jax arrays are immutable: nnxp's training step rebinds every array it updates, and
    float64 needs JAX's x64 mode (see :meth:`Backend.dtype`).

    Raises
    ------
    ValueError
        Unknown name, a backend that cannot run here, or a device it does not have (the
        message says which and why).
    """
    backend = _make(name, device)
    _current.set(backend)
    return backend


def default_backend_name() -> str:
    """``$NNXP_BACKEND`` when set (as Keras's ``KERAS_BACKEND``), else ``"numpy"``."""
    return os.environ.get("NNXP_BACKEND", "numpy").strip() or "numpy"


def get_backend() -> Backend:
    """The current backend: the one set last in this context, else ``$NNXP_BACKEND``, else
    numpy on the CPU."""
    backend = _current.get()
    if backend is None:
        backend = _make(default_backend_name())
        _current.set(backend)
    return backend


@contextlib.contextmanager
def use_backend(name: str, device: Any = None) -> Iterator[Backend]:
    """Use backend ``name`` inside a ``with`` block; the previous one comes back after it.

    The previous backend is restored even when the body raises, and blocks nest.
    """
    backend = _make(name, device)
    token = _current.set(backend)
    try:
        yield backend
    finally:
        _current.reset(token)


_LIBRARIES = {
    "numpy": "numpy",
    "torch": "torch",
    "cupy": "cupy",
    "array_api_strict": "array_api_strict",
    "jax": "jax",  # tracers inside jax.jit
    "jaxlib": "jax",  # concrete jax.Array
}


def array_library(x: Any) -> str | None:
    """The backend name an array belongs to, or None for host data (lists, scalars)."""
    return _LIBRARIES.get(type(x).__module__.partition(".")[0])


def to_numpy(x: Any) -> np.ndarray:
    """Copy an array of any backend (or nested lists) to a NumPy array on the host."""
    library = array_library(x)
    if library == "torch":
        return x.detach().cpu().numpy()
    if library == "cupy":
        return x.get()
    if library == "array_api_strict":
        import array_api_strict

        if x.device != array_api_strict.Device("CPU_DEVICE"):
            x = array_api_strict.asarray(x, device=array_api_strict.Device("CPU_DEVICE"))
        return np.asarray(x)
    if library == "jax":
        # a copy: np.asarray would give a read-only view of the jax buffer, which breaks the
        # in-place updates of numpy arrays (a network moved with to_backend("numpy")).
        # A tracer raises here: no host reads inside jax.jit.
        return np.array(x, copy=True)
    return np.asarray(x)


def asarray(data: Any, dtype: Any = None, backend: Backend | None = None) -> Any:
    """Put ``data`` on the current backend and device, the way to move data into nnxp.

    Parameters
    ----------
    data : array_like
        A NumPy array, an array of any backend, nested lists or a scalar.
    dtype : {"float32", "float64"} or a backend dtype, optional
        Target float dtype. ``None`` keeps the data's dtype (as the library infers it).
    backend : Backend, optional
        Target backend; the current one by default.

    Returns
    -------
    array
        An array of the backend's namespace on its device.
    """
    backend = backend or get_backend()
    if dtype is not None:
        dtype = backend.dtype(dtype)
    library = array_library(data)
    if library is not None and library != backend.name:
        data = to_numpy(data)
    elif library == "array_api_strict" and data.device != backend.device:
        data = to_numpy(data)
    elif library == "torch" and data.device != backend.device:
        data = data.to(backend.device)
    elif library == "jax" and getattr(data, "device", backend.device) != backend.device:
        import jax

        data = jax.device_put(data, backend.device)
    if library is None or library != backend.name:
        data = np.asarray(data)
        if data.dtype.kind not in "biuf":
            raise TypeError(f"cannot make a numeric array from data of dtype {data.dtype}")
        if backend.name == "jax" and dtype is None and not jax_x64_enabled():
            # what JAX does anyway without x64, minus its warning on every call
            dtype = {"f": np.float32, "i": np.int32, "u": np.uint32}.get(data.dtype.kind)
            if dtype is not None and data.dtype.itemsize < 4:
                dtype = None
    return backend.xp.asarray(data, dtype=dtype, device=backend.device)
