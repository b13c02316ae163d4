"""Initial parameter values, drawn on the host with NumPy.

Every initializer draws from the network's host generator (``numpy.random.Generator``), so
one seed gives bit-identical initial weights on every backend; :func:`draw` copies the
result once to the device. Fans follow PyTorch and Keras: for a weight of shape
``(n_out, n_in, *rest)``, ``fan_in = n_in * prod(rest)`` and ``fan_out = n_out * prod(rest)``;
a 1-D parameter has ``fan_in = fan_out = its size``.

By name: ``glorot_uniform``, ``glorot_normal``, ``he_uniform``, ``he_normal``,
``lecun_normal``, ``orthogonal``, ``zeros``, ``ones``; :func:`constant` for a value. Any
callable ``f(shape, rng) -> numpy array`` works too.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from .functional.activations import from_registry


class Initializer:
    """Base class: ``init(shape, rng)`` returns a float64 NumPy array of ``shape``."""

    name = ""

    def __call__(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict:
        """``{"name": ..., **settings}``; :func:`get` rebuilds it."""
        return {"name": self.name}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Initializer) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get_config()})"


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a parameter of ``shape`` (see the module notes)."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


class GlorotUniform(Initializer):
    """Uniform in ``[-l, l]``, ``l = sqrt(6 / (fan_in + fan_out))`` (Xavier, for
    sigmoid/tanh/linear layers)."""

    name = "glorot_uniform"

    def __call__(self, shape, rng):
        fan_in, fan_out = fans(shape)
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, size=shape)


class GlorotNormal(Initializer):
    """Normal with standard deviation ``sqrt(2 / (fan_in + fan_out))`` (as PyTorch's
    ``xavier_normal_``)."""

    name = "glorot_normal"

    def __call__(self, shape, rng):
        fan_in, fan_out = fans(shape)
        return rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), size=shape)


class HeUniform(Initializer):
    """Uniform in ``[-l, l]``, ``l = sqrt(6 / fan_in)`` (Kaiming, for relu-like layers)."""

    name = "he_uniform"

    def __call__(self, shape, rng):
        limit = math.sqrt(6.0 / fans(shape)[0])
        return rng.uniform(-limit, limit, size=shape)


class HeNormal(Initializer):
    """Normal with standard deviation ``sqrt(2 / fan_in)``."""

    name = "he_normal"

    def __call__(self, shape, rng):
        return rng.normal(0.0, math.sqrt(2.0 / fans(shape)[0]), size=shape)


class LecunNormal(Initializer):
    """Normal with standard deviation ``sqrt(1 / fan_in)`` (for selu layers)."""

    name = "lecun_normal"

    def __call__(self, shape, rng):
        return rng.normal(0.0, math.sqrt(1.0 / fans(shape)[0]), size=shape)


class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix times ``gain``, as PyTorch's ``orthogonal_``: the Q of a
    QR decomposition of a normal matrix, signs fixed by R's diagonal. Shapes beyond 2-D are
    flattened to ``(shape[0], prod(shape[1:]))``."""

    name = "orthogonal"

    def __init__(self, gain: float = 1.0) -> None:
        self.gain = _real(gain, "orthogonal gain")

    def __call__(self, shape, rng):
        if len(shape) < 2:
            raise ValueError(f"orthogonal initializer needs a shape of 2 or more axes, got {shape}")
        rows, cols = shape[0], math.prod(shape[1:])
        flat = rng.normal(0.0, 1.0, size=(rows, cols))
        if rows < cols:
            flat = flat.T
        q, r = np.linalg.qr(flat)
        q = q * np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(shape)

    def get_config(self):
        return {"name": self.name, "gain": self.gain}


class Constant(Initializer):
    """Every entry ``value``."""

    name = "constant"

    def __init__(self, value: float = 0.0) -> None:
        self.value = _real(value, "constant initializer value")

    def __call__(self, shape, rng):
        return np.full(shape, self.value)

    def get_config(self):
        return {"name": self.name, "value": self.value}


class Zeros(Initializer):
    name = "zeros"

    def __call__(self, shape, rng):
        return np.zeros(shape)


class Ones(Initializer):
    name = "ones"

    def __call__(self, shape, rng):
        return np.ones(shape)


class Custom(Initializer):
    """A user's callable ``f(shape, rng)``. Its config records the function's name only:
    a network rebuilt from a config (``load``, ``clone``) gets its weights from the file,
    so the function is not needed again; drawing fresh weights from such a rebuilt
    initializer raises, asking for the function."""

    name = "custom"

    def __init__(self, function: Callable | None = None, qualname: str = "") -> None:
        self.function = function
        self.qualname = qualname or getattr(function, "__qualname__", repr(function))

    def __call__(self, shape, rng):
        if self.function is None:
            raise ValueError(
                f"this layer was rebuilt from a config holding the custom initializer "
                f"{self.qualname!r}; pass the function again (kernel_initializer=...) to draw "
                f"new weights"
            )
        values = np.asarray(self.function(shape, rng), dtype=np.float64)
        if values.shape != tuple(shape):
            raise ValueError(
                f"initializer {self.qualname!r} returned shape {values.shape}, expected "
                f"{tuple(shape)}"
            )
        return values

    def get_config(self):
        return {"name": self.name, "function": self.qualname}

    def __eq__(self, other):
        return isinstance(other, Custom) and other.qualname == self.qualname

    __hash__ = Initializer.__hash__


INITIALIZERS: dict[str, type[Initializer]] = {
    cls.name: cls
    for cls in (
        GlorotUniform,
        GlorotNormal,
        HeUniform,
        HeNormal,
        LecunNormal,
        Orthogonal,
        Zeros,
        Ones,
        Constant,
    )
}

# a saved callable initializer: its name only (the function itself is not saved)
_UNLISTED = {"custom": lambda **settings: Custom(None, str(settings.get("function", "")))}


def constant(value: float) -> Constant:
    """An initializer setting every entry to ``value``."""
    return Constant(value)


def get(init: str | dict | Callable | Initializer) -> Initializer:
    """Resolve a name, a config dict, an :class:`Initializer` or a callable
    ``f(shape, rng)`` to an :class:`Initializer`.

    Raises
    ------
    ValueError
        An unknown name; the message lists the valid ones.
    TypeError
        Anything else.
    """
    if isinstance(init, Initializer):
        return init
    if isinstance(init, (str, dict)):
        hint = (
            " (constant needs a value: nnxp.initializers.constant(0.1)), or pass a callable "
            "f(shape, rng)"
        )
        return from_registry(init, INITIALIZERS, "initializer", hint, unlisted=_UNLISTED)
    if callable(init):
        return Custom(init)
    raise TypeError(
        f"an initializer is a name ({', '.join(INITIALIZERS)}), a config dict or a callable "
        f"f(shape, rng), got {init!r}"
    )


def draw(init: Initializer, shape: tuple[int, ...], ctx: Any) -> Any:
    """Values of ``shape`` from ``init`` on ``ctx.backend`` in ``ctx.dtype``.

    With ``ctx.host_rng is None`` (a layer rebuilt to receive stored weights) nothing is
    drawn: zeros are allocated on the device.
    """
    xp, device = ctx.backend.xp, ctx.backend.device
    if ctx.host_rng is None:
        return xp.zeros(shape, dtype=ctx.dtype, device=device)
    return xp.asarray(init(tuple(shape), ctx.host_rng), dtype=ctx.dtype, device=device)


def _real(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite real number, got {value!r}")
    return float(value)
