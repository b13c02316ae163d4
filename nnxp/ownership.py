"""Which network a layer belongs to, and twins of layers that share their parameters.

A layer belongs to one network (:class:`Owner`, a weak reference); a twin (:func:`shadow`)
shares a layer's parameters but not its caches or gradients, so an inference pass, a thread
or a float64 gradient check leaves the layer's own training state untouched.
"""

from __future__ import annotations

import copy
import threading
import weakref
from typing import Any

from .layers import BuildContext, Layer
from .random import Generator


class Owner:
    """The network a layer belongs to (a weak reference: a dead network frees its layers).
    A pickled or deep-copied layer belongs to no network."""

    __slots__ = ("ref",)

    def __init__(self, net: Any) -> None:
        self.ref = weakref.ref(net)

    def alive(self) -> bool:
        return self.ref() is not None

    def __reduce__(self) -> tuple:
        return (no_owner, ())


def no_owner() -> None:
    return None


def check_unowned(layers: list[Layer]) -> None:
    """Refuse a layer used twice in ``layers`` or already part of another (live) network."""
    seen: dict[int, int] = {}
    for i, layer in enumerate(layers):
        if id(layer) in seen:
            raise ValueError(
                f"layers[{i}] {layer.describe()} is the same layer instance as "
                f"layers[{seen[id(layer)]}]: a layer can be used once in one network "
                f"(create a new layer for each place; shared weights are not supported)"
            )
        seen[id(layer)] = i
        owner = getattr(layer, "_nnxp_network", None)
        if isinstance(owner, Owner) and owner.alive():
            raise ValueError(
                f"layers[{i}] {layer.describe()} is already part of another network: a "
                f"layer belongs to one network (build new layers, or use net.clone())"
            )


def claim(layers: list[Layer], net: Any) -> None:
    """Mark every layer of ``layers`` as belonging to ``net``."""
    owner = Owner(net)
    for layer in layers:
        layer._nnxp_network = owner  # type: ignore[attr-defined]


def shadow(layer: Layer) -> Layer:
    """A shallow twin of ``layer`` sharing its parameters but not its caches or grads, so an
    inference pass (or a thread) leaves the layer's own training caches untouched; nested
    layers (wrappers: attributes holding layers, lists or dicts of layers) get twins too."""
    twin = copy.copy(layer)
    for key, value in vars(layer).items():
        if isinstance(value, Layer):
            setattr(twin, key, shadow(value))
        elif (
            isinstance(value, (list, tuple)) and value and all(isinstance(v, Layer) for v in value)
        ):
            setattr(twin, key, type(value)(shadow(v) for v in value))
        elif (
            isinstance(value, dict) and value and all(isinstance(v, Layer) for v in value.values())
        ):
            setattr(twin, key, {k: shadow(v) for k, v in value.items()})
    try:
        twin.grads = {}
    except (TypeError, AttributeError):  # grads as a view over the (twinned) parts
        pass
    return twin


def adopt_gradients(layers: list[Layer], twins: list[Layer], stop: int) -> list[dict]:
    """Copy the twins' ``grads`` to their layers (none below layer ``stop``, which the
    backward pass did not reach) and return them, each list item a fresh dict."""
    for twin in twins[:stop]:
        twin.grads = {}
    grads = [dict(twin.grads) for twin in twins]
    for layer, g in zip(layers, grads):
        layer.grads = dict(g)
    return grads


def float64_twin(net: Any) -> Any:
    """A float64 copy of ``net`` that shares nothing the checks write to: twins of the layers
    moved to float64 (own parameter dicts; the same classes, so unregistered layers work), no
    config round trip."""
    twin = object.__new__(type(net))
    twin.__dict__.update(net.__dict__)
    backend = net.backend
    twin.dtype = backend.dtype("float64")
    twin.rng = Generator(backend, net.seed)
    twin._lock = threading.RLock()
    twin._last_output_shape = None
    ctx = BuildContext(backend, twin.dtype, None, twin.rng)
    twin.layers = [shadow(layer) for layer in net.layers]
    for layer in twin.layers:
        layer.move(ctx)
    return twin
