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

from .activations import (
    ACTIVATIONS,
    ELU,
    GELU,
    SELU,
    ActivationFunction,
    HardSigmoid,
    LayerOutput,
    LeakyReLU,
    Linear,
    LogSigmoid,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Softsign,
    Swish,
    Tanh,
    get_activation,
)
from .dense import affine_backward, affine_forward, dense_backward, dense_forward
from .softmax import (
    log_softmax,
    masked_log_softmax,
    masked_softmax,
    softmax,
    softmax_with_log,
    softplus,
)
from .special import erf, erf_and_erfc, erfc, sigmoid

__all__ = [
    "ACTIVATIONS",
    "ELU",
    "GELU",
    "SELU",
    "ActivationFunction",
    "HardSigmoid",
    "LayerOutput",
    "LeakyReLU",
    "Linear",
    "LogSigmoid",
    "ReLU",
    "Sigmoid",
    "SiLU",
    "Softmax",
    "Softplus",
    "Softsign",
    "Swish",
    "Tanh",
    "affine_backward",
    "affine_forward",
    "dense_backward",
    "dense_forward",
    "erf",
    "erf_and_erfc",
    "erfc",
    "get_activation",
    "log_softmax",
    "masked_log_softmax",
    "masked_softmax",
    "sigmoid",
    "softmax",
    "softmax_with_log",
    "softplus",
]
