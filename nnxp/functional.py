"""Pure Array API kernels: the dense layer, activations, softmax and the fused losses.

Nothing here imports an array library: every function takes its namespace from the arrays
it is given (or receives ``xp``), uses only the Python Array API standard, and never
mutates an input. Shapes follow the classic answer::

    forward(X, W, b, g):                  X [n, n_in], W [n_out, n_in], b [n_out]
        A = X @ W.T + b ; Y = g(A)         Y [n, n_out]
    backprop(dEdY, W, Y, X, gd):           gd(Y) = g'(A), computed from the output Y
        Deltas = gd(Y) * dEdY
        dEdX = Deltas @ W                  -> dEdY of the layer below
        dEdW = Deltas.T @ X                 [n_out, n_in]
        dEdb = sum(Deltas, axis=0)          [n_out]

``X`` may carry extra leading axes ``(..., n_in)`` (batch, time, ...): they are folded for
the matrix products and the gradients sum over all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from array_api_compat import array_namespace

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


# --------------------------------------------------------------------------- softmax


def softmax(A: Array, axis: int = -1, *, xp: Any = None) -> Array:
    """Softmax of ``A`` along ``axis`` (the last by default), max-subtracted so it never
    overflows; every slice along ``axis`` sums to one."""
    xp = xp or array_namespace(A)
    E = xp.exp(A - xp.max(A, axis=axis, keepdims=True))
    return E / xp.sum(E, axis=axis, keepdims=True)


def softmax_with_log(
    A: Array, mask: Array = None, axis: int = -1, *, xp: Any = None
) -> tuple[Array, Array]:
    """``(softmax(A), log_softmax(A))`` sharing one max-subtraction and one sum; with
    ``mask``, the masked softmax and its log (``-inf`` on masked entries)."""
    xp = xp or array_namespace(A)
    if mask is None:
        Z = A - xp.max(A, axis=axis, keepdims=True)
    else:
        Z = _masked_logits(A, mask, axis, xp)
    E = xp.exp(Z)
    s = xp.sum(E, axis=axis, keepdims=True)
    if mask is not None:
        s = xp.where(s == 0, 1.0, s)  # all-masked slices: zeros, not 0/0
    return E / s, Z - xp.log(s)


def log_softmax(A: Array, axis: int = -1, *, xp: Any = None) -> Array:
    """``log(softmax(A))`` computed without forming the softmax: finite for any finite ``A``."""
    xp = xp or array_namespace(A)
    Z = A - xp.max(A, axis=axis, keepdims=True)
    return Z - xp.log(xp.sum(xp.exp(Z), axis=axis, keepdims=True))


def softplus(A: Array, *, xp: Any = None) -> Array:
    """``log(1 + exp(A))`` without overflow: ``max(A, 0) + log1p(exp(-|A|))``."""
    xp = xp or array_namespace(A)
    return xp.maximum(A, 0.0) + xp.log1p(xp.exp(-xp.abs(A)))


# --------------------------------------------------------------------------- dense kernels


def _fold(X: Array, xp: Any) -> Array:
    """``(..., n)`` -> ``(prod(...), n)``; 2-D arrays pass through untouched."""
    if X.ndim == 2:
        return X
    return xp.reshape(X, (-1, X.shape[-1]))


def affine_forward(X: Array, W: Array, b: Array, *, xp: Any = None) -> Array:
    """``A = X @ W.T + b`` for ``X (..., n_in)``, ``W (n_out, n_in)``, ``b (n_out,)``.

    Returns
    -------
    A : array of shape ``(..., n_out)``
    """
    A = X @ W.T if X.ndim == 2 else _fold(X, xp or array_namespace(X)) @ W.T
    A += b  # in place: the product is ours, and a second activation-sized array is not
    if X.ndim == 2:
        return A
    return (xp or array_namespace(X)).reshape(A, (*X.shape[:-1], W.shape[0]))


def affine_backward(
    Deltas: Array, W: Array, X: Array, *, need_dX: bool = True, xp: Any = None
) -> tuple[Array | None, Array, Array]:
    """Gradients of ``A = X @ W.T + b`` from ``Deltas = dE/dA``.

    Parameters
    ----------
    Deltas : array of shape ``(..., n_out)``
    W : array of shape ``(n_out, n_in)``
    X : array of shape ``(..., n_in)``
    need_dX : bool
        ``False`` skips ``dE/dX`` (the first layer's, which nobody needs) and returns None.

    Returns
    -------
    dEdX : array of shape ``(..., n_in)`` or None
    dEdW : array of shape ``(n_out, n_in)``, summed over every leading axis
    dEdb : array of shape ``(n_out,)``
    """
    xp = xp or array_namespace(Deltas)
    if X.ndim == 2:
        return (Deltas @ W if need_dX else None), Deltas.T @ X, xp.sum(Deltas, axis=0)
    D2 = _fold(Deltas, xp)
    dEdX = xp.reshape(D2 @ W, X.shape) if need_dX else None
    return dEdX, D2.T @ _fold(X, xp), xp.sum(D2, axis=0)


def dense_forward(
    X: Array, W: Array, b: Array, g: Callable[[Array], Array], *, xp: Any = None
) -> Array:
    """The classic layer: ``Y = g(X @ W.T + b)``.

    Parameters
    ----------
    X : array of shape ``(..., n_in)``
    W : array of shape ``(n_out, n_in)``
    b : array of shape ``(n_out,)``
    g : callable or ActivationFunction
        The activation, applied to the pre-activation ``A``.

    Returns
    -------
    Y : array of shape ``(..., n_out)``
    """
    A = affine_forward(X, W, b, xp=xp)
    return g.forward(A, xp) if isinstance(g, ActivationFunction) else g(A)


def dense_backward(
    dEdY: Array,
    W: Array,
    Y: Array,
    X: Array,
    gd: Callable | ActivationFunction,
    *,
    need_dX: bool = True,
    xp: Any = None,
) -> tuple[Array | None, Array, Array]:
    """The classic backprop of one layer, from its output ``Y`` (no pre-activation needed).

    Parameters
    ----------
    dEdY : array of shape ``(..., n_out)``
    W : array of shape ``(n_out, n_in)``
    Y : array of shape ``(..., n_out)``, the layer's output ``g(A)``
    X : array of shape ``(..., n_in)``, the layer's input
    gd : callable or ActivationFunction
        ``gd(Y) = g'(A)`` for an element-wise activation, so ``Deltas = gd(Y) * dEdY``; an
        :class:`ActivationFunction` uses its ``backward(Y, dEdY)`` (the Jacobian-vector product for
        softmax).
    need_dX : bool
        ``False`` skips ``dE/dX``.

    Returns
    -------
    dEdX : array of shape ``(..., n_in)`` or None
    dEdW : array of shape ``(n_out, n_in)``
    dEdb : array of shape ``(n_out,)``
    """
    if isinstance(gd, ActivationFunction):
        Deltas = gd.backward(Y, dEdY, xp)
    else:
        Deltas = gd(Y) * dEdY
    return affine_backward(Deltas, W, X, need_dX=need_dX, xp=xp)


# --------------------------------------------------------------------------- masked softmax


def _masked_logits(A: Array, mask: Array, axis: int, xp: Any) -> Array:
    """``A - max(allowed A)`` on allowed entries, ``-inf`` on masked ones; an all-masked
    slice shifts by 0 so nothing becomes ``-inf - -inf``."""
    Am = xp.where(mask, A, -xp.inf)
    m = xp.max(Am, axis=axis, keepdims=True)
    return Am - xp.where(m == -xp.inf, 0.0, m)


def masked_softmax(A: Array, mask: Array, axis: int = -1, *, xp: Any = None) -> Array:
    """Softmax over ``axis`` of the entries that ``mask`` allows; exactly 0 elsewhere.

    Computed in logit space: masked logits are removed before the max-subtraction, so the
    allowed entries are renormalised to sum to one whatever the masked logits hold. A slice
    with every entry masked gives all zeros, never NaN.

    Parameters
    ----------
    A : array of shape ``(..., K)``
    mask : bool array broadcastable to ``A``
        True (or 1) where the output is allowed.
    axis : int

    Returns
    -------
    array of shape ``A.shape``
    """
    return softmax_with_log(A, mask, axis, xp=xp)[0]


def masked_log_softmax(A: Array, mask: Array, axis: int = -1, *, xp: Any = None) -> Array:
    """``log(masked_softmax(A, mask))``: finite on allowed entries, ``-inf`` on masked ones."""
    return softmax_with_log(A, mask, axis, xp=xp)[1]
