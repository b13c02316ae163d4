"""Stateful layers in the public layer protocol (see :class:`nnxp.layers.core.Layer`)."""

from .core import (
    LAYERS,
    ActivatedLayer,
    Activation,
    BuildContext,
    Dense,
    Dropout,
    Layer,
    check_backend,
    layer_from_config,
)

__all__ = [
    "LAYERS",
    "ActivatedLayer",
    "Activation",
    "BuildContext",
    "Dense",
    "Dropout",
    "Layer",
    "check_backend",
    "layer_from_config",
]
