"""Layers made of layers: ``Residual`` (``x + f(x)``) and ``Bidirectional``.

A wrapper's ``params`` is a view ``{"<part>.<name>": array}`` over its parts' parameters
(``"0.W"``, ``"1.in_proj_weight"``, ``"forward.W_ih"``, ``"backward.W_ih"``): an optimizer
that assigns ``params[key]`` updates the part itself.
"""

from __future__ import annotations

from typing import Any

from array_api_compat import device

from ._sequence import NestedParams, SequenceLayer, nested_grads
from .core import BuildContext, Layer
from .registry import register

Array = Any


def _rebuild(config: dict) -> Layer:
    from .registry import layer_from_config

    return layer_from_config(config)


def _forward(layer: Any, X: Array, training: bool, mask: Array) -> Array:
    if getattr(layer, "takes_sequence_mask", False):
        return layer.forward(X, training=training, sequence_mask=mask)
    return layer.forward(X, training=training)


class _Wrapper(SequenceLayer):
    """Parameters and gradients as views over ``self._parts`` (name -> layer)."""

    takes_sequence_mask = True
    _parts: dict[str, Layer]

    @property  # type: ignore[override]
    def params(self) -> NestedParams:
        return NestedParams(self._parts)

    @params.setter
    def params(self, values: Any) -> None:
        view = NestedParams(self._parts)
        for key, value in dict(values).items():
            view[key] = value

    @property  # type: ignore[override]
    def grads(self) -> dict:
        return nested_grads(self._parts)

    @grads.setter
    def grads(self, values: Any) -> None:
        """Hand ``{"<part>.<name>": array}`` out to the parts (``{}`` clears them all)."""
        values = dict(values)
        unknown = [k for k in values if k.partition(".")[0] not in self._parts]
        if unknown:
            raise KeyError(f"{self.label} has no parts for gradients {unknown}")
        for prefix, part in self._parts.items():
            part.grads = {
                k.partition(".")[2]: v for k, v in values.items() if k.partition(".")[0] == prefix
            }

    def build(self, ctx: BuildContext) -> None:
        Layer.build(self, ctx)
        for name, part in self._parts.items():
            part.position = f"{self.position}{type(self).__name__}.{name}: "
            part.build(ctx)

    def move(self, ctx: BuildContext) -> None:
        Layer.build(self, ctx)
        for part in self._parts.values():
            part.move(ctx)

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """The parts' parameter shapes under the wrapper's names (``"<part>.<name>"``)."""
        return {
            f"{prefix}.{name}": shape
            for prefix, part in self._parts.items()
            for name, shape in part.parameter_shapes().items()
        }

    def forget(self) -> None:
        for part in self._parts.values():
            part.forget()

    def regularization(self) -> tuple[Any, dict]:
        """The parts' penalties summed, their gradients under the wrapper's names."""
        total, grads = None, {}
        for name, part in self._parts.items():
            reg = getattr(part, "regularization", None)
            penalty, part_grads = reg() if reg is not None else (None, {})
            if penalty is not None:
                total = penalty if total is None else total + penalty
            grads.update({f"{name}.{k}": g for k, g in part_grads.items()})
        return total, grads


@register
class Residual(_Wrapper):
    """``x + f(x)`` with ``f`` the given layers in order (their output must keep ``x``'s shape).

    A pre-norm transformer encoder block is two of them::

        Residual([LayerNormalization(D), MultiHeadAttention(D, H)])
        Residual([LayerNormalization(D), Dense(D, 4 * D, "relu"), Dense(4 * D, D)])

    Parameters
    ----------
    layers : list of Layer
        The sequence mask reaches every part that takes one.
    """

    def __init__(self, layers: list) -> None:
        if isinstance(layers, Layer):
            layers = [layers]
        layers = list(layers)
        if not layers or not all(isinstance(layer, Layer) for layer in layers):
            raise TypeError(f"Residual takes a non-empty list of nnxp layers, got {layers!r}")
        self._parts = {str(i): layer for i, layer in enumerate(layers)}
        super().__init__()

    @property
    def layers(self) -> list:
        """The wrapped layers, in order (held once, in ``_parts``, so a network's shallow
        twin of this layer twins them once)."""
        return list(self._parts.values())

    def describe(self) -> str:
        return f"Residual([{', '.join(layer.describe() for layer in self.layers)}])"

    def get_config(self) -> dict:
        return {"type": "Residual", "layers": [layer.get_config() for layer in self.layers]}

    @classmethod
    def from_config(cls, config: dict) -> Layer:
        return cls([_rebuild(c) for c in config["layers"]])

    def output_width(self, n_inputs: int | None) -> int | None:
        width = n_inputs
        for layer in self.layers:
            width = layer.output_width(width)
        if n_inputs is not None and width is not None and width != n_inputs:
            raise ValueError(
                f"{self.label}: the wrapped layers map {n_inputs} features to {width}; a "
                f"residual connection needs them equal"
            )
        return n_inputs

    def output_shape(self, input_shape: tuple) -> tuple:
        shape = tuple(input_shape)
        for layer in self.layers:
            if hasattr(layer, "output_shape"):
                shape = layer.output_shape(shape)
            else:
                shape = (*shape[:-1], layer.output_width(shape[-1]))
        if len(shape) != len(input_shape) or shape[-1] != input_shape[-1]:
            raise ValueError(
                f"{self.label}: the wrapped layers map shape {tuple(input_shape)} to {shape}; "
                f"a residual connection needs them equal"
            )
        return tuple(input_shape)

    def forward(self, X: Array, *, training: bool = False, sequence_mask: Array = None) -> Array:
        """``X + f(X)``, shapes ``(N, ..., D)``."""
        self._ensure_built(X)
        Z = X
        for layer in self.layers:
            Z = _forward(layer, Z, training, sequence_mask)
        if tuple(Z.shape) != tuple(X.shape):
            raise ValueError(
                f"{self.label}: the wrapped layers map shape {tuple(X.shape)} to "
                f"{tuple(Z.shape)}; a residual connection needs them equal"
            )
        return X + Z

    def backward(self, dEdY: Array, *, need_dX: bool = True) -> Array | None:
        dZ = dEdY
        for i, layer in enumerate(reversed(self.layers)):
            first = i == len(self.layers) - 1
            dZ = layer.backward(dZ, need_dX=need_dX or not first)
        if not need_dX:
            return None
        return dEdY + dZ


@register
class Bidirectional(_Wrapper):
    """Run a recurrent layer forward and a copy of it over the time-reversed sequences;
    concatenate the two outputs on the last axis (Keras' ``merge_mode="concat"``).

    With a ``sequence_mask`` only each sequence's real steps are reversed (padding stays
    where it is), so the backward direction starts at the last real step. With
    ``return_sequences`` the backward outputs are put back in time order: step ``t`` holds
    ``[forward h_t, backward h_t]``, shape ``(N, T, 2U)``; without, ``(N, 2U)`` holds the
    forward state after the last real step and the backward state after the first.

    Parameters
    ----------
    layer : SimpleRNN, GRU or LSTM
        The forward direction; the backward one is a fresh layer of the same config.
    """

    def __init__(self, layer: Layer) -> None:
        if not isinstance(layer, Layer) or not hasattr(layer, "return_sequences"):
            raise TypeError(
                f"Bidirectional wraps a recurrent layer (SimpleRNN, GRU, LSTM), got {layer!r}"
            )
        backward = type(layer).from_config(layer.get_config())
        self._parts = {"forward": layer, "backward": backward}
        super().__init__()
        self._P: Array = None

    @property
    def layer(self) -> Any:
        """The forward-direction layer."""
        return self._parts["forward"]

    def describe(self) -> str:
        return f"Bidirectional({self.layer.describe()})"

    def get_config(self) -> dict:
        return {"type": "Bidirectional", "layer": self.layer.get_config()}

    @classmethod
    def from_config(cls, config: dict) -> Layer:
        return cls(_rebuild(config["layer"]))

    def output_width(self, n_inputs: int | None) -> int | None:
        width = self.layer.output_width(n_inputs)
        return None if width is None else 2 * width

    def output_shape(self, input_shape: tuple) -> tuple:
        shape = self.layer.output_shape(input_shape)
        return (*shape[:-1], 2 * shape[-1])

    def _reverse(self, A: Array) -> Array:
        """Reverse each sequence's real steps (``P @ A``; ``P`` is its own inverse)."""
        if self._P is None:
            return self.xp.flip(A, axis=1)
        return self.xp.matmul(self._P, A)

    def _reversal(self, mask: Array, dtype: Any) -> Array:
        """``P`` (N, T, T): step t of the reversed sequence is step ``P[t] @`` of the input."""
        xp = self.xp
        T = mask.shape[1]
        m = xp.astype(mask, xp.int64)
        rank = xp.cumulative_sum(m, axis=1) - 1  # the rank of each real step
        length = xp.sum(m, axis=1, keepdims=True)
        partner = length - 1 - rank  # (N, T): the rank step t swaps with
        real = mask[:, :, None] & mask[:, None, :]
        swap = real & (rank[:, None, :] == partner[:, :, None])
        steps = xp.arange(T, device=device(mask))
        keep = (~mask)[:, :, None] & (steps[:, None] == steps[None, :])[None, :, :]
        return xp.astype(swap | keep, dtype)

    def forward(self, X: Array, *, training: bool = False, sequence_mask: Array = None) -> Array:
        """``(N, T, F)`` -> ``(N, T, 2U)`` or ``(N, 2U)``."""
        self._ensure_built(X)
        fwd_layer: Any = self._parts["forward"]
        bwd_layer: Any = self._parts["backward"]
        fwd = fwd_layer.forward(X, training=training, sequence_mask=sequence_mask)  # checks
        self._P = None if sequence_mask is None else self._reversal(sequence_mask, X.dtype)
        bwd = bwd_layer.forward(self._reverse(X), training=training, sequence_mask=sequence_mask)
        if self.layer.return_sequences:
            bwd = self._reverse(bwd)
        return self.xp.concat([fwd, bwd], axis=-1)

    def backward(self, dEdY: Array, *, need_dX: bool = True) -> Array | None:
        U = self.layer.units
        d_fwd, d_bwd = dEdY[..., :U], dEdY[..., U:]
        if self.layer.return_sequences:
            d_bwd = self._reverse(d_bwd)
        dX = self._parts["forward"].backward(d_fwd, need_dX=need_dX)
        dXr = self._parts["backward"].backward(d_bwd, need_dX=need_dX)
        if not need_dX:
            return None
        return dX + self._reverse(dXr)
