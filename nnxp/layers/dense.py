"""The fully connected layer ``Y = g(X @ W.T + b)`` and its options (bias, initializers,
regularizers)."""

from __future__ import annotations

from typing import Any

from .. import functional as F
from .. import initializers, regularizers
from .core import ActivatedLayer, BuildContext, check_backend, check_size
from .registry import register, registered_name

Array = Any


@register
class Dense(ActivatedLayer):
    """A fully connected layer ``Y = g(X @ W.T + b)`` over the last axis of ``X``.

    Parameters
    ----------
    n_inputs, n_outputs : int
        Sizes of the last axis of the input and of the output (NumPy integers accepted).
    activation : str, dict or ActivationFunction, default "linear"
        A registered name (``"linear"``, ``"sigmoid"``, ``"tanh"``, ``"relu"``,
        ``"leaky_relu"``, ``"elu"``, ``"selu"``, ``"gelu"``, ``"silu"``, ``"softmax"``, ...),
        a config dict (``{"name": "leaky_relu", "alpha": 0.1}``) or an instance.
    use_bias : bool, default True
        False: no ``b`` parameter, ``Y = g(X @ W.T)``.
    kernel_initializer : str, dict or callable, optional
        How ``W`` starts (see :mod:`nnxp.initializers`): ``"glorot_uniform"``,
        ``"glorot_normal"``, ``"he_uniform"``, ``"he_normal"``, ``"lecun_normal"``,
        ``"orthogonal"``, ``"zeros"``, ``"ones"``, ``nnxp.initializers.constant(v)`` or a
        callable ``f(shape, rng) -> numpy array`` drawing from the host generator ``rng``.
        By default He-uniform for relu/leaky_relu, Glorot-uniform otherwise.
    bias_initializer : str, dict or callable, default "zeros"
    kernel_regularizer, bias_regularizer : str, dict or Regularizer, optional
        ``"l1"``, ``"l2"``, ``"l1_l2"`` (factor 0.01) or ``nnxp.regularizers.l2(1e-4)``
        etc.: the penalty is added to the loss and its gradient to ``grads``
        (:meth:`regularization`).
    init : str, optional
        The older name of ``kernel_initializer`` (give one of the two).

    Attributes
    ----------
    W : array of shape (n_outputs, n_inputs)
    b : array of shape (n_outputs,) (absent when ``use_bias`` is False)

    Notes
    -----
    ``X`` may be ``(n_samples, n_inputs)`` or ``(n_samples, n_steps, ..., n_inputs)``: the
    leading axes are folded for the matrix product (a time-distributed dense) and the
    gradients sum over all of them.
    """

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        activation: Any = "linear",
        *,
        use_bias: bool = True,
        kernel_initializer: Any = None,
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        init: Any = None,
    ) -> None:
        n_inputs = check_size(n_inputs, "Dense n_inputs")
        n_outputs = check_size(n_outputs, "Dense n_outputs")
        if not isinstance(use_bias, bool):
            raise TypeError(f"Dense use_bias must be True or False, got {use_bias!r}")
        if init is not None and kernel_initializer is not None:
            raise ValueError(
                "Dense: give kernel_initializer or its older name init, not both "
                f"(got {kernel_initializer!r} and {init!r})"
            )
        kernel_initializer = kernel_initializer if init is None else init
        activation = F.get_activation(activation)
        if kernel_initializer is None:
            relu_like = activation.name in ("relu", "leaky_relu")
            kernel_initializer = "he_uniform" if relu_like else "glorot_uniform"
        kernel_init = _option(initializers.get, kernel_initializer, "kernel_initializer")
        bias_init = _option(initializers.get, bias_initializer, "bias_initializer")
        kernel_reg = _option(regularizers.get, kernel_regularizer, "kernel_regularizer")
        bias_reg = _option(regularizers.get, bias_regularizer, "bias_regularizer")
        if bias_reg is not None and not use_bias:
            raise ValueError("Dense: bias_regularizer needs use_bias=True")
        super().__init__(activation)
        self.n_inputs = n_inputs
        self.n_outputs = n_outputs
        self.use_bias = use_bias
        self.kernel_initializer = kernel_init
        self.bias_initializer = bias_init
        self.kernel_regularizer = kernel_reg
        self.bias_regularizer = bias_reg

    @property
    def init(self) -> Any:
        """The kernel initializer's name (the older option name)."""
        return self.kernel_initializer.name

    def describe(self) -> str:
        return f"Dense({self.n_inputs} -> {self.n_outputs}, {self.activation.name})"

    def build(self, ctx: BuildContext) -> None:
        super().build(ctx)
        self.params = {"W": initializers.draw(self.kernel_initializer, self._shapes["W"], ctx)}
        if self.use_bias:
            self.params["b"] = initializers.draw(self.bias_initializer, self._shapes["b"], ctx)

    @property
    def _shapes(self) -> dict[str, tuple[int, ...]]:
        return {"W": (self.n_outputs, self.n_inputs), "b": (self.n_outputs,)}

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{"W": (n_outputs, n_inputs), "b": (n_outputs,)}`` (no ``b`` without bias)."""
        shapes = self._shapes
        return shapes if self.use_bias else {"W": shapes["W"]}

    def output_width(self, n_inputs: int | None) -> int:
        self._check_width(n_inputs, self.n_inputs, "inputs")
        return self.n_outputs

    def output_shape(self, input_shape: tuple) -> tuple:
        input_shape = tuple(input_shape)
        if len(input_shape) < 2 or input_shape[-1] not in (None, self.n_inputs):
            raise ValueError(
                f"{self.label} expects input of shape (n_samples, ..., {self.n_inputs}), "
                f"got shape {input_shape}"
            )
        return (*input_shape[:-1], self.n_outputs)

    # parameters, assignable ------------------------------------------------------------
    @property
    def W(self) -> Array:
        return self.params["W"]

    @W.setter
    def W(self, value: Array) -> None:
        self._set_param("W", value)

    @property
    def b(self) -> Array:
        if not self.use_bias:
            raise AttributeError(f"{self.label} has no bias (use_bias=False)")
        return self.params["b"]

    @b.setter
    def b(self, value: Array) -> None:
        if not self.use_bias:
            raise ValueError(f"{self.label} has no bias (use_bias=False)")
        self._set_param("b", value)

    def _set_param(self, name: str, value: Array) -> None:
        if not self.params:
            raise RuntimeError(f"{self.label} is not built yet: put it in a Sequential first")
        check_backend(value, self.backend, f"{self.label}.{name}")
        shape = self._shapes[name]
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
        if X.ndim != 2 or X.shape[1] != self.n_inputs or X.dtype != self.dtype:
            self.check_input(X)  # raises, unless X is (n_samples, ..., n_inputs)
        params = self.params
        W = params["W"]
        if X.ndim == 2:  # the common case, inline: a small step's cost is its calls
            A = X @ W.T
            if self.use_bias:
                A += params["b"]  # in place: the product is ours
        elif self.use_bias:
            A = F.affine_forward(X, W, params["b"], xp=self.xp)
        else:  # fold the leading axes for one matrix product
            A = self.xp.reshape(self.xp.reshape(X, (-1, self.n_inputs)) @ W.T, (*X.shape[:-1], -1))
        return self.activate(X, A, mask)

    def backward_from_delta(self, Deltas: Array, *, need_dX: bool = True) -> Array | None:
        """Store ``grads = {"W": dE/dW, "b": dE/db}`` from ``Deltas = dE/dA``; return
        ``dE/dX`` (None when ``need_dX`` is False)."""
        try:
            X = self._cache[0]  # type: ignore[index]
        except TypeError:  # None: no forward pass cached
            raise self._no_forward() from None
        W = self.params["W"]
        if X.ndim == 2:  # inline, as in forward
            dEdX = Deltas @ W if need_dX else None
            dEdW = Deltas.T @ X
            if self.use_bias:
                self.grads = {"W": dEdW, "b": self.xp.sum(Deltas, axis=0)}
            else:
                self.grads = {"W": dEdW}
            return dEdX
        dEdX, dEdW, dEdb = F.affine_backward(Deltas, W, X, need_dX=need_dX, xp=self.xp)
        self.grads = {"W": dEdW, "b": dEdb} if self.use_bias else {"W": dEdW}
        return dEdX

    def regularization(self) -> tuple[Array | None, dict[str, Array]]:
        """``kernel_regularizer(W) + bias_regularizer(b)`` and their gradients."""
        if self.kernel_regularizer is None and self.bias_regularizer is None:
            return None, {}
        penalty, grads = None, {}
        for name, reg in (("W", self.kernel_regularizer), ("b", self.bias_regularizer)):
            if reg is not None:
                value, grads[name] = reg(self.params[name], self.xp)
                penalty = value if penalty is None else penalty + value
        return penalty, grads

    def get_config(self) -> dict:
        config = {
            "type": registered_name(type(self)),
            "n_inputs": self.n_inputs,
            "n_outputs": self.n_outputs,
            "activation": self.activation.config(),
            "use_bias": self.use_bias,
            "kernel_initializer": self.kernel_initializer.get_config(),
            "bias_initializer": self.bias_initializer.get_config(),
        }
        for name in ("kernel_regularizer", "bias_regularizer"):
            reg = getattr(self, name)
            config[name] = None if reg is None else reg.get_config()
        return config


def _option(resolve: Any, value: Any, what: str) -> Any:
    """Resolve an initializer/regularizer setting, naming the Dense option on failure."""
    try:
        return resolve(value)
    except ValueError as error:
        raise ValueError(f"Dense {what}: {error}") from None
    except TypeError as error:
        raise TypeError(f"Dense {what}: {error}") from None
