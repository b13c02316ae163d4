"""nnxp: the gradient of an n-layer neural network, and its training, on any Array API library.

One code path runs on NumPy, array-api-strict, PyTorch, JAX and CuPy::

    import nnxp
    nnxp.set_backend("numpy")          # "array_api_strict", "torch", "jax", "cupy"
    net = nnxp.Sequential([nnxp.Dense(64, 32, "sigmoid"), nnxp.Dense(32, 10, "softmax")])
    loss, grads = net.loss_and_gradient(X, T, loss="cross_entropy")
"""

import os as _os

from . import functional, initializers, regularizers
from .backend import (
    Backend,
    asarray,
    available_backends,
    get_backend,
    set_backend,
    to_numpy,
    use_backend,
)
from .gradcheck import gradcheck
from .io import load
from .layers import (
    GRU,
    LSTM,
    Activation,
    AdditiveAttentionPooling,
    Bidirectional,
    BuildContext,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    GlobalAveragePooling1D,
    GlobalMaxPooling1D,
    Layer,
    LayerNormalization,
    MultiHeadAttention,
    PositionEmbedding,
    Reshape,
    Residual,
    SimpleRNN,
    register,
)
from .losses import LOSSES, get_loss
from .network import Sequential
from .optimizers import SGD, Adam, AdamW, Optimizer
from .training import EarlyStopping, History

__version__ = "0.2.0"


def export_onnx(model, path, *, opset=None, input_shape=None):
    """Write ``model`` (a Sequential, or a fitted nnxp scikit-learn estimator) as an ONNX
    graph; see :func:`nnxp.onnx.export_onnx` (needs ``pip install "nnxp[onnx]"``)."""
    from .onnx import export_onnx as _export_onnx

    return _export_onnx(model, path, opset=opset, input_shape=input_shape)


if _os.environ.get("NNXP_BACKEND"):
    get_backend()  # an invalid $NNXP_BACKEND fails here, at import, naming the valid ones

__all__ = [
    "GRU",
    "LSTM",
    "Activation",
    "Adam",
    "AdamW",
    "AdditiveAttentionPooling",
    "Backend",
    "Bidirectional",
    "BuildContext",
    "Dense",
    "Dropout",
    "EarlyStopping",
    "Embedding",
    "export_onnx",
    "Flatten",
    "GlobalAveragePooling1D",
    "GlobalMaxPooling1D",
    "History",
    "LOSSES",
    "Layer",
    "LayerNormalization",
    "MultiHeadAttention",
    "Optimizer",
    "PositionEmbedding",
    "Reshape",
    "Residual",
    "SGD",
    "Sequential",
    "SimpleRNN",
    "__version__",
    "asarray",
    "available_backends",
    "functional",
    "get_backend",
    "get_loss",
    "gradcheck",
    "initializers",
    "load",
    "register",
    "regularizers",
    "set_backend",
    "to_numpy",
    "use_backend",
]
