"""The layer protocol (:class:`Layer`), :class:`ActivatedLayer` and :class:`Activation`;
:class:`Dense` and :class:`Dropout` live in ``dense.py`` and ``dropout.py``.

A layer holds its parameters and gradients, caches in ``forward`` what ``backward`` needs,
and describes itself as a config. A network builds its layers (``Sequential`` draws every
initial weight from its seed, on its backend and dtype); a layer called on its own builds
itself on first use on the current backend.
"""

from __future__ import annotations

import functools
import inspect
import numbers
from dataclasses import dataclass
from typing import Any, ClassVar

from array_api_compat import array_namespace

from .. import functional as F
from ..backend import Backend, array_library, asarray, get_backend
from ..functional.activations import check_real
from ..random import Generator, host_generator
from .registry import register, registered_name

Array = Any


@dataclass
class BuildContext:
    """What a network hands its layers when it builds them.

    Attributes
    ----------
    backend : Backend
        Where parameters live (``backend.xp`` the namespace, ``backend.device``).
    dtype : backend dtype
        float32 or float64 of ``backend``.
    host_rng : numpy.random.Generator or None
        Initial values are drawn from it (on the host: every backend gets the same
        weights). ``None`` when the values will be overwritten (``load``, ``clone``,
        ``to_backend``): allocate without drawing.
    rng : nnxp.random.Generator
        The backend's generator, for per-step randomness (dropout masks).
    """

    backend: Backend
    dtype: Any
    host_rng: Any
    rng: Generator


class Layer:
    """Base class of every layer, and the public layer protocol.

    A layer is a small object with parameters, a forward pass that caches what its backward
    pass needs, and a config that rebuilds it. Subclass it and override what differs from
    the identity layer this base class is::

        @nnxp.register
        class Scale(nnxp.Layer):                    # Y = X * s over the last axis
            def __init__(self, n):
                super().__init__()
                self.n = n              # get_config() == {"type": "Scale", "n": n}

            def build(self, ctx):
                super().build(ctx)
                ones = nnxp.initializers.get("ones")
                self.params = {"s": nnxp.initializers.draw(ones, (self.n,), ctx)}

            def forward(self, X, *, training=False):
                self._X = X
                return X * self.params["s"]

            def backward(self, dEdY, *, need_dX=True):
                axes = tuple(range(dEdY.ndim - 1))
                self.grads = {"s": self.xp.sum(dEdY * self._X, axis=axes)}
                return dEdY * self.params["s"] if need_dX else None

    **Parameters and gradients.** ``params`` maps names to arrays of the network's backend
    and dtype; after a backward pass ``grads`` has the same keys and shapes (``dE/dp``).
    Optimizers update ``params`` in place by name; ``save`` writes them by name.

    **Build.** :meth:`build` receives a :class:`BuildContext`: create parameters on
    ``ctx.backend`` in ``ctx.dtype``, initial values drawn on the host from
    ``ctx.host_rng`` (:func:`nnxp.initializers.draw` does both, and allocates zeros when
    ``ctx.host_rng`` is None, which ``load``/``clone`` use before overwriting them);
    randomness during training comes from ``ctx.rng``. Call ``super().build(ctx)`` first:
    it sets ``self.xp`` (the namespace), ``self.dtype``, ``self.backend`` and ``self.rng``.

    **Standalone use.** ``layer(X)`` or ``layer.forward(X)`` on an unbuilt layer builds it on
    the current backend (seed 0; the dtype of ``X`` when it is floating, else float32), as
    Keras layers do; ``backward`` works after it.

    **Forward.** ``forward(X, *, training=False)`` returns ``Y`` and caches what backward
    needs; ``training=True`` turns on training-only behaviour (dropout). A layer that uses
    the timestep mask of a variable-length batch sets the class attribute
    ``takes_sequence_mask = True`` and accepts ``forward(X, *, training=False,
    sequence_mask=None)`` (bool ``(N, T)``, True on real steps).

    **Backward.** ``backward(dEdY, *, need_dX=True)`` stores ``grads`` and returns
    ``dE/dX`` (shape of ``X``); with ``need_dX=False`` (the first trainable layer) it may
    skip that work and return None.

    **Shapes.** :meth:`output_shape` maps a full input shape (batch axis included, entries
    may be None for unknown) to the output shape; any rank change is allowed, and an input
    that cannot fit raises a ValueError naming the layer. :meth:`output_width` is the quick
    construction-time check of the last axis alone (None: unknown).

    **Parameter shapes.** :meth:`parameter_shapes` gives ``{name: shape}`` of what
    :meth:`build` creates, computed from the settings without allocating: a layer with
    parameters overrides it (``load`` checks a file against it before allocating).

    **Regularization.** :meth:`regularization` returns ``(penalty, grads)``: a 0-d array
    (or None) the network adds to the loss, and ``{param name: d penalty / d param}`` added
    to ``grads``.

    **Config and registration.** :meth:`get_config` returns a JSON-able dict with
    ``"type"``, the registered name, and the settings; the classmethod :meth:`from_config`
    rebuilds an unbuilt layer from it (default ``cls(**settings)``). The base
    ``get_config`` records the arguments the layer was constructed with, so a layer whose
    constructor takes JSON-able arguments needs no ``get_config`` of its own. Decorate the
    class with :func:`nnxp.register` so that ``load``, pickling, ``clone`` and
    ``to_backend`` can find it by name; ``save`` refuses a layer that could not be rebuilt
    (:func:`nnxp.layers.registry.check_rebuildable`).

    Attributes
    ----------
    params : dict of str to array
    grads : dict of str to array
    xp : namespace or None
        The backend's Array API namespace once built (None before).
    takes_sequence_mask : bool
        Class attribute: ``forward`` accepts ``sequence_mask``.
    """

    takes_sequence_mask: ClassVar[bool] = False
    _init_args: dict | None
    _registered_name: ClassVar[str]  # set by nnxp.register, read via registered_name()
    _registered_owner: ClassVar[type]
    params: dict[str, Array]
    grads: dict[str, Array]

    def __new__(cls, *args: Any, **kwargs: Any) -> Layer:
        self = super().__new__(cls)
        self._init_args = _bind_arguments(cls, args, kwargs)
        return self

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        forward = cls.__dict__.get("forward")
        if forward is not None and not getattr(forward, "_builds_on_first_call", False):
            cls.forward = _building(forward)  # type: ignore[method-assign]

    def __init__(self) -> None:
        self.params = {}
        self.grads = {}
        self.xp: Any = None
        self.dtype: Any = None
        self.backend: Any = None  # Backend once built
        self.rng: Any = None  # nnxp.random.Generator once built
        self.position = ""  # set by the network: "layers[2] "

    # ------------------------------------------------------------------ naming
    @property
    def label(self) -> str:
        """How errors name the layer: its position in the network and :meth:`describe`."""
        return f"{self.position}{self.describe()}"

    def describe(self) -> str:
        """A short human description, e.g. ``Dense(64 -> 32, sigmoid)``."""
        return type(self).__name__

    def __repr__(self) -> str:
        return self.label

    # ------------------------------------------------------------------ building
    @property
    def built(self) -> bool:
        """Whether :meth:`build` (or :meth:`move`) has run."""
        return self.xp is not None

    def build(self, ctx: BuildContext) -> None:
        """Create parameters and state on ``ctx.backend`` in ``ctx.dtype``.

        Subclasses call ``super().build(ctx)`` first, then create ``self.params``.
        """
        self.xp = ctx.backend.xp
        self.dtype = ctx.dtype
        self.backend = ctx.backend
        self.rng = ctx.rng

    def build_for(self, X: Array) -> None:
        """Build on the current backend for input ``X`` (the standalone first call): seed 0,
        the dtype of ``X`` when it is floating, else float32.

        Raises
        ------
        TypeError
            ``X`` is not an array of the current backend.
        """
        backend = get_backend()
        check_backend(X, backend, f"{self.label} input X")
        xp = array_namespace(X)
        floating = xp.isdtype(X.dtype, "real floating")
        dtype = backend.dtype(X.dtype if floating else None)
        self.build(BuildContext(backend, dtype, host_generator(0), Generator(backend, 0)))

    def move(self, ctx: BuildContext) -> None:
        """Carry the parameters over to ``ctx.backend`` (values kept, caches dropped)."""
        Layer.build(self, ctx)  # namespace, dtype, backend and generator: no new weights
        self.params = {
            k: asarray(v, dtype=ctx.dtype, backend=ctx.backend) for k, v in self.params.items()
        }
        self.grads = {}
        self.forget()

    def forget(self) -> None:
        """Drop what the last forward pass cached."""

    # ------------------------------------------------------------------ shapes
    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """The name and shape of every parameter :meth:`build` creates, from the
        constructor's settings alone (nothing is allocated): ``load`` checks a file's
        arrays against it before building anything. The base layer has none (``{}``).
        """
        return {}

    def output_width(self, n_inputs: int | None) -> int | None:
        """The size of the output's last axis given the input's (None: unknown).

        Raises
        ------
        ValueError
            The layer cannot take ``n_inputs`` features (naming the layer).
        """
        return n_inputs

    def _check_width(self, n_inputs: int | None, expected: int, what: str = "features") -> None:
        """The :meth:`output_width` check of a layer that takes ``expected`` features on the
        last axis: a ValueError naming the layer when ``n_inputs`` (None: unknown) differs.
        ``what`` names them in the message (``"inputs"``, ``"input features"``)."""
        if n_inputs is not None and n_inputs != expected:
            raise ValueError(
                f"{self.label} expects {expected} {what} but the layer before it gives {n_inputs}"
            )

    def output_shape(self, input_shape: tuple) -> tuple:
        """The full output shape (batch axis included) for ``input_shape``; entries may be
        None (unknown). The base layer keeps the shape.

        Raises
        ------
        ValueError
            The input cannot fit the layer (naming it).
        """
        return tuple(input_shape)

    # ------------------------------------------------------------------ passes
    def __call__(self, X: Array, **kwargs: Any) -> Array:
        """``layer(X)`` is ``layer.forward(X)``, building the layer on first use."""
        return self.forward(X, **kwargs)

    def forward(self, X: Array, *, training: bool = False) -> Array:
        """The layer's output for ``X``; caches what :meth:`backward` needs.

        Parameters
        ----------
        X : array of shape (n_samples, ...)
        training : bool
            Turns on training-only behaviour (dropout).

        Returns
        -------
        Y : array of shape ``output_shape(X.shape)``
        """
        return X

    def backward(self, dEdY: Array, *, need_dX: bool = True) -> Array | None:
        """``dE/dX`` from ``dE/dY`` of the last forward pass; stores ``grads``.

        Parameters
        ----------
        dEdY : array of the output's shape
        need_dX : bool
            False lets the layer skip ``dE/dX`` and return None.

        Returns
        -------
        dEdX : array of the input's shape, or None
        """
        return dEdY

    def regularization(self) -> tuple[Array | None, dict[str, Array]]:
        """The layer's penalty and its gradients: ``(penalty, {name: d penalty/d param})``.

        Returns
        -------
        penalty : 0-d array or None
            Added to the (mean) loss; None when the layer adds nothing.
        grads : dict of str to array
            Added to ``grads`` of the same names.
        """
        return None, {}

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict:
        """A JSON-able description that rebuilds the layer with :meth:`from_config`.

        ``{"type": <registered name>, **settings}``; the base class records the arguments
        the layer was constructed with as the settings.
        """
        return {"type": registered_name(type(self)), **(self._init_args or {})}

    @classmethod
    def from_config(cls, config: dict) -> Layer:
        """An unbuilt layer from :meth:`get_config`'s description: ``cls(**settings)``."""
        settings = {k: v for k, v in config.items() if k != "type"}
        return cls(**settings)


def _bind_arguments(cls: type, args: tuple, kwargs: dict) -> dict | None:
    """The constructor's arguments by name (positional ones included); None when they
    cannot be named (``*args``) or when the class is being unpickled/copied."""
    try:
        signature = _signature(cls)
        bound = signature.bind(None, *args, **kwargs)
    except (TypeError, ValueError):
        return None
    out: dict[str, Any] = {}
    for name, value in list(bound.arguments.items())[1:]:
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            if value:
                return None
        elif kind is inspect.Parameter.VAR_KEYWORD:
            out.update({k: _plain(v) for k, v in value.items()})
        else:
            out[name] = _plain(value)
    return out


@functools.cache
def _signature(cls: type) -> inspect.Signature:
    return inspect.signature(cls.__init__)  # type: ignore[misc]


def _plain(value: Any) -> Any:
    """NumPy scalars as Python numbers, tuples as lists (what JSON keeps)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def _building(forward: Any) -> Any:
    """Wrap a ``forward`` so that an unbuilt layer builds itself on its first call."""

    @functools.wraps(forward)
    def forward_building_first(self: Layer, X: Array, *args: Any, **kwargs: Any) -> Array:
        if self.xp is None:
            self.build_for(X)
        return forward(self, X, *args, **kwargs)

    forward_building_first._builds_on_first_call = True  # type: ignore[attr-defined]
    return forward_building_first


Layer.forward = _building(Layer.forward)  # type: ignore[method-assign]


def check_output(
    layer: Layer, expected_shape: tuple, Y: Array, input_shape: tuple | None = None
) -> None:
    """Raise a ValueError naming ``layer`` when its forward returned ``Y`` whose shape
    disagrees with the ``expected_shape`` its :meth:`Layer.output_shape` declared (None
    entries match anything); ``input_shape``, when given, goes in the message."""
    got = tuple(Y.shape)
    expected = tuple(expected_shape)
    if len(got) != len(expected) or any(e is not None and e != g for e, g in zip(expected, got)):
        given = "" if input_shape is None else f" for input {tuple(input_shape)}"
        raise ValueError(
            f"{layer.label} declares output shape {expected}{given} but its forward returned "
            f"{got}: fix the layer's output_shape or forward"
        )


def check_size(value: Any, what: str) -> int:
    """A positive integer setting (NumPy integers accepted, bool refused) as ``int``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def check_rate(value: Any, what: str, low: float = 0.0, high: float = 1.0) -> float:
    """A real setting in ``[low, high)`` (NumPy numbers accepted, bool refused) as ``float``."""
    return check_real(value, what, low, high)


def check_backend(x: Array, backend: Backend, what: str) -> None:
    """Raise a TypeError when ``x`` is not an array of ``backend`` on its device."""
    library = array_library(x)
    if library != backend.name:
        got = "host data (a list or scalar)" if library is None else f"an array of {library}"
        raise TypeError(
            f"{what}: got {got} but the network computes with {backend.name}; move the "
            f"data with nnxp.asarray(data) (under nnxp.use_backend({backend.name!r}))"
        )
    device = getattr(x, "device", None)
    if device is not None and device != backend.device and backend.name != "numpy":
        raise TypeError(
            f"{what}: the array is on device {device} but the network is on "
            f"{backend.device}; move it with nnxp.asarray(data)"
        )


class ActivatedLayer(Layer):
    """A layer that ends in an activation ``Y = g(A)``: it can be a network's output layer.

    Subclasses compute the pre-activation ``A`` in :meth:`forward` and pass it to
    :meth:`activate`; they turn ``dE/dA`` into their gradients in :meth:`backward_from_delta`.
    """

    activation: F.ActivationFunction

    def __init__(self, activation: Any) -> None:
        super().__init__()
        self.activation = F.get_activation(activation)
        self._cache: tuple[Array, Array, Array] | None = None
        self._log_Y: Array = None

    def forward(self, X: Array, *, training: bool = False, mask: Array = None) -> Array:
        """As :meth:`Layer.forward`; ``mask`` (softmax layers) allows outputs, as
        :func:`nnxp.functional.masked_softmax`."""
        raise NotImplementedError

    def activate(self, X: Array, A: Array, mask: Array) -> Array:
        """``Y = g(A)`` (a masked softmax with ``mask``); caches ``X``, ``A``, ``Y`` and, for
        softmax, ``log(Y)`` from the same max-subtraction (what the cross-entropy needs)."""
        if self.activation.name == "softmax":
            Y, self._log_Y = F.softmax_with_log(A, mask, xp=self.xp)
        elif mask is not None:
            raise ValueError(f"a mask applies to a softmax output layer, not {self.label}")
        else:
            Y, self._log_Y = self.activation.forward(A, self.xp), None
        self._cache = (X, A, Y)
        return Y

    def forget(self) -> None:
        self._cache = self._log_Y = None

    def _no_forward(self) -> RuntimeError:
        """The error for a backward pass (or a loss) with no forward pass cached."""
        return RuntimeError(f"{self.label}: backward called before forward")

    def output(self) -> F.LayerOutput:
        """``A``, ``Y`` and ``log(Y)`` (softmax) of the last forward pass, for a loss."""
        try:
            _, A, Y = self._cache  # type: ignore[misc]
        except TypeError:  # None: no forward pass cached
            raise self._no_forward() from None
        return F.LayerOutput(A, Y, self._log_Y, self.activation)

    def backward(self, dEdY: Array, *, need_dX: bool = True) -> Array | None:
        """Store ``grads`` and return ``dE/dX`` (None when ``need_dX`` is False)."""
        try:
            _, A, Y = self._cache  # type: ignore[misc]
        except TypeError:  # None: no forward pass cached
            raise self._no_forward() from None
        if dEdY.shape != Y.shape:
            raise ValueError(
                f"{self.label}: dEdY must have the output's shape {tuple(Y.shape)}, got "
                f"{tuple(dEdY.shape)}"
            )
        delta = self.activation.backward(Y, dEdY, self.xp, A)
        return self.backward_from_delta(delta, need_dX=need_dX)

    def backward_from_delta(self, Deltas: Array, *, need_dX: bool = True) -> Array | None:
        """As :meth:`backward`, from ``Deltas = dE/dA`` (a loss's fused output delta)."""
        raise NotImplementedError


@register
class Activation(ActivatedLayer):
    """An activation as a layer of its own (no parameters): ``Y = g(X)``.

    Parameters
    ----------
    activation : str, dict or ActivationFunction
    """

    def describe(self) -> str:
        return f"Activation({self.activation.name})"

    def forward(self, X: Array, *, training: bool = False, mask: Array = None) -> Array:
        return self.activate(X, X, mask)

    def backward_from_delta(self, Deltas: Array, *, need_dX: bool = True) -> Array | None:
        return Deltas

    def get_config(self) -> dict:
        return {"type": registered_name(type(self)), "activation": self.activation.config()}


# the layers of their own files, importable from here as before
from .dense import Dense  # noqa: E402
from .dropout import Dropout  # noqa: E402

__all__ = [
    "ActivatedLayer",
    "Activation",
    "BuildContext",
    "Dense",
    "Dropout",
    "Layer",
    "check_backend",
    "check_output",
    "check_rate",
    "check_size",
]
