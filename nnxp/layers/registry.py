"""Names of layers and activations: one registry that ``save``/``load``, pickling, ``clone``
and ``to_backend`` rebuild from.

``@nnxp.register`` is the one mechanism for layers and activations alike::

    @nnxp.register                      # known as "AttentionPool"
    class AttentionPool(nnxp.Layer): ...

    @nnxp.register(name="my_elu")       # known as "my_elu"
    class ELU(nnxp.functional.ActivationFunction): ...

A layer's config is ``{"type": <registered name>, **settings}``; an activation's is
``{"name": <registered name>, **settings}``.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from ..functional.activations import ACTIVATIONS, ActivationFunction

#: Registered layer classes by name (built-ins included).
LAYERS: dict[str, Any] = {}

C = TypeVar("C", bound=type)

_FIX = "decorate it with @nnxp.register and give it get_config"


def register(cls: Any = None, *, name: str | None = None) -> Any:
    """Make a layer or activation class known by name, so that a network holding it can be
    saved, loaded, pickled, cloned and moved between backends.

    Use as a class decorator, bare or with a name::

        @nnxp.register
        class MyLayer(nnxp.Layer): ...

        @nnxp.register(name="my_elu")
        class ELU(nnxp.functional.ActivationFunction): ...

    Parameters
    ----------
    cls : type, optional
        A subclass of :class:`nnxp.Layer` or of
        :class:`nnxp.functional.ActivationFunction`.
    name : str, optional
        The registered name. Layers default to the class name; activations to their
        ``name`` class attribute, else the class name in lower case. An activation
        registered under ``name`` gets that as its ``name`` attribute.

    Returns
    -------
    The class itself (unchanged apart from its registered name), or, without ``cls``, a
    decorator.

    Raises
    ------
    TypeError
        ``cls`` is neither a layer nor an activation class.
    ValueError
        ``name`` is empty or already taken by another class.
    """
    if cls is None:
        return lambda c: register(c, name=name)
    if not isinstance(cls, type):
        raise TypeError(
            f"nnxp.register decorates a class (a Layer or an ActivationFunction subclass), "
            f"got {cls!r}"
        )
    from .core import Layer

    if issubclass(cls, ActivationFunction):
        key = name or cls.__dict__.get("name") or cls.__name__.lower()
        _check_name(key, cls, ACTIVATIONS, "activation")
        cls.name = key
        ACTIVATIONS[key] = cls
    elif issubclass(cls, Layer):
        key = name or cls.__name__
        _check_name(key, cls, LAYERS, "layer")
        LAYERS[key] = cls
        # read through registered_name(), which ignores what a subclass inherits
        cls._registered_name = key
        cls._registered_owner = cls
    else:
        raise TypeError(
            f"nnxp.register: {cls.__name__} is neither an nnxp.Layer nor an "
            f"nnxp.functional.ActivationFunction subclass"
        )
    return cls


def _check_name(key: Any, cls: type, table: dict, kind: str) -> None:
    if not isinstance(key, str) or not key:
        raise ValueError(f"nnxp.register: a {kind} name must be a non-empty string, got {key!r}")
    current = table.get(key)
    if current is not None and current is not cls and _qualname(current) != _qualname(cls):
        raise ValueError(
            f"nnxp.register: the {kind} name {key!r} is taken by {_qualname(current)}; pass "
            f"name='...' to register {_qualname(cls)} under another name"
        )


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def registered_name(cls: type) -> str:
    """The name a layer class is registered under (its class name when it is not)."""
    if cls.__dict__.get("_registered_owner") is cls:
        return cls.__dict__["_registered_name"]
    return cls.__name__


def layer_from_config(config: dict) -> Any:
    """Rebuild an unbuilt layer from its :meth:`~nnxp.Layer.get_config` description.

    Parameters
    ----------
    config : dict
        ``{"type": <registered name>, **settings}``.

    Returns
    -------
    Layer
        Not built: a network builds it (or it builds itself on its first call).

    Raises
    ------
    ValueError
        ``config`` is not a dict, or names no registered layer (the message lists them);
        settings the layer refuses keep their own ValueError/TypeError.
    """
    if not isinstance(config, dict):
        raise ValueError(f"a layer config must be a dict with a 'type', got {config!r}")
    kind = config.get("type")
    if kind not in LAYERS:
        raise ValueError(
            f"unknown layer type {kind!r}; valid types are {', '.join(sorted(LAYERS))} "
            f"(a custom layer must be registered: {_FIX})"
        )
    return LAYERS[kind].from_config(config)


def check_rebuildable(layer: Any) -> None:
    """Raise a ValueError when ``layer`` could not be rebuilt from its config by ``load``.

    The check runs without building anything: the config must be JSON-able, name a
    registered class (this very class, and activations likewise), and rebuild to a layer
    of the same class with the same config.

    Raises
    ------
    ValueError
        Naming the layer and the fix ("decorate it with @nnxp.register and give it
        get_config").
    """
    label = getattr(layer, "label", type(layer).__name__)
    try:
        config = layer.get_config()
    except Exception as error:  # a user's get_config may fail any way
        raise ValueError(
            f"{label} cannot describe itself: get_config raised {error!r}; {_FIX}"
        ) from error
    if not isinstance(config, dict) or "type" not in config:
        raise ValueError(f"{label}: get_config must return a dict with a 'type'; {_FIX}")
    try:
        text = json.dumps(config)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{label}: its config {config!r} is not JSON-able ({error}); {_FIX}"
        ) from None
    if LAYERS.get(config["type"]) is not type(layer):
        raise ValueError(
            f"{label}: {_qualname(type(layer))} is not registered under {config['type']!r}, "
            f"so load could not rebuild it; {_FIX}"
        )
    activation = getattr(layer, "activation", None)
    if isinstance(activation, ActivationFunction):
        if ACTIVATIONS.get(activation.name) is not type(activation):
            raise ValueError(
                f"{label}: its activation {_qualname(type(activation))} is not registered "
                f"under {activation.name!r}, so load could not rebuild it; decorate it with "
                f"@nnxp.register and give it config()"
            )
    try:
        rebuilt = layer_from_config(json.loads(text))
        again = json.loads(json.dumps(rebuilt.get_config()))
        same = type(rebuilt) is type(layer) and again == json.loads(text)
    except Exception as error:
        raise ValueError(
            f"{label}: rebuilding it from its config {config} failed ({error!r}); {_FIX}"
        ) from error
    if not same:
        raise ValueError(
            f"{label}: rebuilding it from its config {config} gives a different layer "
            f"({rebuilt.get_config()}); {_FIX}"
        )
