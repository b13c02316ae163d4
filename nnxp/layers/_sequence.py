"""What the sequence layers share: building on first call, mask checks, host-drawn weights,
and a parameter dict that writes through to sub-layers (for the wrappers)."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

from ..backend import asarray, get_backend
from ..random import Generator, host_generator
from .core import BuildContext, Layer
from .registry import registered_name

Array = Any


class SequenceLayer(Layer):
    """Base of the sequence layers: config round trip and the first-call build."""

    takes_sequence_mask = False

    def _settings(self) -> dict:
        """The constructor arguments (JSON-able)."""
        return {}

    def get_config(self) -> dict:
        return {"type": registered_name(type(self)), **self._settings()}

    @classmethod
    def from_config(cls, config: dict) -> Layer:
        settings = {k: v for k, v in config.items() if k != "type"}
        return cls(**settings)

    def _ensure_built(self, X: Array) -> None:
        """Build on the current backend (seed 0) when used standalone before any network."""
        if getattr(self, "backend", None) is not None:
            return
        backend = get_backend()
        xp = backend.xp
        dtype = X.dtype if xp.isdtype(X.dtype, "real floating") else xp.float32
        ctx = BuildContext(
            backend=backend, dtype=dtype, host_rng=host_generator(0), rng=Generator(backend, 0)
        )
        self.build(ctx)

    def __call__(self, X: Array, **kwargs: Any) -> Array:
        return self.forward(X, **kwargs)

    def _check_float_input(self, X: Array, rank: int, width: int | None, what: str) -> None:
        """Rank, last-axis width and dtype of a float input, naming this layer."""
        shape = getattr(X, "shape", None)
        if shape is None or len(shape) != rank or (width is not None and shape[-1] != width):
            raise ValueError(f"{self.label} expects input of shape {what}, got shape {shape}")
        if X.dtype != self.dtype:
            raise TypeError(f"{self.label} expects dtype {self.dtype}, got {X.dtype}")

    def _check_sequence_shape(self, input_shape: tuple, width: int) -> None:
        """The :meth:`output_shape` check of a layer taking ``(n_samples, n_steps, width)``."""
        if len(input_shape) != 3:
            raise ValueError(
                f"{self.label} expects input of shape (n_samples, n_steps, {width}), got "
                f"shape {tuple(input_shape)}"
            )
        self.output_width(input_shape[-1])

    def _check_sequence_input(self, X: Array, sequence_mask: Array, width: int) -> None:
        """The :meth:`forward` checks of a layer taking ``X`` of shape (N, T, ``width``) and
        a ``sequence_mask`` of shape (N, T) (building it first when used standalone)."""
        self._ensure_built(X)
        self._check_float_input(X, 3, width, f"(n_samples, n_steps, {width})")
        self._check_mask(sequence_mask, X.shape[0], X.shape[1])

    def _check_mask(self, mask: Array, N: int, T: int) -> None:
        """``mask`` must be None or a bool array of shape ``(N, T)``."""
        if mask is None:
            return
        shape = tuple(getattr(mask, "shape", ()))
        if shape != (N, T):
            raise ValueError(
                f"{self.label}: sequence_mask must have shape (n_samples, n_steps) = "
                f"{(N, T)}, got {shape}"
            )
        if mask.dtype != self.xp.bool:
            raise TypeError(f"{self.label}: sequence_mask must be a bool array, got {mask.dtype}")


def uniform_weights(ctx: BuildContext, shape: tuple[int, ...], limit: float) -> Array:
    """``U(-limit, limit)`` drawn on the host (same numbers on every backend); zeros when
    ``ctx.host_rng`` is None (the layer's weights are about to be overwritten)."""
    xp = ctx.backend.xp
    if ctx.host_rng is None:
        return xp.zeros(shape, dtype=ctx.dtype, device=ctx.backend.device)
    host = ctx.host_rng.uniform(-limit, limit, size=shape)
    return asarray(host, dtype=ctx.dtype, backend=ctx.backend)


def constant(ctx: BuildContext, shape: tuple[int, ...], value: float) -> Array:
    """A constant parameter on the context's backend."""
    xp = ctx.backend.xp
    return xp.full(shape, value, dtype=ctx.dtype, device=ctx.backend.device)


class NestedParams(MutableMapping):
    """``{"<prefix>.<name>": array}`` over sub-layers' ``params``; writes go through."""

    def __init__(self, layers: dict[str, Layer]) -> None:
        self._layers = layers

    def _split(self, key: str) -> tuple[Layer, str]:
        prefix, _, name = key.partition(".")
        layer = self._layers.get(prefix)
        if layer is None or name not in layer.params:
            raise KeyError(key)
        return layer, name

    def __getitem__(self, key: str) -> Array:
        layer, name = self._split(key)
        return layer.params[name]

    def __setitem__(self, key: str, value: Array) -> None:
        layer, name = self._split(key)
        layer.params[name] = value

    def __delitem__(self, key: str) -> None:
        raise TypeError("the parameters of a wrapper cannot be deleted")

    def __iter__(self) -> Iterator[str]:
        for prefix, layer in self._layers.items():
            for name in layer.params:
                yield f"{prefix}.{name}"

    def __len__(self) -> int:
        return sum(len(layer.params) for layer in self._layers.values())


def nested_grads(layers: dict[str, Layer]) -> dict[str, Array]:
    """The sub-layers' ``grads`` under the same names as :class:`NestedParams`."""
    return {f"{p}.{n}": g for p, layer in layers.items() for n, g in layer.grads.items()}
