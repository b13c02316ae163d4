"""Layers that change the shape: global pooling over time, Flatten, Reshape.

None of them has parameters. The pooling layers take the sequence mask of a variable-length
batch (``takes_sequence_mask``): with it, they pool over the real steps only.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from .core import Layer
from .registry import register

Array = Any


class _GlobalPooling1D(Layer):
    """Shared checks of the pooling layers: ``(N, T, F) -> (N, F)``."""

    takes_sequence_mask = True

    def __init__(self) -> None:
        super().__init__()
        self._shape: tuple[int, ...] | None = None

    def forget(self) -> None:
        self._shape = None

    def output_shape(self, input_shape: tuple) -> tuple:
        input_shape = tuple(input_shape)
        if len(input_shape) != 3:
            raise ValueError(
                f"{self.label} expects input of shape (n_samples, n_steps, n_features), got "
                f"shape {input_shape}"
            )
        return (input_shape[0], input_shape[2])

    def _check(self, X: Array, sequence_mask: Array) -> Array:
        """Check ``X`` (N, T, F) with T > 0; return the mask as bool (N, T) or None."""
        if X.ndim != 3 or X.shape[1] == 0:
            raise ValueError(
                f"{self.label} expects input of shape (n_samples, n_steps > 0, n_features), "
                f"got shape {tuple(X.shape)}"
            )
        if sequence_mask is None:
            return None
        if tuple(sequence_mask.shape) != tuple(X.shape[:2]):
            raise ValueError(
                f"{self.label}: sequence_mask must have shape {tuple(X.shape[:2])} "
                f"(n_samples, n_steps), got {tuple(sequence_mask.shape)}"
            )
        xp = self.xp
        if sequence_mask.dtype == xp.bool:
            return sequence_mask
        if not xp.isdtype(sequence_mask.dtype, ("integral", "real floating")):
            raise TypeError(
                f"{self.label}: sequence_mask must be boolean (True on real steps), got dtype "
                f"{sequence_mask.dtype}"
            )
        return sequence_mask != 0

    def forward(self, X: Array, *, training: bool = False, sequence_mask: Array = None) -> Array:
        """
        Parameters
        ----------
        X : array of shape (n_samples, n_steps, n_features)
        sequence_mask : bool array of shape (n_samples, n_steps), optional

        Returns
        -------
        Y : array of shape (n_samples, n_features)
        """
        mask = self._check(X, sequence_mask)
        self._shape = tuple(X.shape)
        return self._pool(X, mask)

    def _pool(self, X: Array, mask: Array) -> Array:
        """``Y`` of shape (N, F) from the checked ``X`` and ``mask`` (bool or None)."""
        raise NotImplementedError

    def _check_dEdY(self, dEdY: Array) -> tuple[int, ...]:
        if self._shape is None:
            raise RuntimeError(f"{self.label}: backward called before forward")
        N, _, F = self._shape
        if tuple(dEdY.shape) != (N, F):
            raise ValueError(
                f"{self.label}: dEdY must have the output's shape {(N, F)}, got {tuple(dEdY.shape)}"
            )
        return self._shape


@register
class GlobalAveragePooling1D(_GlobalPooling1D):
    """The mean over the time axis: ``(N, T, F) -> (N, F)``.

    With ``sequence_mask`` (bool ``(N, T)``, True on real steps) the mean is over the real
    steps of each sequence only; a sequence with no real step gives zeros (and no gradient).
    """

    def __init__(self) -> None:
        super().__init__()
        self._weights: Array = None

    def forget(self) -> None:
        super().forget()
        self._weights = None

    def _pool(self, X: Array, mask: Array) -> Array:
        """The masked mean; caches the weights of each step (None without a mask)."""
        xp = self.xp
        if mask is None:
            self._weights = None
            return xp.mean(X, axis=1)
        counts = xp.sum(xp.astype(mask, X.dtype), axis=1, keepdims=True)  # (N, 1)
        weights = xp.where(mask, 1.0 / xp.maximum(counts, 1.0), 0.0)  # (N, T)
        self._weights = weights
        # where, not a product: padded steps may hold anything, even NaN
        return xp.sum(xp.where(mask[:, :, None], X, 0.0) * weights[:, :, None], axis=1)

    def backward(self, dEdY: Array, *, need_dX: bool = True) -> Array | None:
        """``dE/dX[n, t, f] = dE/dY[n, f] * w[n, t]``, ``w`` = 1/T (or 1/real steps, 0 on
        padding)."""
        N, T, F = self._check_dEdY(dEdY)
        if not need_dX:
            return None
        xp = self.xp
        if self._weights is None:
            return xp.broadcast_to(dEdY[:, None, :] / T, (N, T, F)) * 1.0  # a real array
        return dEdY[:, None, :] * self._weights[:, :, None]


@register
class GlobalMaxPooling1D(_GlobalPooling1D):
    """The maximum over the time axis: ``(N, T, F) -> (N, F)``.

    With ``sequence_mask`` the maximum is over the real steps only; a sequence with no
    real step gives zeros. The gradient goes to the first step holding the maximum (as
    PyTorch's ``max(dim=)``).
    """

    def __init__(self) -> None:
        super().__init__()
        self._argmax: Array = None
        self._any: Array = None

    def forget(self) -> None:
        super().forget()
        self._argmax = self._any = None

    def _pool(self, X: Array, mask: Array) -> Array:
        """The masked maximum; caches the arg-max step of each (sequence, feature)."""
        xp = self.xp
        if mask is not None:
            X = xp.where(mask[:, :, None], X, -xp.inf)
        self._argmax = xp.argmax(X, axis=1)  # (N, F), the first maximum
        Y = xp.max(X, axis=1)
        if mask is None:
            self._any = None
            return Y
        self._any = xp.any(mask, axis=1)[:, None]  # (N, 1)
        return xp.where(self._any, Y, 0.0)

    def backward(self, dEdY: Array, *, need_dX: bool = True) -> Array | None:
        """``dE/dY`` routed to the arg-max step of each (sequence, feature)."""
        N, T, F = self._check_dEdY(dEdY)
        if not need_dX:
            return None
        xp = self.xp
        steps = xp.arange(T, device=self.backend.device)[None, :, None]
        chosen = steps == self._argmax[:, None, :]  # (N, T, F)
        if self._any is not None:
            chosen = chosen & self._any[:, :, None]
        return xp.where(chosen, dEdY[:, None, :], 0.0)


class _Reshaping(Layer):
    """Shared by Flatten and Reshape: each sample's values, in order, in another shape."""

    def __init__(self) -> None:
        super().__init__()
        self._shape: tuple[int, ...] | None = None

    def forget(self) -> None:
        self._shape = None

    def _check_rank(self, input_shape: tuple) -> tuple:
        """``input_shape`` as a tuple; a ValueError naming the layer when it has no sample axes."""
        input_shape = tuple(input_shape)
        if len(input_shape) < 2:
            raise ValueError(
                f"{self.label} expects input of shape (n_samples, ...), got shape {input_shape}"
            )
        return input_shape

    def _reshape(self, X: Array, shape: tuple) -> Array:
        """``X`` reshaped to ``shape``, remembering its own shape for :meth:`backward`."""
        self._shape = tuple(X.shape)
        return self.xp.reshape(X, shape)

    def backward(self, dEdY: Array, *, need_dX: bool = True) -> Array | None:
        if self._shape is None:
            raise RuntimeError(f"{self.label}: backward called before forward")
        return self.xp.reshape(dEdY, self._shape) if need_dX else None


@register
class Flatten(_Reshaping):
    """Every axis after the first folded into one: ``(N, d1, d2, ...) -> (N, d1 * d2 * ...)``."""

    def output_width(self, n_inputs: int | None) -> int | None:
        return None  # depends on every axis, not the last alone

    def output_shape(self, input_shape: tuple) -> tuple:
        input_shape = self._check_rank(input_shape)
        rest = input_shape[1:]
        return (input_shape[0], None if None in rest else math.prod(rest))

    def forward(self, X: Array, *, training: bool = False) -> Array:
        """``X`` of shape (n_samples, ...) as (n_samples, prod(...))."""
        self.output_shape(tuple(X.shape))
        return self._reshape(X, (X.shape[0], math.prod(X.shape[1:])))


@register
class Reshape(_Reshaping):
    """Each sample reshaped to ``target_shape``: ``(N, ...) -> (N, *target_shape)``.

    Parameters
    ----------
    target_shape : tuple of int
        The shape of one sample (the batch axis excluded), as Keras; one entry may be -1
        (inferred from the sample's size).
    """

    def __init__(self, target_shape: tuple[int, ...]) -> None:
        super().__init__()
        if isinstance(target_shape, (int, numbers.Integral)) and not isinstance(target_shape, bool):
            target_shape = (target_shape,)
        try:
            shape = tuple(target_shape)
        except TypeError:
            raise TypeError(
                f"Reshape target_shape must be a tuple of integers, got {target_shape!r}"
            ) from None
        bad = [
            s
            for s in shape
            if isinstance(s, bool) or not isinstance(s, numbers.Integral) or (s < 1 and s != -1)
        ]
        if not shape or bad or shape.count(-1) > 1:
            raise ValueError(
                f"Reshape target_shape must be positive integers with at most one -1, got "
                f"{target_shape!r}"
            )
        self.target_shape = tuple(int(s) for s in shape)

    def describe(self) -> str:
        return f"Reshape({self.target_shape})"

    def output_width(self, n_inputs: int | None) -> int | None:
        last = self.target_shape[-1]
        return None if last == -1 else last

    def output_shape(self, input_shape: tuple) -> tuple:
        input_shape = self._check_rank(input_shape)
        rest = input_shape[1:]
        size = None if None in rest else math.prod(rest)
        known = math.prod(s for s in self.target_shape if s != -1)
        if -1 not in self.target_shape:
            if size is not None and size != known:
                raise ValueError(self._mismatch(input_shape))
            return (input_shape[0], *self.target_shape)
        if size is not None and size % known:
            raise ValueError(self._mismatch(input_shape))
        missing = None if size is None else size // known
        return (input_shape[0], *(missing if s == -1 else s for s in self.target_shape))

    def _mismatch(self, input_shape: tuple) -> str:
        return (
            f"{self.label} cannot reshape samples of shape {input_shape[1:]} "
            f"({math.prod(input_shape[1:])} values) to {self.target_shape}"
        )

    def forward(self, X: Array, *, training: bool = False) -> Array:
        """``X`` of shape (n_samples, ...) as (n_samples, *target_shape)."""
        return self._reshape(X, self.output_shape(tuple(X.shape)))

    def get_config(self) -> dict:
        return {"type": "Reshape", "target_shape": list(self.target_shape)}
