"""Activation functions: forward, and the backward pass from the output ``Y`` (and the
pre-activation ``A`` where the derivative needs it: GELU, SiLU)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from array_api_compat import array_namespace

from .softmax import softmax, softplus
from .special import erf_and_erfc, sigmoid

Array = Any


class LayerOutput(NamedTuple):
    """What a loss needs of the output layer's last forward pass.

    Attributes
    ----------
    A : array of shape (..., K), the pre-activation
    Y : array of shape (..., K), the output ``g(A)``
    log_Y : array of shape (..., K) or None
        ``log(Y)`` computed in logit space, for softmax outputs (``-inf`` on masked entries).
    activation : ActivationFunction
    """

    A: Array
    Y: Array
    log_Y: Array
    activation: Any


# --------------------------------------------------------------------------- activations


class ActivationFunction:
    """An activation ``g`` with its backward pass.

    Subclasses give ``forward(A, xp) -> Y`` and either ``derivative(Y, xp) -> g'(A)``
    (element-wise activations whose derivative follows from the output) or override
    ``backward(Y, dEdY, xp, A) -> dEdA`` (softmax: a Jacobian-vector product; GELU and SiLU:
    from ``A``). Callers that have the pre-activation ``A`` pass it to :meth:`backward`
    (layers always do); an activation whose derivative needs it sets ``needs_A = True`` and
    refuses a call without it. Every method takes the namespace ``xp`` when the caller has
    it and looks it up from the array otherwise. Instances are callable: ``g(A)`` is
    ``g.forward(A)``.

    A custom activation is a subclass registered by name::

        @nnxp.register
        class ELU(nnxp.functional.ActivationFunction):
            name = "my_elu"

            def forward(self, A, xp=None):
                xp = xp or array_namespace(A)
                return xp.where(A > 0, A, xp.expm1(xp.minimum(A, 0.0)))

            def derivative(self, Y, xp=None):
                return (xp or array_namespace(Y)).where(Y > 0, 1.0, Y + 1.0)

    Settings given to ``__init__`` are returned by :meth:`config` (override it) so that
    ``get_activation(config)`` rebuilds the activation.
    """

    name = ""
    needs_A = False

    def __call__(self, A: Array) -> Array:
        return self.forward(A)

    def forward(self, A: Array, xp: Any = None) -> Array:
        """``Y = g(A)``, same shape as ``A``."""
        raise NotImplementedError

    def derivative(self, Y: Array, xp: Any = None) -> Array:
        """``g'(A)`` from ``Y = g(A)``, same shape as ``Y``."""
        raise NotImplementedError

    def backward(self, Y: Array, dEdY: Array, xp: Any = None, A: Array = None) -> Array:
        """``dE/dA`` from the output ``Y``, ``dE/dY`` and, when given, the pre-activation
        ``A`` (all of shape ``(..., n)``)."""
        return self.derivative(Y, xp) * dEdY

    def _need_A(self, A: Array) -> Array:
        if A is None:
            raise TypeError(
                f"activation {self.name!r}: the derivative needs the pre-activation A; call "
                f"backward(Y, dEdY, xp, A=A)"
            )
        return A

    def config(self) -> dict:
        """The settings that rebuild this activation with :func:`get_activation`."""
        return {"name": self.name}

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.config() == self.config()

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({settings})"


def check_real(value: Any, what: str, low: float = -math.inf, high: float = math.inf) -> float:
    """A real setting in ``[low, high)`` (NumPy numbers accepted, bool refused) as ``float``;
    a ValueError naming ``what`` otherwise."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not low <= float(value) < high
    ):
        raise ValueError(f"{what} must be a number in [{low:g}, {high:g}), got {value!r}")
    return float(value)


class Linear(ActivationFunction):
    name = "linear"

    def forward(self, A: Array, xp: Any = None) -> Array:
        return A

    def derivative(self, Y: Array, xp: Any = None) -> Array:
        return (xp or array_namespace(Y)).ones_like(Y)

    def backward(self, Y: Array, dEdY: Array, xp: Any = None, A: Array = None) -> Array:
        return dEdY


class Sigmoid(ActivationFunction):
    """``1 / (1 + exp(-A))`` with full relative precision in both tails and no overflow
    for any ``A`` (:func:`nnxp.functional.special.sigmoid`)."""

    name = "sigmoid"

    def forward(self, A: Array, xp: Any = None) -> Array:
        return sigmoid(A, xp=xp)

    def derivative(self, Y: Array, xp: Any = None) -> Array:
        return Y * (1.0 - Y)

    def backward(self, Y: Array, dEdY: Array, xp: Any = None, A: Array = None) -> Array:
        return Y * (1.0 - Y) * dEdY


class Tanh(ActivationFunction):
    name = "tanh"

    def forward(self, A: Array, xp: Any = None) -> Array:
        return (xp or array_namespace(A)).tanh(A)

    def derivative(self, Y: Array, xp: Any = None) -> Array:
        return 1.0 - Y * Y


class ReLU(ActivationFunction):
    name = "relu"

    def forward(self, A: Array, xp: Any = None) -> Array:
        return (xp or array_namespace(A)).maximum(A, 0.0)

    def derivative(self, Y: Array, xp: Any = None) -> Array:
        return (xp or array_namespace(Y)).astype(Y > 0, Y.dtype)

    def backward(self, Y: Array, dEdY: Array, xp: Any = None, A: Array = None) -> Array:
        # a multiply by the 0/1 mask, not ``where``: NumPy's where branches per element and
        # is 10x slower on the random signs of a hidden layer
        mask = (xp or array_namespace(Y)).astype(Y > 0, dEdY.dtype)
        mask *= dEdY  # in place on the mask we just made
        return mask


class LeakyReLU(ActivationFunction):
    """``A`` where ``A > 0``, else ``alpha * A`` (``0 <= alpha < 1``, default 0.01).

    ``alpha`` is kept non-negative so the sign of ``Y`` tells the branch: the derivative
    comes from the output like every other activation here.
    """

    name = "leaky_relu"

    def __init__(self, alpha: float = 0.01) -> None:
        self.alpha = check_real(alpha, "leaky_relu alpha", 0.0, 1.0)

    def forward(self, A: Array, xp: Any = None) -> Array:
        return (xp or array_namespace(A)).maximum(A, self.alpha * A)  # alpha < 1

    def derivative(self, Y: Array, xp: Any = None) -> Array:
        positive = (xp or array_namespace(Y)).astype(Y > 0, Y.dtype)
        return positive * (1.0 - self.alpha) + self.alpha

    def config(self) -> dict:
        return {"name": self.name, "alpha": self.alpha}


class Softmax(ActivationFunction):
    """Softmax over the last axis; its backward is the Jacobian-vector product
    ``dE/dA = Y * (dE/dY - sum(dE/dY * Y))``, not an element-wise derivative."""

    name = "softmax"

    def forward(self, A: Array, xp: Any = None) -> Array:
        return softmax(A, xp=xp)

    def derivative(self, Y: Array, xp: Any = None) -> Array:
        raise TypeError("softmax has no element-wise derivative; use its backward(Y, dEdY)")

    def backward(self, Y: Array, dEdY: Array, xp: Any = None, A: Array = None) -> Array:
        xp = xp or array_namespace(Y)
        return Y * (dEdY - xp.sum(dEdY * Y, axis=-1, keepdims=True))


# --------------------------------------------------------------------------- the newer ones


class ELU(ActivationFunction):
    """``A`` where ``A > 0``, else ``alpha * (exp(A) - 1)`` (as ``torch.nn.functional.elu``,
    ``alpha >= 0``). Derivative ``alpha * exp(A) = Y + alpha`` on the negative side (taken
    from ``A`` when given: no cancellation deep in the tail)."""

    name = "elu"

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = check_real(alpha, "elu alpha", 0.0)

    def forward(self, A: Array, xp: Any = None) -> Array:
        xp = xp or array_namespace(A)
        return xp.where(A > 0, A, self.alpha * xp.expm1(xp.minimum(A, 0.0)))

    def derivative(self, Y: Array, xp: Any = None) -> Array:
        return (xp or array_namespace(Y)).where(Y > 0, 1.0, Y + self.alpha)

    def backward(self, Y: Array, dEdY: Array, xp: Any = None, A: Array = None) -> Array:
        if A is None:
            return self.derivative(Y, xp) * dEdY
        xp = xp or array_namespace(A)
        return xp.where(A > 0, 1.0, self.alpha * xp.exp(xp.minimum(A, 0.0))) * dEdY

    def config(self) -> dict:
        return {"name": self.name, "alpha": self.alpha}


class SELU(ELU):
    """``scale * elu(A, alpha)`` with the self-normalising constants of Klambauer et al.
    (as ``torch.nn.functional.selu``)."""

    name = "selu"
    ALPHA = 1.6732632423543772848170429916717
    SCALE = 1.0507009873554804934193349852946

    def __init__(self) -> None:
        self.alpha = self.ALPHA

    def forward(self, A: Array, xp: Any = None) -> Array:
        return self.SCALE * super().forward(A, xp)

    def derivative(self, Y: Array, xp: Any = None) -> Array:
        xp = xp or array_namespace(Y)
        return xp.where(Y > 0, self.SCALE, Y + self.SCALE * self.ALPHA)

    def backward(self, Y: Array, dEdY: Array, xp: Any = None, A: Array = None) -> Array:
        if A is None:
            return self.derivative(Y, xp) * dEdY
        return self.SCALE * super().backward(Y, dEdY, xp, A)

    def config(self) -> dict:
        return {"name": self.name}


class Softplus(ActivationFunction):
    """``log(1 + exp(A))``, computed without overflow; derivative ``sigmoid(A) =
    1 - exp(-Y)``. (``torch.nn.functional.softplus`` returns ``A`` itself above its
    threshold 20, within 2e-9 of this exact value.)"""

    name = "softplus"

    def forward(self, A: Array, xp: Any = None) -> Array:
        return softplus(A, xp=xp)

    def derivative(self, Y: Array, xp: Any = None) -> Array:
        return -(xp or array_namespace(Y)).expm1(-Y)

    def backward(self, Y: Array, dEdY: Array, xp: Any = None, A: Array = None) -> Array:
        if A is None:
            return self.derivative(Y, xp) * dEdY
        return sigmoid(A, xp=xp) * dEdY


class Softsign(ActivationFunction):
    """``A / (1 + |A|)``; derivative ``1 / (1 + |A|)^2 = (1 - |Y|)^2``."""

    name = "softsign"

    def forward(self, A: Array, xp: Any = None) -> Array:
        return A / (1.0 + (xp or array_namespace(A)).abs(A))

    def derivative(self, Y: Array, xp: Any = None) -> Array:
        D = 1.0 - (xp or array_namespace(Y)).abs(Y)
        return D * D

    def backward(self, Y: Array, dEdY: Array, xp: Any = None, A: Array = None) -> Array:
        if A is None:
            return self.derivative(Y, xp) * dEdY
        D = 1.0 + (xp or array_namespace(A)).abs(A)
        return dEdY / (D * D)


class SiLU(ActivationFunction):
    """``A * sigmoid(A)`` (swish); derivative ``s (1 + A (1 - s))``, ``s = sigmoid(A)``,
    from the pre-activation (``needs_A``)."""

    name = "silu"
    needs_A = True

    def forward(self, A: Array, xp: Any = None) -> Array:
        return A * sigmoid(A, xp=xp)

    def backward(self, Y: Array, dEdY: Array, xp: Any = None, A: Array = None) -> Array:
        A = self._need_A(A)
        s = sigmoid(A, xp=xp)
        return s * (1.0 + A * (1.0 - s)) * dEdY

    def derivative(self, Y: Array, xp: Any = None) -> Array:
        raise TypeError("silu's derivative needs the pre-activation: use backward(Y, dEdY, xp, A)")


class Swish(SiLU):
    """The other name of :class:`SiLU`."""

    name = "swish"


_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_TANH_BETA = math.sqrt(2.0 / math.pi)
_TANH_KAPPA = 0.044715


class GELU(ActivationFunction):
    """``A * Phi(A)``, ``Phi`` the standard normal CDF, as ``torch.nn.functional.gelu``.

    Parameters
    ----------
    approximate : {"none", "tanh"}
        ``"none"``: the exact form ``A/2 * erfc(-A/sqrt(2))`` (the erf of
        :mod:`nnxp.functional.special`); ``"tanh"``: ``A/2 * (1 + tanh(u))``, ``u =
        sqrt(2/pi) * (A + 0.044715 A^3)``, computed as the equal ``A * sigmoid(2u)`` with the
        accurate sigmoid of :mod:`nnxp.functional.special`: ``1 + tanh(u)`` cancels in the
        negative tail (float32 results lost every digit there on some backends), the sigmoid
        keeps its relative precision. The derivative comes from ``A`` (``needs_A``).
    """

    name = "gelu"
    needs_A = True

    def __init__(self, approximate: str = "none") -> None:
        if approximate not in ("none", "tanh"):
            raise ValueError(f"gelu approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    @staticmethod
    def _two_u(A: Array) -> Array:
        """``2u = 2 sqrt(2/pi) (A + 0.044715 A^3)``: ``(1 + tanh(u)) / 2 = sigmoid(2u)``."""
        return (2.0 * _TANH_BETA) * (A + _TANH_KAPPA * (A * A * A))

    def forward(self, A: Array, xp: Any = None) -> Array:
        xp = xp or array_namespace(A)
        if self.approximate == "tanh":
            return A * sigmoid(self._two_u(A), xp=xp)
        return 0.5 * A * erf_and_erfc(-_SQRT_HALF * A, xp=xp)[1]

    def backward(self, Y: Array, dEdY: Array, xp: Any = None, A: Array = None) -> Array:
        A = self._need_A(A)
        xp = xp or array_namespace(A)
        if self.approximate == "tanh":
            # d/dA [A s(2u)] = s + A * 2 s (1 - s) du/dA, with 1 - s = sigmoid(-2u) exactly
            # (no cancellation) and (1 - tanh(u)^2) / 2 = 2 s (1 - s)
            two_u = self._two_u(A)
            s, r = sigmoid(two_u, xp=xp), sigmoid(-two_u, xp=xp)
            du = (2.0 * _TANH_BETA) * (1.0 + (3.0 * _TANH_KAPPA) * (A * A))
            return (s + A * (s * r) * du) * dEdY
        cdf = 0.5 * erf_and_erfc(-_SQRT_HALF * A, xp=xp)[1]
        pdf = _INV_SQRT_2PI * xp.exp(-0.5 * (A * A))
        return (cdf + A * pdf) * dEdY

    def derivative(self, Y: Array, xp: Any = None) -> Array:
        raise TypeError("gelu's derivative needs the pre-activation: use backward(Y, dEdY, xp, A)")

    def config(self) -> dict:
        return {"name": self.name, "approximate": self.approximate}


class HardSigmoid(ActivationFunction):
    """``clip(A / 6 + 1/2, 0, 1)``, as ``torch.nn.functional.hardsigmoid``; derivative
    1/6 for ``-3 < A < 3``, else 0."""

    name = "hard_sigmoid"

    def forward(self, A: Array, xp: Any = None) -> Array:
        return (xp or array_namespace(A)).clip(A / 6.0 + 0.5, 0.0, 1.0)

    def derivative(self, Y: Array, xp: Any = None) -> Array:
        return (xp or array_namespace(Y)).astype((Y > 0) & (Y < 1), Y.dtype) / 6.0

    def backward(self, Y: Array, dEdY: Array, xp: Any = None, A: Array = None) -> Array:
        if A is None:
            return self.derivative(Y, xp) * dEdY
        xp = xp or array_namespace(A)
        return xp.where((A > -3.0) & (A < 3.0), dEdY / 6.0, 0.0)


class LogSigmoid(ActivationFunction):
    """``log(sigmoid(A)) = -softplus(-A)`` (a hidden activation; for a binary output use
    sigmoid with ``binary_cross_entropy``); derivative ``sigmoid(-A) = -expm1(Y)``."""

    name = "log_sigmoid"

    def forward(self, A: Array, xp: Any = None) -> Array:
        return -softplus(-A, xp=xp)

    def derivative(self, Y: Array, xp: Any = None) -> Array:
        return -(xp or array_namespace(Y)).expm1(Y)

    def backward(self, Y: Array, dEdY: Array, xp: Any = None, A: Array = None) -> Array:
        if A is None:
            return self.derivative(Y, xp) * dEdY
        return sigmoid(-A, xp=xp) * dEdY


ACTIVATIONS: dict[str, Callable[..., ActivationFunction]] = {
    cls.name: cls
    for cls in (
        Linear,
        Sigmoid,
        Tanh,
        ReLU,
        LeakyReLU,
        Softmax,
        ELU,
        SELU,
        Softplus,
        Softsign,
        SiLU,
        Swish,
        GELU,
        HardSigmoid,
        LogSigmoid,
    )
}


def get_activation(activation: str | dict | ActivationFunction) -> ActivationFunction:
    """Resolve a name (``"relu"``), a config dict (``{"name": "leaky_relu", "alpha": 0.1}``)
    or an :class:`ActivationFunction` instance to an instance.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the valid ones) or bad settings.
    TypeError
        For anything else (a class rather than an instance, a function).
    """
    if isinstance(activation, ActivationFunction):
        return activation
    if isinstance(activation, type) and issubclass(activation, ActivationFunction):
        raise TypeError(
            f"activation: pass an instance, {activation.__name__}(), or its registered name, "
            f"not the class"
        )
    if not isinstance(activation, (str, dict)):
        raise TypeError(
            f"activation must be a name, a config dict or an ActivationFunction, got {activation!r}"
        )
    hint = " (a custom activation must be registered: decorate it with @nnxp.register)"
    return from_registry(activation, ACTIVATIONS, "activation", hint)


def from_registry(
    spec: str | dict,
    registry: Mapping[str, Callable[..., Any]],
    kind: str,
    hint: str = "",
    unlisted: Mapping[str, Callable[..., Any]] | None = None,
) -> Any:
    """The instance a name (``"relu"``) or a config dict (``{"name": ..., **settings}``)
    stands for: ``registry[name](**settings)``. Shared by :func:`get_activation`,
    :func:`nnxp.initializers.get` and :func:`nnxp.regularizers.get`.

    Parameters
    ----------
    spec : str or dict
    registry : mapping of str to class
        The valid names, listed in the error for an unknown one.
    kind : str
        What the message calls the piece (``"activation"``).
    hint : str
        Appended to the unknown-name message.
    unlisted : mapping of str to callable, optional
        Names that are valid but not listed; called with the settings as keywords.

    Raises
    ------
    ValueError
        An unknown name (the message lists the valid ones) or settings the class refuses.
    """
    settings = dict(spec) if isinstance(spec, dict) else {}
    name = settings.pop("name", None) if isinstance(spec, dict) else spec
    if unlisted and name in unlisted:
        return unlisted[name](**settings)
    if name not in registry:
        raise ValueError(f"unknown {kind} {name!r}; valid names are {', '.join(registry)}{hint}")
    try:
        return registry[name](**settings)
    except TypeError as error:
        raise ValueError(f"{kind} {name!r}: bad settings {settings} ({error})") from None
