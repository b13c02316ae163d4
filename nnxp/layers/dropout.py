"""Inverted dropout, with Keras's ``noise_shape``."""

from __future__ import annotations

import numbers
from typing import Any

from ..random import Generator
from .core import Layer, check_rate
from .registry import register, registered_name

Array = Any


@register
class Dropout(Layer):
    """Inverted dropout: in training, zero each entry with probability ``rate`` and scale
    the survivors by ``1 / (1 - rate)``; in inference, the identity.

    Parameters
    ----------
    rate : float in [0, 1)
    noise_shape : tuple of (int or None), optional
        As Keras: the shape of the mask, one entry per input axis; ``None`` takes the
        input's size and ``1`` broadcasts. ``(None, 1, None)`` shares one mask over every
        timestep of an ``(N, T, F)`` input.

    Notes
    -----
    The masks come from the backend generator of the network (``ctx.rng``); a standalone
    Dropout draws from a generator seeded with 0 on its first call.
    """

    def __init__(self, rate: float, noise_shape: tuple[int | None, ...] | None = None) -> None:
        super().__init__()
        rate = check_rate(rate, "Dropout rate")
        if noise_shape is not None:
            noise_shape = tuple(noise_shape)
            for size in noise_shape:
                if size is not None and (
                    isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1
                ):
                    raise ValueError(
                        f"Dropout noise_shape entries must be None or positive integers, "
                        f"got {noise_shape}"
                    )
            noise_shape = tuple(None if s is None else int(s) for s in noise_shape)
        self.rate = rate
        self.noise_shape = noise_shape
        self._mask: Array = None

    def describe(self) -> str:
        return f"Dropout({self.rate})"

    @property
    def _rng(self) -> Generator | None:  # the older name
        return self.rng

    def forget(self) -> None:
        self._mask = None

    def _mask_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if self.noise_shape is None:
            return tuple(shape)
        if len(self.noise_shape) != len(shape):
            raise ValueError(
                f"{self.label} noise_shape {self.noise_shape} has {len(self.noise_shape)} "
                f"entries but the input has shape {tuple(shape)}"
            )
        out = []
        for size, n in zip(self.noise_shape, shape):
            if size is None:
                size = n
            elif size not in (1, n):
                raise ValueError(
                    f"{self.label} noise_shape {self.noise_shape} does not broadcast to the "
                    f"input shape {tuple(shape)}"
                )
            out.append(size)
        return tuple(out)

    def output_shape(self, input_shape: tuple) -> tuple:
        if self.noise_shape is not None and len(self.noise_shape) != len(input_shape):
            raise ValueError(
                f"{self.label} noise_shape {self.noise_shape} has {len(self.noise_shape)} "
                f"entries but the input has shape {tuple(input_shape)}"
            )
        return tuple(input_shape)

    def forward(self, X: Array, *, training: bool = False) -> Array:
        """Returns ``X * mask / (1 - rate)`` in training, ``X`` otherwise."""
        shape = self._mask_shape(tuple(X.shape))
        if not training or self.rate == 0.0:
            self._mask = None
            return X
        keep = self.rng.uniform(shape, self.dtype) >= self.rate
        self._mask = self.xp.astype(keep, self.dtype) * (1.0 / (1.0 - self.rate))
        return X * self._mask

    def backward(self, dEdY: Array, *, need_dX: bool = True) -> Array | None:
        """The same mask as the forward pass: ``dEdY * mask / (1 - rate)``."""
        return dEdY if self._mask is None else dEdY * self._mask

    def get_config(self) -> dict:
        noise_shape = None if self.noise_shape is None else list(self.noise_shape)
        return {"type": registered_name(type(self)), "rate": self.rate, "noise_shape": noise_shape}

    @classmethod
    def from_config(cls, config: dict) -> Dropout:
        settings = {k: v for k, v in config.items() if k != "type"}
        if settings.get("noise_shape") is not None:
            settings["noise_shape"] = tuple(settings["noise_shape"])
        return cls(**settings)
