"""``python -m nnxp info``: what nnxp can compute with on this machine."""

from __future__ import annotations

import argparse
import importlib.metadata
import platform

from . import __version__
from .backend import BACKEND_NAMES, backend_status, default_backend_name

LIBRARIES = {
    "numpy": "numpy",
    "array_api_strict": "array-api-strict",
    "torch": "torch",
    "jax": "jax",
}


def _installed_version(backend: str) -> str | None:
    if backend == "cupy":
        for dist in ("cupy-cuda13x", "cupy-cuda12x", "cupy-cuda11x", "cupy"):
            try:
                return importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                continue
        return None
    try:
        return importlib.metadata.version(LIBRARIES[backend])
    except importlib.metadata.PackageNotFoundError:
        return None


def _devices(backend: str) -> str:
    if backend == "torch":
        import torch

        cuda = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return "cpu" + "".join(f", cuda:{i} ({name})" for i, name in enumerate(cuda))
    if backend == "cupy":
        import cupy

        names = []
        for i in range(cupy.cuda.runtime.getDeviceCount()):
            props = cupy.cuda.runtime.getDeviceProperties(i)
            names.append(f"{i} ({props['name'].decode()})")
        return ", ".join(names)
    if backend == "array_api_strict":
        return "CPU_DEVICE, device1, device2 (test devices)"
    if backend == "jax":
        import jax

        from .backend import jax_x64_enabled

        devices = ", ".join(f"{d.platform}:{d.id} ({d.device_kind})" for d in jax.devices())
        x64 = "on" if jax_x64_enabled() else "off: float32 only (JAX_ENABLE_X64=1 for float64)"
        return f"{devices}; x64 {x64}"
    return "cpu"


def info() -> str:
    """The report ``python -m nnxp info`` prints."""
    lines = [
        f"nnxp {__version__} (Python {platform.python_version()}, {platform.machine()})",
        f"default backend: {default_backend_name()}",
        "",
        "backends:",
    ]
    for name in BACKEND_NAMES:
        version = _installed_version(name)
        if name == "jax" and version is not None:
            try:
                jaxlib = importlib.metadata.version("jaxlib")
            except importlib.metadata.PackageNotFoundError:
                jaxlib = "missing"
            if jaxlib != version:
                version += f"/jaxlib {jaxlib}"
        reason = backend_status(name)
        label = f"  {name:17s} {version or 'not installed':12s}"
        if reason is None:
            lines.append(f"{label} usable   devices: {_devices(name)}")
        else:
            lines.append(f"{label} unusable: {reason}")
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        lines += ["", "BLAS: unknown (pip install threadpoolctl to see it)"]
    else:
        lines += ["", "thread pools (threadpoolctl):"]
        for pool in threadpool_info():
            lines.append(
                f"  {pool['user_api']:8s} {pool['internal_api']} {pool.get('version')} "
                f"threads={pool['num_threads']} {pool.get('architecture') or ''}".rstrip()
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nnxp", description=__doc__)
    parser.add_argument("command", choices=["info"], help="info: versions, backends, devices, BLAS")
    parser.parse_args(argv)
    print(info())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
