"""Stateful layers in the public layer protocol (see :class:`nnxp.layers.core.Layer`)."""

from .attention import AdditiveAttentionPooling, MultiHeadAttention
from .core import (
    ActivatedLayer,
    Activation,
    BuildContext,
    Dense,
    Dropout,
    Layer,
    check_backend,
    check_output,
)
from .embedding import Embedding, PositionEmbedding
from .normalization import LayerNormalization
from .recurrent import GRU, LSTM, SimpleRNN
from .registry import LAYERS, check_rebuildable, layer_from_config, register
from .shape import Flatten, GlobalAveragePooling1D, GlobalMaxPooling1D, Reshape
from .wrappers import Bidirectional, Residual

__all__ = [
    "GRU",
    "LAYERS",
    "LSTM",
    "ActivatedLayer",
    "Activation",
    "AdditiveAttentionPooling",
    "Bidirectional",
    "BuildContext",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "GlobalAveragePooling1D",
    "GlobalMaxPooling1D",
    "Layer",
    "LayerNormalization",
    "MultiHeadAttention",
    "PositionEmbedding",
    "Reshape",
    "Residual",
    "SimpleRNN",
    "check_backend",
    "check_output",
    "check_rebuildable",
    "layer_from_config",
    "register",
]
