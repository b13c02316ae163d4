"""Layer normalization over the last axis."""

from __future__ import annotations

from typing import Any

from ..functional.normalization import layer_norm_backward, layer_norm_forward
from ._sequence import SequenceLayer, constant
from .core import BuildContext
from .registry import register

Array = Any


@register
class LayerNormalization(SequenceLayer):
    """``(x - mean) / sqrt(var + eps) * weight + bias`` over the last axis: PyTorch's
    ``nn.LayerNorm(dim, eps)`` (``params["weight"]``, ``params["bias"]`` as there).

    Parameters
    ----------
    dim : int
        Size of the last axis.
    eps : float, default 1e-5

    Notes
    -----
    Any input ``(..., dim)``; each vector is normalised on its own, so padded steps never
    touch real ones.
    """

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"LayerNormalization dim must be a positive integer, got {dim!r}")
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
            raise ValueError(f"LayerNormalization eps must be a positive number, got {eps!r}")
        super().__init__()
        self.dim, self.eps = dim, float(eps)
        self._cache: Any = None

    def describe(self) -> str:
        return f"LayerNormalization({self.dim})"

    def _settings(self) -> dict:
        return {"dim": self.dim, "eps": self.eps}

    def build(self, ctx: BuildContext) -> None:
        super().build(ctx)
        self.params = {
            "weight": constant(ctx, (self.dim,), 1.0),
            "bias": constant(ctx, (self.dim,), 0.0),
        }

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"weight": (self.dim,), "bias": (self.dim,)}

    def forget(self) -> None:
        self._cache = None

    def output_width(self, n_inputs: int | None) -> int:
        self._check_width(n_inputs, self.dim)
        return self.dim

    def output_shape(self, input_shape: tuple) -> tuple:
        if len(input_shape) < 2:
            raise ValueError(
                f"{self.label} expects input of shape (n_samples, ..., {self.dim}), got shape "
                f"{tuple(input_shape)}"
            )
        self.output_width(input_shape[-1])
        return tuple(input_shape)

    def forward(self, X: Array, *, training: bool = False) -> Array:
        """Normalise ``X`` (shape (N, ..., dim)); same shape out."""
        self._ensure_built(X)
        if getattr(X, "ndim", 0) < 2 or X.shape[-1] != self.dim:
            raise ValueError(
                f"{self.label} expects input of shape (n_samples, ..., {self.dim}), got shape "
                f"{getattr(X, 'shape', None)}"
            )
        if X.dtype != self.dtype:
            raise TypeError(f"{self.label} expects dtype {self.dtype}, got {X.dtype}")
        Y, self._cache = layer_norm_forward(
            X, self.params["weight"], self.params["bias"], self.eps, xp=self.xp
        )
        return Y

    def backward(self, dEdY: Array, *, need_dX: bool = True) -> Array | None:
        if self._cache is None:
            raise RuntimeError(f"{self.label}: backward called before forward")
        dX, dw, db = layer_norm_backward(dEdY, self._cache, need_dX=need_dX, xp=self.xp)
        self.grads = {"weight": dw, "bias": db}
        return dX
