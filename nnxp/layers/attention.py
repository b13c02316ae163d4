"""Attention layers: multi-head self-attention and additive attention pooling."""

from __future__ import annotations

import math
from typing import Any

from ..functional.attention import (
    additive_pooling_backward,
    additive_pooling_forward,
    mha_backward,
    mha_forward,
)
from ._sequence import SequenceLayer, constant, uniform_weights
from .core import BuildContext
from .registry import register

Array = Any


class _Attention(SequenceLayer):
    """Shared by the attention layers: ``dim`` features per step in, a forward cache."""

    takes_sequence_mask = True
    dim: int
    _cache: Any

    def forget(self) -> None:
        self._cache = None

    def output_width(self, n_inputs: int | None) -> int:
        self._check_width(n_inputs, self.dim)
        return self.dim


@register
class MultiHeadAttention(_Attention):
    """Multi-head scaled dot-product self-attention with the output projection: PyTorch's
    ``nn.MultiheadAttention(dim, num_heads, batch_first=True)`` called as ``m(x, x, x)``.

    Parameters
    ----------
    dim : int
        ``D``, features per step (in and out).
    num_heads : int
        ``H``, dividing ``dim``.
    causal : bool, default False
        Step ``t`` attends to steps ``<= t`` only.

    Attributes
    ----------
    params : dict
        PyTorch's names and shapes: ``in_proj_weight (3D, D)`` (query, key, value rows),
        ``in_proj_bias (3D,)``, ``out_proj_weight (D, D)`` (PyTorch's ``out_proj.weight``),
        ``out_proj_bias (D,)``. Initialised as PyTorch: Xavier-uniform in-projection,
        zero biases.
    attention_weights : array of shape (N, H, T, T)
        The weights of the last forward pass (rows: queries, columns: keys).

    Notes
    -----
    ``sequence_mask`` (bool ``(N, T)``, True for real steps) masks padded *keys* (PyTorch's
    ``key_padding_mask = ~sequence_mask``); outputs at padded queries are computed as in
    PyTorch, and a loss that ignores padded steps gives them zero gradient.
    """

    def __init__(self, dim: int, num_heads: int, causal: bool = False) -> None:
        for what, value in (("dim", dim), ("num_heads", num_heads)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"MultiHeadAttention {what} must be a positive integer, got {value!r}"
                )
        if dim % num_heads:
            raise ValueError(
                f"MultiHeadAttention dim must be divisible by num_heads, got dim={dim} and "
                f"num_heads={num_heads}"
            )
        if not isinstance(causal, bool):
            raise TypeError(f"MultiHeadAttention causal must be True or False, got {causal!r}")
        super().__init__()
        self.dim, self.num_heads, self.causal = dim, num_heads, causal
        self._cache: Any = None

    @property
    def attention_weights(self) -> Array:
        return None if self._cache is None else self._cache.P

    def describe(self) -> str:
        causal = ", causal" if self.causal else ""
        return f"MultiHeadAttention({self.dim}, {self.num_heads} heads{causal})"

    def _settings(self) -> dict:
        return {"dim": self.dim, "num_heads": self.num_heads, "causal": self.causal}

    def build(self, ctx: BuildContext) -> None:
        super().build(ctx)
        D = self.dim
        self.params = {
            "in_proj_weight": uniform_weights(ctx, (3 * D, D), math.sqrt(6.0 / (4 * D))),
            "in_proj_bias": constant(ctx, (3 * D,), 0.0),
            "out_proj_weight": uniform_weights(ctx, (D, D), 1.0 / math.sqrt(D)),
            "out_proj_bias": constant(ctx, (D,), 0.0),
        }

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        D = self.dim
        return {
            "in_proj_weight": (3 * D, D),
            "in_proj_bias": (3 * D,),
            "out_proj_weight": (D, D),
            "out_proj_bias": (D,),
        }

    def output_shape(self, input_shape: tuple) -> tuple:
        self._check_sequence_shape(input_shape, self.dim)
        return tuple(input_shape)

    def forward(self, X: Array, *, training: bool = False, sequence_mask: Array = None) -> Array:
        """Self-attention of ``X`` (shape (N, T, dim)) -> (N, T, dim)."""
        self._check_sequence_input(X, sequence_mask, self.dim)
        p = self.params
        Y, self._cache = mha_forward(
            X,
            p["in_proj_weight"],
            p["in_proj_bias"],
            p["out_proj_weight"],
            p["out_proj_bias"],
            self.num_heads,
            key_mask=sequence_mask,
            causal=self.causal,
            xp=self.xp,
        )
        return Y

    def backward(self, dEdY: Array, *, need_dX: bool = True) -> Array | None:
        if self._cache is None:
            raise RuntimeError(f"{self.label}: backward called before forward")
        dX, dWi, dbi, dWo, dbo = mha_backward(dEdY, self._cache, need_dX=need_dX, xp=self.xp)
        self.grads = {
            "in_proj_weight": dWi,
            "in_proj_bias": dbi,
            "out_proj_weight": dWo,
            "out_proj_bias": dbo,
        }
        return dX


@register
class AdditiveAttentionPooling(_Attention):
    """Bahdanau-style attention pooling over time: ``(N, T, dim)`` -> ``(N, dim)``.

    ``s_t = v . tanh(W x_t + b)``; ``a = softmax(s)`` over each sequence's real steps;
    the output is ``sum_t a_t x_t``.

    Parameters
    ----------
    dim : int
        Features per step.
    units : int, optional
        Size of the scoring layer (default ``dim``).

    Attributes
    ----------
    params : {"W": (units, dim), "b": (units,), "v": (units,)}
    attention_weights : array of shape (N, T), the weights of the last forward pass
    """

    def __init__(self, dim: int, units: int | None = None) -> None:
        units = dim if units is None else units
        for what, value in (("dim", dim), ("units", units)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"AdditiveAttentionPooling {what} must be a positive integer, got {value!r}"
                )
        super().__init__()
        self.dim, self.units = dim, units
        self._cache: Any = None

    @property
    def attention_weights(self) -> Array:
        return None if self._cache is None else self._cache[1]

    def describe(self) -> str:
        return f"AdditiveAttentionPooling({self.dim}, units={self.units})"

    def _settings(self) -> dict:
        return {"dim": self.dim, "units": self.units}

    def build(self, ctx: BuildContext) -> None:
        super().build(ctx)
        limit = math.sqrt(6.0 / (self.dim + self.units))
        self.params = {
            "W": uniform_weights(ctx, (self.units, self.dim), limit),
            "b": constant(ctx, (self.units,), 0.0),
            "v": uniform_weights(ctx, (self.units,), math.sqrt(3.0 / self.units)),
        }

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"W": (self.units, self.dim), "b": (self.units,), "v": (self.units,)}

    def output_shape(self, input_shape: tuple) -> tuple:
        self._check_sequence_shape(input_shape, self.dim)
        return (input_shape[0], self.dim)

    def forward(self, X: Array, *, training: bool = False, sequence_mask: Array = None) -> Array:
        """Pool ``X`` (shape (N, T, dim)) over its real steps -> (N, dim)."""
        self._check_sequence_input(X, sequence_mask, self.dim)
        p = self.params
        Y, self._cache = additive_pooling_forward(
            X, p["W"], p["b"], p["v"], mask=sequence_mask, xp=self.xp
        )
        return Y

    def backward(self, dEdY: Array, *, need_dX: bool = True) -> Array | None:
        if self._cache is None:
            raise RuntimeError(f"{self.label}: backward called before forward")
        dX, dW, db, dv = additive_pooling_backward(dEdY, self._cache, need_dX=need_dX, xp=self.xp)
        self.grads = {"W": dW, "b": db, "v": dv}
        return dX
