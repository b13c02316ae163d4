"""Recurrent layers: SimpleRNN, GRU and LSTM over ``(N, T, F)`` sequences.

Parameters are laid out as PyTorch's single-layer ``nn.RNN``/``nn.GRU``/``nn.LSTM``
(``batch_first=True``), so weights copy over one to one::

    layer.params["W_ih"] = torch_module.weight_ih_l0   # (G*units, n_inputs)
    layer.params["W_hh"] = torch_module.weight_hh_l0   # (G*units, units)
    layer.params["b_ih"] = torch_module.bias_ih_l0     # (G*units,)
    layer.params["b_hh"] = torch_module.bias_hh_l0     # (G*units,)
"""

from __future__ import annotations

import math
from typing import Any

from .. import functional as F
from ..functional.recurrent import recurrent_backward, recurrent_forward
from ._sequence import SequenceLayer, uniform_weights
from .core import BuildContext
from .registry import register

Array = Any


class _Recurrent(SequenceLayer):
    """Shared by the three recurrent layers; ``kind`` picks the cell."""

    kind = ""
    gates = 1
    takes_sequence_mask = True

    def __init__(self, n_inputs: int, units: int, return_sequences: bool = False) -> None:
        name = type(self).__name__
        for what, value in (("n_inputs", n_inputs), ("units", units)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} {what} must be a positive integer, got {value!r}")
        if not isinstance(return_sequences, bool):
            raise TypeError(f"{name} return_sequences must be True or False")
        super().__init__()
        self.n_inputs = n_inputs
        self.units = units
        self.return_sequences = return_sequences
        self._cache: Any = None

    def describe(self) -> str:
        seq = ", return_sequences" if self.return_sequences else ""
        return f"{type(self).__name__}({self.n_inputs} -> {self.units}{seq})"

    def _settings(self) -> dict:
        return {
            "n_inputs": self.n_inputs,
            "units": self.units,
            "return_sequences": self.return_sequences,
        }

    def build(self, ctx: BuildContext) -> None:
        super().build(ctx)
        GU, limit = self.gates * self.units, 1.0 / math.sqrt(self.units)  # as PyTorch
        self.params = {
            "W_ih": uniform_weights(ctx, (GU, self.n_inputs), limit),
            "W_hh": uniform_weights(ctx, (GU, self.units), limit),
            "b_ih": uniform_weights(ctx, (GU,), limit),
            "b_hh": uniform_weights(ctx, (GU,), limit),
        }

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        GU = self.gates * self.units
        return {
            "W_ih": (GU, self.n_inputs),
            "W_hh": (GU, self.units),
            "b_ih": (GU,),
            "b_hh": (GU,),
        }

    def forget(self) -> None:
        self._cache = None

    def output_width(self, n_inputs: int | None) -> int | None:
        self._check_width(n_inputs, self.n_inputs, "input features")
        return self.units

    def output_shape(self, input_shape: tuple) -> tuple:
        self._check_sequence_shape(input_shape, self.n_inputs)
        N, T = input_shape[0], input_shape[1]
        return (N, T, self.units) if self.return_sequences else (N, self.units)

    def forward(self, X: Array, *, training: bool = False, sequence_mask: Array = None) -> Array:
        """Run the layer over every step.

        Parameters
        ----------
        X : array of shape (N, T, n_inputs)
        training : bool
            Unused (no training-only behaviour).
        sequence_mask : bool array of shape (N, T), optional
            True for real steps; the state is carried over padded ones.

        Returns
        -------
        array of shape (N, T, units) with ``return_sequences`` (zero at padded steps), else
        (N, units): the output of each sequence's last real step.
        """
        self._check_sequence_input(X, sequence_mask, self.n_inputs)
        p = self.params
        H, h_last, self._cache = recurrent_forward(
            self.kind,
            X,
            p["W_ih"],
            p["W_hh"],
            p["b_ih"],
            p["b_hh"],
            mask=sequence_mask,
            activation=getattr(self, "activation", "tanh"),
            xp=self.xp,
        )
        return H if self.return_sequences else h_last

    def backward(self, dEdY: Array, *, need_dX: bool = True) -> Array | None:
        """Backpropagation through time; stores ``grads`` and returns ``dE/dX``."""
        if self._cache is None:
            raise RuntimeError(f"{self.label}: backward called before forward")
        dH, dh = (dEdY, None) if self.return_sequences else (None, dEdY)
        dX, dW_ih, dW_hh, db_ih, db_hh = recurrent_backward(
            dH, dh, self._cache, need_dX=need_dX, xp=self.xp
        )
        self.grads = {"W_ih": dW_ih, "W_hh": dW_hh, "b_ih": db_ih, "b_hh": db_hh}
        return dX


@register
class SimpleRNN(_Recurrent):
    """Elman RNN ``h_t = g(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`` (PyTorch's ``nn.RNN``).

    Parameters
    ----------
    n_inputs : int
        ``F``, features per step.
    units : int
        ``U``, the size of the state.
    activation : str, default "tanh"
        ``"tanh"`` or ``"relu"`` as PyTorch; any element-wise nnxp activation works.
    return_sequences : bool, default False
        Output every step ``(N, T, U)`` instead of the last real one ``(N, U)``.

    Attributes
    ----------
    params : {"W_ih": (U, F), "W_hh": (U, U), "b_ih": (U,), "b_hh": (U,)}
    """

    kind = "rnn"
    gates = 1

    def __init__(
        self,
        n_inputs: int,
        units: int,
        activation: Any = "tanh",
        return_sequences: bool = False,
    ) -> None:
        super().__init__(n_inputs, units, return_sequences=return_sequences)
        self.activation = F.get_activation(activation)
        if self.activation.name == "softmax" or getattr(self.activation, "needs_A", False):
            raise ValueError(
                f"SimpleRNN activation must be element-wise with a derivative from its "
                f"output (tanh, relu, sigmoid, ...), got {self.activation.name!r}"
            )

    def describe(self) -> str:
        return super().describe()[:-1] + f", {self.activation.name})"

    def _settings(self) -> dict:
        return {**super()._settings(), "activation": self.activation.config()}


@register
class GRU(_Recurrent):
    """Gated recurrent unit, PyTorch's ``nn.GRU`` formula (gates r, z, n)::

        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
        z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        h' = (1 - z) * n + z * h

    Parameters
    ----------
    n_inputs, units : int
    return_sequences : bool, default False

    Attributes
    ----------
    params : {"W_ih": (3U, F), "W_hh": (3U, U), "b_ih": (3U,), "b_hh": (3U,)}
    """

    kind = "gru"
    gates = 3


@register
class LSTM(_Recurrent):
    """Long short-term memory, PyTorch's ``nn.LSTM`` (gates i, f, g, o)::

        i, f, o = sigmoid(...), g = tanh(...)   (each W_i* x + b_i* + W_h* h + b_h*)
        c' = f * c + i * g ;  h' = o * tanh(c')

    Parameters
    ----------
    n_inputs, units : int
    return_sequences : bool, default False

    Attributes
    ----------
    params : {"W_ih": (4U, F), "W_hh": (4U, U), "b_ih": (4U,), "b_hh": (4U,)}
    """

    kind = "lstm"
    gates = 4
