"""Building a network from its layers: the constructor's checks and state, a network from a
config and weights, weights put back, layers moved to another backend. The bodies of
``Sequential._setup``, ``from_config``, ``set_weights`` and ``to_backend``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from . import checks, training
from .backend import asarray, get_backend, use_backend
from .layers import BuildContext, Layer, check_backend, layer_from_config
from .ownership import check_unowned, claim
from .random import Generator, host_generator

Array = Any


def builds_without_rng() -> bool:
    """True once the layers honour ``BuildContext(host_rng=None)`` (allocate, draw nothing)."""
    return hasattr(Layer, "regularization")


def setup(net: Any, layers: Sequence[Layer], seed: Any, dtype: Any, *, draw: bool) -> None:
    """Check ``layers`` (protocol, each used once and in no other network, consecutive widths)
    and ``seed``, then give ``net`` its state and build the layers on the current backend;
    ``draw`` draws initial weights (else the layers are allocated for weights to come)."""
    layers = list(layers)
    if not layers or not all(isinstance(layer, Layer) for layer in layers):
        raise TypeError("Sequential needs a non-empty list of nnxp layers")
    seed = checks.integer("seed", seed)
    check_unowned(layers)
    width = getattr(layers[0], "n_inputs", None)
    for i, layer in enumerate(layers):
        layer.position = f"layers[{i}] "
        width = layer.output_width(width)
    backend = get_backend()
    net.layers = layers
    net.n_inputs = getattr(layers[0], "n_inputs", None)
    net.n_outputs = width
    net.seed = seed
    net.backend = backend
    net.dtype = backend.dtype(dtype)
    net.xp = backend.xp
    net.rng = Generator(backend, seed)
    net.shuffle_rng = host_generator(seed)  # the rows' order in fit, same on every backend
    net.history = None  # set by fit
    net._placement = 0  # bumped by to_backend: optimizers check it
    net._lock = threading.RLock()  # passes that use the layers' own caches
    net._last_output_shape = None
    host_rng = host_generator(seed) if draw or not builds_without_rng() else None
    ctx = BuildContext(backend, net.dtype, host_rng, net.rng)
    for layer in layers:
        layer.build(ctx)
    claim(layers, net)
    # backward stops at the first layer with parameters, which needs no dE/dX
    net._first_trainable = next((i for i, layer in enumerate(layers) if layer.params), 0)


def check_layer_weights(layer: Layer, values: dict) -> None:
    """Refuse ``values`` whose names or shapes differ from ``layer.params``."""
    if not isinstance(values, dict) or set(values) != set(layer.params):
        got = sorted(values) if isinstance(values, dict) else type(values).__name__
        raise ValueError(f"{layer.label} has parameters {sorted(layer.params)}, got {got}")
    for key, value in values.items():
        expected = tuple(layer.params[key].shape)
        if tuple(getattr(value, "shape", ())) != expected:
            raise ValueError(
                f"{layer.label}.{key}: shape {tuple(getattr(value, 'shape', ()))}, "
                f"expected {expected}"
            )


def set_weights(net: Any, weights: list[dict[str, Array]]) -> None:
    """Copy ``weights`` into ``net``'s layers, every layer checked before anything changes."""
    if len(weights) != len(net.layers):
        raise ValueError(f"expected weights for {len(net.layers)} layers, got {len(weights)}")
    for layer, values in zip(net.layers, weights):
        check_layer_weights(layer, values)
        for value in values.values():
            check_backend(value, net.backend, f"{layer.label} weights")
    xp = net.xp
    for layer, values in zip(net.layers, weights):
        for name, value in values.items():
            layer.params[name] = xp.astype(value, net.dtype, copy=True)


def from_config(
    cls: Any,
    config: dict,
    weights: list[dict[str, Array]],
    backend: str | None,
    device: Any,
    dtype: Any,
) -> Any:
    """A ``cls`` network built from ``config`` without drawing weights, taking copies of
    ``weights`` (checked against every layer first)."""
    current = get_backend()
    name = backend or current.name
    if device is None and name == current.name:
        device = current.device
    with use_backend(name, device) as target:
        layers = [layer_from_config(c) for c in config["layers"]]
        if len(weights) != len(layers):
            raise ValueError(f"weights for {len(weights)} layers, the network has {len(layers)}")
        net = cls.__new__(cls)
        net._setup(layers, config["seed"], dtype, draw=False)
        for layer, values in zip(layers, weights):
            check_layer_weights(layer, values)
        xp = target.xp
        for layer, values in zip(layers, weights):
            for key, value in values.items():
                value = asarray(value, dtype=net.dtype, backend=target)
                layer.params[key] = xp.asarray(value, copy=True)
    return net


def move(net: Any, name: str, device: Any, optimizer: Any) -> None:
    """Move ``net``'s layers (and ``optimizer``'s state) to backend ``name``, in place."""
    if optimizer is not None:
        training.check_optimizer(net, optimizer)
    with use_backend(name, device) as target:
        dtype = target.dtype(net.backend.dtype_name(net.dtype))
        ctx = BuildContext(target, dtype, None, Generator(target, net.seed))
        for layer in net.layers:
            layer.move(ctx)
        if optimizer is not None:
            optimizer.move(target)
    net.backend, net.dtype, net.xp, net.rng = target, dtype, target.xp, ctx.rng
    net._placement += 1
    net._last_output_shape = None
    if optimizer is not None:
        training.claim_optimizer(net, optimizer)
