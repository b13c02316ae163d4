"""Activation functions: forward, and the derivative computed from the output Y."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from array_api_compat import array_namespace

from .softmax import softmax

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
    """An activation ``g`` with its backward pass computed from the output ``Y = g(A)``.

    Subclasses give ``forward(A) -> Y`` and either ``derivative(Y) -> g'(A)`` (element-wise
    activations) or override ``backward(Y, dEdY) -> dEdA`` (softmax: a Jacobian-vector product).
    Every method takes the namespace ``xp`` when the caller has it (layers do, once per
    network), and looks it up from the array otherwise. Instances are callable:
    ``g(A)`` is ``g.forward(A)``.
    """

    name = ""

    def __call__(self, A: Array) -> Array:
        return self.forward(A)

    def forward(self, A: Array, xp: Any = None) -> Array:
        """``Y = g(A)``, same shape as ``A``."""
        raise NotImplementedError

    def derivative(self, Y: Array, xp: Any = None) -> Array:
        """``g'(A)`` from ``Y = g(A)``, same shape as ``Y``."""
        raise NotImplementedError

    def backward(self, Y: Array, dEdY: Array, xp: Any = None) -> Array:
        """``dE/dA`` from the output ``Y`` and ``dE/dY`` (shapes ``(..., n)``)."""
        return self.derivative(Y, xp) * dEdY

    def config(self) -> dict:
        """The settings that rebuild this activation with :func:`get_activation`."""
        return {"name": self.name}

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({settings})"


class Linear(ActivationFunction):
    name = "linear"

    def forward(self, A: Array, xp: Any = None) -> Array:
        return A

    def derivative(self, Y: Array, xp: Any = None) -> Array:
        return (xp or array_namespace(Y)).ones_like(Y)

    def backward(self, Y: Array, dEdY: Array, xp: Any = None) -> Array:
        return dEdY


class Sigmoid(ActivationFunction):
    """``1 / (1 + exp(-A))`` computed as ``(1 + tanh(A / 2)) / 2``: nothing overflows for
    any ``|A|``, the absolute error is one rounding, and it takes half the operations of the
    two-branch form. Outputs below ~1e-8 lose relative precision; no loss depends on it,
    since the binary cross-entropy is taken from ``A`` (softplus)."""

    name = "sigmoid"

    def forward(self, A: Array, xp: Any = None) -> Array:
        return 0.5 * (xp or array_namespace(A)).tanh(0.5 * A) + 0.5

    def derivative(self, Y: Array, xp: Any = None) -> Array:
        return Y * (1.0 - Y)

    def backward(self, Y: Array, dEdY: Array, xp: Any = None) -> Array:
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

    def backward(self, Y: Array, dEdY: Array, xp: Any = None) -> Array:
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
        alpha = float(alpha)
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"leaky_relu alpha must be in [0, 1), got {alpha}")
        self.alpha = alpha

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

    def backward(self, Y: Array, dEdY: Array, xp: Any = None) -> Array:
        xp = xp or array_namespace(Y)
        return Y * (dEdY - xp.sum(dEdY * Y, axis=-1, keepdims=True))


ACTIVATIONS: dict[str, Callable[..., ActivationFunction]] = {
    cls.name: cls for cls in (Linear, Sigmoid, Tanh, ReLU, LeakyReLU, Softmax)
}


def get_activation(activation: str | dict | ActivationFunction) -> ActivationFunction:
    """Resolve a name (``"relu"``), a config dict (``{"name": "leaky_relu", "alpha": 0.1}``)
    or an :class:`ActivationFunction` instance to an instance.

    Raises
    ------
    ValueError
        For an unknown name; the message lists the valid ones.
    """
    if isinstance(activation, ActivationFunction):
        return activation
    if isinstance(activation, dict):
        settings = dict(activation)
        name = settings.pop("name", None)
    else:
        name, settings = activation, {}
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid names are {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name](**settings)
