"""Stateful layers: parameters, the forward cache and gradients; each calls a kernel.

A layer is built by the network that holds it (``Sequential`` draws every initial weight
from its seed, on its backend and dtype). ``forward`` caches what ``backward`` needs;
``backward(dEdY)`` stores ``grads`` and returns ``dEdX``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import functional as F
from ..backend import Backend, array_library, asarray
from ..random import Generator, initial_weights

Array = Any


@dataclass
class BuildContext:
    """What a network hands its layers when it builds them."""

    backend: Backend
    dtype: Any
    host_rng: Any  # numpy Generator for initial weights (same numbers on every backend)
    rng: Generator  # the backend's generator for per-step randomness


class Layer:
    """Base class: no parameters, identity forward and backward."""

    params: dict[str, Array]
    grads: dict[str, Array]

    def __init__(self) -> None:
        self.params = {}
        self.grads = {}
        self.xp: Any = None
        self.position = ""  # set by the network: "layers[2] "

    @property
    def label(self) -> str:
        """How errors name the layer: its position in the network and :meth:`describe`."""
        return f"{self.position}{self.describe()}"

    def describe(self) -> str:
        """A short human description, e.g. ``Dense(64 -> 32, sigmoid)``."""
        return type(self).__name__

    def build(self, ctx: BuildContext) -> None:
        """Create parameters and state on ``ctx.backend`` in ``ctx.dtype``."""
        self.xp = ctx.backend.xp
        self.dtype = ctx.dtype
        self.backend = ctx.backend

    def move(self, ctx: BuildContext) -> None:
        """Carry the parameters over to ``ctx.backend`` (values kept, caches dropped)."""
        Layer.build(self, ctx)  # namespace, dtype and backend only: no new weights
        self.params = {
            k: asarray(v, dtype=ctx.dtype, backend=ctx.backend) for k, v in self.params.items()
        }
        self.grads = {}
        self.forget()

    def forget(self) -> None:
        """Drop what the last forward pass cached."""

    def output_width(self, n_inputs: int) -> int:
        """The size of the last axis of the output, given that of the input."""
        return n_inputs

    def forward(self, X: Array, *, training: bool = False) -> Array:
        """The layer's output for ``X`` (shape ``(n_samples, ..., n)``); caches what
        :meth:`backward` needs. ``training`` turns on training-only behaviour (dropout)."""
        return X

    def backward(self, dEdY: Array, *, need_dX: bool = True) -> Array | None:
        """``dE/dX`` from ``dE/dY`` of the last forward pass; stores ``grads``. With
        ``need_dX=False`` a layer may skip ``dE/dX`` and return None."""
        return dEdY

    def get_config(self) -> dict:
        """A JSON-able description that rebuilds the layer (``type`` names its class)."""
        return {"type": type(self).__name__}

    def __repr__(self) -> str:
        return self.label


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

    def _forward_cache(self) -> tuple[Array, Array, Array]:
        if self._cache is None:
            raise RuntimeError(f"{self.label}: backward called before forward")
        return self._cache

    def output(self) -> F.LayerOutput:
        """``A``, ``Y`` and ``log(Y)`` (softmax) of the last forward pass, for a loss."""
        _, A, Y = self._forward_cache()
        return F.LayerOutput(A, Y, self._log_Y, self.activation)

    def backward(self, dEdY: Array, *, need_dX: bool = True) -> Array | None:
        """Store ``grads`` and return ``dE/dX`` (None when ``need_dX`` is False)."""
        Y = self._forward_cache()[2]
        return self.backward_from_delta(self.activation.backward(Y, dEdY, self.xp), need_dX=need_dX)

    def backward_from_delta(self, Deltas: Array, *, need_dX: bool = True) -> Array | None:
        """As :meth:`backward`, from ``Deltas = dE/dA`` (a loss's fused output delta)."""
        raise NotImplementedError


class Dense(ActivatedLayer):
    """A fully connected layer ``Y = g(X @ W.T + b)`` over the last axis of ``X``.

    Parameters
    ----------
    n_inputs, n_outputs : int
        Sizes of the last axis of the input and of the output.
    activation : str, dict or ActivationFunction, default "linear"
        ``"linear"``, ``"sigmoid"``, ``"tanh"``, ``"relu"``, ``"leaky_relu"``
        (``{"name": "leaky_relu", "alpha": 0.1}`` sets alpha) or ``"softmax"``.
    init : str, optional
        Weight initialiser (see :data:`nnxp.random.INITIALIZERS`). By default He-uniform for
        relu/leaky_relu and Glorot-uniform for the others; biases start at zero.

    Attributes
    ----------
    W : array of shape (n_outputs, n_inputs)
    b : array of shape (n_outputs,)

    Notes
    -----
    ``X`` may be ``(n_samples, n_inputs)`` or ``(n_samples, n_steps, ..., n_inputs)``: the
    leading axes are folded for the matrix product (a time-distributed dense) and the
    gradients sum over all of them.
    """

    def __init__(
        self, n_inputs: int, n_outputs: int, activation: Any = "linear", *, init: str | None = None
    ) -> None:
        for name, value in (("n_inputs", n_inputs), ("n_outputs", n_outputs)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Dense {name} must be a positive integer, got {value!r}")
        super().__init__(activation)
        self.n_inputs = n_inputs
        self.n_outputs = n_outputs
        if init is None:
            relu_like = self.activation.name in ("relu", "leaky_relu")
            init = "he_uniform" if relu_like else "glorot_uniform"
        self.init = init

    def describe(self) -> str:
        return f"Dense({self.n_inputs} -> {self.n_outputs}, {self.activation.name})"

    def build(self, ctx: BuildContext) -> None:
        super().build(ctx)
        shape = (self.n_outputs, self.n_inputs)
        self.params = {
            "W": initial_weights(shape, self.init, ctx.host_rng, ctx.backend, ctx.dtype),
            "b": self.xp.zeros((self.n_outputs,), dtype=ctx.dtype, device=ctx.backend.device),
        }

    def output_width(self, n_inputs: int) -> int:
        if n_inputs != self.n_inputs:
            raise ValueError(
                f"{self.label} expects {self.n_inputs} inputs but the layer before it gives "
                f"{n_inputs}"
            )
        return self.n_outputs

    # parameters, assignable ------------------------------------------------------------
    @property
    def W(self) -> Array:
        return self.params["W"]

    @W.setter
    def W(self, value: Array) -> None:
        self._set_param("W", value, (self.n_outputs, self.n_inputs))

    @property
    def b(self) -> Array:
        return self.params["b"]

    @b.setter
    def b(self, value: Array) -> None:
        self._set_param("b", value, (self.n_outputs,))

    def _set_param(self, name: str, value: Array, shape: tuple[int, ...]) -> None:
        if not self.params:
            raise RuntimeError(f"{self.label} is not built yet: put it in a Sequential first")
        check_backend(value, self.backend, f"{self.label}.{name}")
        if tuple(value.shape) != shape:
            raise ValueError(
                f"{self.label}.{name} must have shape {shape}, got {tuple(value.shape)}"
            )
        self.params[name] = self.xp.astype(value, self.dtype, copy=True)

    # passes ----------------------------------------------------------------------------
    def check_input(self, X: Array) -> None:
        """Raise a ValueError/TypeError naming this layer when ``X`` does not fit it."""
        if X.ndim < 2 or X.shape[-1] != self.n_inputs:
            raise ValueError(
                f"{self.label} expects input of shape (n_samples, ..., {self.n_inputs}), "
                f"got shape {tuple(X.shape)}"
            )
        if X.dtype != self.dtype:
            raise TypeError(f"{self.label} expects dtype {self.dtype}, got {X.dtype}")

    def forward(self, X: Array, *, training: bool = False, mask: Array = None) -> Array:
        """``Y = g(X @ W.T + b)``; with ``mask`` (softmax layers), a masked softmax.

        Parameters
        ----------
        X : array of shape (n_samples, ..., n_inputs)
        training : bool
            Unused by Dense (kept for a uniform layer interface).
        mask : bool array of shape (n_samples, ..., n_outputs), optional

        Returns
        -------
        Y : array of shape (n_samples, ..., n_outputs)
        """
        self.check_input(X)
        return self.activate(
            X, F.affine_forward(X, self.params["W"], self.params["b"], xp=self.xp), mask
        )

    def backward_from_delta(self, Deltas: Array, *, need_dX: bool = True) -> Array | None:
        """Store ``grads = {"W": dE/dW, "b": dE/db}`` from ``Deltas = dE/dA``; return
        ``dE/dX`` (None when ``need_dX`` is False)."""
        X = self._forward_cache()[0]
        dEdX, dEdW, dEdb = F.affine_backward(
            Deltas, self.params["W"], X, need_dX=need_dX, xp=self.xp
        )
        self.grads = {"W": dEdW, "b": dEdb}
        return dEdX

    def get_config(self) -> dict:
        return {
            "type": "Dense",
            "n_inputs": self.n_inputs,
            "n_outputs": self.n_outputs,
            "activation": self.activation.config(),
            "init": self.init,
        }


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
        return {"type": "Activation", "activation": self.activation.config()}


class Dropout(Layer):
    """Inverted dropout: in training, zero each entry with probability ``rate`` and scale
    the survivors by ``1 / (1 - rate)``; in inference, the identity.

    Parameters
    ----------
    rate : float in [0, 1)
    noise_shape : tuple of (int or None), optional
        As Keras: the shape of the mask, one entry per input axis; ``None`` takes the
        input's size and ``1`` broadcasts. ``(None, 1, None)`` shares one mask over every
        timestep of an ``(N, T, F)`` input.
    """

    def __init__(self, rate: float, noise_shape: tuple[int | None, ...] | None = None) -> None:
        super().__init__()
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout rate must be a number in [0, 1), got {rate!r}")
        if noise_shape is not None:
            noise_shape = tuple(noise_shape)
            for size in noise_shape:
                if size is not None and (
                    isinstance(size, bool) or not isinstance(size, int) or size < 1
                ):
                    raise ValueError(
                        f"Dropout noise_shape entries must be None or positive integers, "
                        f"got {noise_shape}"
                    )
        self.rate = float(rate)
        self.noise_shape = noise_shape
        self._mask: Array = None

    def describe(self) -> str:
        return f"Dropout({self.rate})"

    def build(self, ctx: BuildContext) -> None:
        super().build(ctx)
        self._rng = ctx.rng

    def move(self, ctx: BuildContext) -> None:
        super().move(ctx)
        self._rng = ctx.rng

    def forget(self) -> None:
        self._mask = None

    def _mask_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if self.noise_shape is None:
            return tuple(shape)
        if len(self.noise_shape) != len(shape):
            raise ValueError(
                f"{self.label} noise_shape {self.noise_shape} has {len(self.noise_shape)} "
                f"entries but the input has shape {tuple(shape)}"
            )
        out = []
        for size, n in zip(self.noise_shape, shape):
            if size is None:
                size = n
            elif size not in (1, n):
                raise ValueError(
                    f"{self.label} noise_shape {self.noise_shape} does not broadcast to the "
                    f"input shape {tuple(shape)}"
                )
            out.append(size)
        return tuple(out)

    def forward(self, X: Array, *, training: bool = False) -> Array:
        """Returns ``X * mask / (1 - rate)`` in training, ``X`` otherwise."""
        shape = self._mask_shape(tuple(X.shape))
        if not training or self.rate == 0.0:
            self._mask = None
            return X
        keep = self._rng.uniform(shape, self.dtype) >= self.rate
        self._mask = self.xp.astype(keep, self.dtype) * (1.0 / (1.0 - self.rate))
        return X * self._mask

    def backward(self, dEdY: Array, *, need_dX: bool = True) -> Array | None:
        """The same mask as the forward pass: ``dEdY * mask / (1 - rate)``."""
        return dEdY if self._mask is None else dEdY * self._mask

    def get_config(self) -> dict:
        noise_shape = None if self.noise_shape is None else list(self.noise_shape)
        return {"type": "Dropout", "rate": self.rate, "noise_shape": noise_shape}


LAYERS = {cls.__name__: cls for cls in (Dense, Activation, Dropout)}


def layer_from_config(config: dict) -> Layer:
    """Rebuild an (unbuilt) layer from :meth:`Layer.get_config`'s description."""
    settings = dict(config)
    kind = settings.pop("type", None)
    if kind not in LAYERS:
        raise ValueError(f"unknown layer type {kind!r}; valid types are {', '.join(LAYERS)}")
    if kind == "Dropout" and settings.get("noise_shape") is not None:
        settings["noise_shape"] = tuple(settings["noise_shape"])
    return LAYERS[kind](**settings)


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
