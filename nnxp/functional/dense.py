"""The dense (affine) layer kernels: forward and backward over the last axis."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from array_api_compat import array_namespace

from .activations import ActivationFunction

Array = Any


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
    A: Array = None,
) -> tuple[Array | None, Array, Array]:
    """The classic backprop of one layer, from its output ``Y`` (and ``A`` where the
    activation's derivative needs it: gelu, silu).

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
    A : array of shape ``(..., n_out)``, optional
        The pre-activation, for an :class:`ActivationFunction` with ``needs_A``.

    Returns
    -------
    dEdX : array of shape ``(..., n_in)`` or None
    dEdW : array of shape ``(n_out, n_in)``
    dEdb : array of shape ``(n_out,)``
    """
    if isinstance(gd, ActivationFunction):
        Deltas = gd.backward(Y, dEdY, xp, A=A)
    else:
        Deltas = gd(Y) * dEdY
    return affine_backward(Deltas, W, X, need_dX=need_dX, xp=xp)
