"""Layer normalization over the last axis (PyTorch's ``nn.LayerNorm(dim)``)."""

from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace

Array = Any


def layer_norm_forward(
    X: Array, weight: Array, bias: Array, eps: float = 1e-5, *, xp: Any = None
) -> tuple[Array, tuple[Array, Array, Array]]:
    """``(X - mean) / sqrt(var + eps) * weight + bias`` over the last axis (biased variance).

    Parameters
    ----------
    X : array of shape (..., D)
    weight, bias : arrays of shape (D,)
    eps : float

    Returns
    -------
    Y : array of shape (..., D)
    cache : (X_hat, rstd, weight) for :func:`layer_norm_backward`
    """
    xp = xp or array_namespace(X)
    mu = xp.mean(X, axis=-1, keepdims=True)
    Xc = X - mu
    var = xp.mean(Xc * Xc, axis=-1, keepdims=True)
    rstd = 1.0 / xp.sqrt(var + eps)
    X_hat = Xc * rstd
    return X_hat * weight + bias, (X_hat, rstd, weight)


def layer_norm_backward(
    dY: Array, cache: tuple[Array, Array, Array], *, need_dX: bool = True, xp: Any = None
) -> tuple[Array, Array, Array]:
    """Gradients of :func:`layer_norm_forward`.

    Returns
    -------
    dX : array of shape (..., D) or None
    dweight, dbias : arrays of shape (D,)
    """
    X_hat, rstd, weight = cache
    xp = xp or array_namespace(dY)
    D = X_hat.shape[-1]
    folded_dY = xp.reshape(dY, (-1, D))
    dweight = xp.sum(folded_dY * xp.reshape(X_hat, (-1, D)), axis=0)
    dbias = xp.sum(folded_dY, axis=0)
    dX = None
    if need_dX:
        g = dY * weight
        dX = rstd * (
            g
            - xp.mean(g, axis=-1, keepdims=True)
            - X_hat * xp.mean(g * X_hat, axis=-1, keepdims=True)
        )
    return dX, dweight, dbias
