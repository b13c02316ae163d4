"""``Sequential``: a stack of layers with forward, backward, the loss gradient and fit."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from . import training
from .backend import Backend, asarray, get_backend, to_numpy, use_backend
from .layers import ActivatedLayer, BuildContext, Dense, Layer, check_backend, layer_from_config
from .losses import Loss, get_loss
from .random import Generator, host_generator

Array = Any


class Sequential:
    """A feed-forward network: each layer's output is the next one's input.

    Parameters
    ----------
    layers : sequence of Layer
        Consecutive Dense layers must agree: ``layers[i].n_outputs == layers[i+1].n_inputs``.
    seed : int, default 0
        Seeds the initial weights (drawn on the host, identical on every backend) and the
        backend generator used for shuffling and dropout.
    dtype : {"float32", "float64"} or a backend dtype, optional
        float32 by default.

    The network lives on the backend that is current when it is built (``net.backend``).
    """

    def __init__(self, layers: Sequence[Layer], seed: int = 0, dtype: Any = None) -> None:
        layers = list(layers)
        if not layers or not all(isinstance(layer, Layer) for layer in layers):
            raise TypeError("Sequential needs a non-empty list of nnxp layers")
        widths = [layer for layer in layers if isinstance(layer, Dense)]
        if not widths:
            raise ValueError("Sequential needs at least one Dense layer")
        width = widths[0].n_inputs
        for i, layer in enumerate(layers):
            layer.position = f"layers[{i}] "
            width = layer.output_width(width)
        self.n_inputs = widths[0].n_inputs
        self.n_outputs = width
        self.layers = layers
        self.seed = seed
        self.backend: Backend = get_backend()
        self.dtype = self.backend.dtype(dtype)
        self.xp = self.backend.xp
        self.rng = Generator(self.backend, seed)
        self.history: training.History | None = None  # set by fit
        ctx = BuildContext(self.backend, self.dtype, host_generator(seed), self.rng)
        for layer in layers:
            layer.build(ctx)
        # backward stops at the first layer with parameters, which needs no dE/dX
        self._first_trainable = next(i for i, layer in enumerate(layers) if layer.params)

    def __repr__(self) -> str:
        inner = ", ".join(layer.describe() for layer in self.layers)
        dtype = self.backend.dtype_name(self.dtype)
        return f"Sequential([{inner}], backend={self.backend.name!r}, dtype={dtype!r})"

    # ------------------------------------------------------------------ checked entry points
    def check_inputs(self, X: Array) -> Array:
        """Check ``X`` belongs to this network's backend; cast numbers to the network dtype.

        Raises
        ------
        TypeError
            An array of another backend or device, or a dtype that is not a real number.
        ValueError
            Wrong rank or feature count (checked by the first Dense layer).
        """
        check_backend(X, self.backend, f"{self.layers[0].label} input X")
        xp = self.xp
        if X.dtype != self.dtype:
            if not xp.isdtype(X.dtype, ("real floating", "integral", "bool")):
                raise TypeError(
                    f"{self.layers[0].label} input X must hold real numbers, got dtype {X.dtype}"
                )
            X = xp.astype(X, self.dtype)
        first = next(layer for layer in self.layers if isinstance(layer, Dense))
        first.check_input(X)
        if X.shape[0] == 0:
            raise ValueError(f"{first.label} input X is empty (0 samples)")
        return X

    def check_mask(self, mask: Array, out_shape: tuple[int, ...]) -> Array:
        """Check a softmax mask (bool, or 0/1 numbers) of the output's shape; return bool."""
        if mask is None:
            return None
        xp = self.xp
        check_backend(mask, self.backend, "mask")
        if tuple(mask.shape) != out_shape:
            raise ValueError(
                f"mask must have the shape of the network output {out_shape}, got "
                f"{tuple(mask.shape)}"
            )
        if mask.dtype == xp.bool:
            return mask
        if not xp.isdtype(mask.dtype, ("real floating", "integral")):
            raise TypeError(f"mask must be boolean or 0/1 numbers, got dtype {mask.dtype}")
        if bool(xp.any((mask != 0) & (mask != 1))):
            raise ValueError("mask must hold only 0 and 1 (or be boolean)")
        return mask == 1

    def check_targets(
        self, T: Array, loss: Loss, out_shape: tuple[int, ...], mask: Array = None
    ) -> Array:
        """Check targets against the output shape and loss; one-hot integer class labels."""
        xp = self.xp
        check_backend(T, self.backend, "targets T")
        if T.shape[:1] != out_shape[:1]:
            raise ValueError(f"X has {out_shape[0]} rows but T has {T.shape[0] if T.ndim else 0}")
        n_classes = out_shape[-1]
        from_labels = loss.name == "cross_entropy" and tuple(T.shape) == out_shape[:-1]
        if from_labels:
            if not xp.isdtype(T.dtype, "integral"):
                raise TypeError(
                    f"class labels of shape {tuple(T.shape)} must be integers, got {T.dtype}"
                )
            if bool(xp.any((T < 0) | (T >= n_classes))):
                raise ValueError(f"class labels must lie in [0, {n_classes}), the output width")
            classes = xp.arange(n_classes, device=self.backend.device)
            T = xp.astype(T[..., None] == classes, self.dtype)
        elif tuple(T.shape) != out_shape:
            raise ValueError(
                f"loss {loss.name!r}: targets T must have shape {out_shape} (the output of "
                f"{self.layers[-1].label})"
                + (
                    f" or class labels of shape {out_shape[:-1]}"
                    if loss.name == "cross_entropy"
                    else ""
                )
                + f", got {tuple(T.shape)}"
            )
        if T.dtype != self.dtype:
            if not xp.isdtype(T.dtype, ("real floating", "integral", "bool")):
                raise TypeError(f"targets T must hold real numbers, got dtype {T.dtype}")
            T = xp.astype(T, self.dtype)
        if loss.name == "cross_entropy" and not from_labels:
            self._check_probability_rows(T, mask)
        return T

    def _check_probability_rows(self, T: Array, mask: Array) -> None:
        """Cross-entropy targets: non-negative rows summing to one (the fused delta
        ``(Y - T)/N`` holds for those); with a mask, no mass on masked outputs, and rows
        with every output masked all zero."""
        xp = self.xp
        if mask is not None and bool(xp.any(xp.where(mask, 0.0, T) != 0)):
            raise ValueError("targets put probability on outputs the mask forbids")
        sums = xp.sum(T, axis=-1)
        if mask is not None:
            sums = xp.where(xp.any(mask, axis=-1), sums, 1.0)
        tolerance = 1e-4 if self.dtype == xp.float32 else 1e-8
        if bool(xp.any(T < 0)) or bool(xp.any(xp.abs(sums - 1.0) > tolerance)):
            raise ValueError(
                "cross_entropy targets must be probability rows: non-negative, each summing "
                f"to 1 (one-hot rows or integer class labels); row sums lie in "
                f"[{float(xp.min(sums)):.6g}, {float(xp.max(sums)):.6g}]"
            )

    def output_shape(self, X: Array) -> tuple[int, ...]:
        """The shape the network's output has for input ``X``."""
        return (*X.shape[:-1], self.n_outputs)

    # ------------------------------------------------------------------ passes
    def forward(self, X: Array, *, training: bool = False, mask: Array = None) -> Array:
        """Run every layer; the layers cache what :meth:`backward` needs.

        Parameters
        ----------
        X : array of shape (n_samples, ..., n_inputs)
        training : bool
            True turns dropout on.
        mask : array of shape (n_samples, ..., n_outputs), optional
            Bool or 0/1: outputs of the (softmax) output layer allowed to be non-zero.

        Returns
        -------
        Y : array of shape (n_samples, ..., n_outputs)
        """
        X = self.check_inputs(X)
        return self._forward(X, training, self.check_mask(mask, self.output_shape(X)))

    def _forward(self, X: Array, training: bool, mask: Array = None) -> Array:
        for layer in self.layers[:-1]:
            X = layer.forward(X, training=training)
        if mask is None:
            return self.layers[-1].forward(X, training=training)
        return self._output_layer().forward(X, training=training, mask=mask)

    def backward(self, dEdY: Array) -> Array:
        """Back-propagate ``dE/dY`` of the output through every layer.

        Each layer stores its gradients in ``layer.grads``.

        Parameters
        ----------
        dEdY : array of the output's shape

        Returns
        -------
        dEdX : array of the input's shape
        """
        for layer in reversed(self.layers):
            dEdY = layer.backward(dEdY)
        return dEdY

    def _backward_from_output_delta(self, delta: Array) -> None:
        """Back-propagate a loss's ``dE/dA`` of the output layer, down to the first layer
        with parameters (whose ``dE/dX`` nobody needs)."""
        stop = self._first_trainable
        last = len(self.layers) - 1
        delta = self._output_layer().backward_from_delta(delta, need_dX=last > stop)
        for i in range(last - 1, stop - 1, -1):
            delta = self.layers[i].backward(delta, need_dX=i > stop)

    def _output_layer(self) -> ActivatedLayer:
        out = self.layers[-1]
        if not isinstance(out, ActivatedLayer):
            raise ValueError(
                f"a loss or a mask needs a Dense or Activation output layer, not {out.label}"
            )
        return out

    def _loss_and_delta(self, X: Array, T: Array, loss: Loss, mask: Array, training: bool) -> Array:
        """Forward, the loss summed over samples (left on the device) and the backward pass
        of the mean loss; fills every layer's ``grads``."""
        self._forward(X, training, mask)
        total, delta = loss.total_and_delta(self._output_layer().output(), T, self.xp, mask)
        self._backward_from_output_delta(delta)
        return total

    def prepare(
        self, X: Array, T: Array, loss: str | Loss, mask: Array = None, check_finite: bool = True
    ) -> tuple[Array, Array, Loss, Array]:
        """Check and convert ``(X, T, loss, mask)`` once, before any computation.

        ``check_finite`` refuses NaN or inf in ``X`` or ``T`` (one reduction each, read
        back once); pass False to skip the check.
        """
        loss = get_loss(loss)
        out = self._output_layer()
        loss.check_activation(out.activation, out.label)
        X = self.check_inputs(X)
        out_shape = self.output_shape(X)
        mask = self.check_mask(mask, out_shape)
        T = self.check_targets(T, loss, out_shape, mask)
        if check_finite:
            for name, values in (("X", X), ("T", T)):
                if not self._all_finite(values):
                    raise ValueError(
                        f"{name} holds NaN or inf values; clean the data, or pass "
                        f"check_finite=False to train on it anyway"
                    )
        return X, T, loss, mask

    def _all_finite(self, values: Array, block: int = 1 << 20) -> bool:
        """``all(isfinite(values))`` over blocks of rows (a bounded temporary, not a boolean
        copy of the whole data set), read back once."""
        xp = self.xp
        n = values.shape[0]
        rows = max(1, block // max(1, math.prod(values.shape[1:])))
        blocks = (values[i : min(i + rows, n), ...] for i in range(0, n, rows))
        flags = [xp.all(xp.isfinite(part)) for part in blocks]
        return bool(xp.all(xp.stack(flags)))

    def loss_and_gradient(
        self, X: Array, T: Array, loss: str | Loss, *, mask: Array = None, check_finite: bool = True
    ) -> tuple[float, list[dict[str, Array]]]:
        """The mean loss on ``(X, T)`` and its gradient with respect to every parameter.

        Dropout is off (inference mode), so the result is deterministic.

        Parameters
        ----------
        X : array of shape (n_samples, ..., n_inputs)
        T : array of the output's shape, or integer class labels (n_samples, ...) for
            cross_entropy
        loss : {"mse", "cross_entropy", "binary_cross_entropy"}
        mask : array of the output's shape, optional
        check_finite : bool
            Refuse NaN/inf in ``X`` and ``T`` (``ValueError``); False skips the check.

        Returns
        -------
        loss : float
        grads : list of dict
            ``grads[i] == {"W": dE/dW, "b": dE/db}`` for a Dense layer, ``{}`` otherwise.
        """
        X, T, loss, mask = self.prepare(X, T, loss, mask, check_finite)
        total = self._loss_and_delta(X, T, loss, mask, training=False)
        for layer in self.layers[: self._first_trainable]:
            layer.grads = {}
        return float(total) / math.prod(X.shape[:-1]), [dict(layer.grads) for layer in self.layers]

    def predict(self, X: Array, batch_size: int | None = None, *, mask: Array = None) -> Array:
        """The network's output in inference mode, in chunks of ``batch_size`` rows if given.

        Returns
        -------
        Y : array of shape (n_samples, ..., n_outputs)
        """
        X = self.check_inputs(X)
        mask = self.check_mask(mask, self.output_shape(X))
        n = X.shape[0]
        if batch_size is None or batch_size >= n:
            return self._forward(X, False, mask)
        training.check_batch_size(batch_size)
        parts = []
        for start in range(0, n, batch_size):
            rows = slice(start, min(start + batch_size, n))
            parts.append(
                self._forward(X[rows, ...], False, None if mask is None else mask[rows, ...])
            )
        return self.xp.concat(parts, axis=0)

    def evaluate(
        self, X: Array, T: Array, loss: str | Loss, *, mask: Array = None
    ) -> dict[str, float]:
        """Loss on ``(X, T)``, and accuracy for the classification losses.

        Returns
        -------
        dict
            ``{"loss": float}`` plus ``"accuracy"`` for cross_entropy (arg-max over the last
            axis) and binary_cross_entropy (threshold 0.5).
        """
        X, T, loss, mask = self.prepare(X, T, loss, mask)
        return training.evaluate(self, X, T, loss, mask)

    def fit(self, X: Array, T: Array, *, loss: str | Loss, **options: Any) -> training.History:
        """Train with minibatches; see :func:`nnxp.training.fit` for every option."""
        return training.fit(self, X, T, loss=loss, **options)

    # ------------------------------------------------------------------ parameters
    def parameters(self) -> list[dict[str, Array]]:
        """Each layer's parameter dict (``{"W": W, "b": b}`` for Dense, ``{}`` otherwise);
        the dicts are the layers' own, so an optimizer updating them updates the network."""
        return [layer.params for layer in self.layers]

    def gradients(self) -> list[dict[str, Array]]:
        """Each layer's gradient dict from the last backward pass."""
        return [layer.grads for layer in self.layers]

    def get_weights(self) -> list[dict[str, Array]]:
        """Copies of every parameter (a snapshot that later updates do not touch)."""
        xp = self.xp
        return [{k: xp.asarray(v, copy=True) for k, v in p.items()} for p in self.parameters()]

    def set_weights(self, weights: list[dict[str, Array]]) -> None:
        """Put a snapshot from :meth:`get_weights` back (copied, shapes checked)."""
        if len(weights) != len(self.layers):
            raise ValueError(f"expected weights for {len(self.layers)} layers, got {len(weights)}")
        for layer, values in zip(self.layers, weights):
            if set(values) != set(layer.params):
                raise ValueError(
                    f"{layer.label} has parameters {sorted(layer.params)}, got {sorted(values)}"
                )
            for name, value in values.items():
                setattr(layer, name, value)

    def save(self, path: Any, optimizer: Any = None) -> Any:
        """Write the network (and optimizer state) to ``path``; see :func:`nnxp.io.save`."""
        from . import io

        return io.save(self, path, optimizer)

    def to_backend(self, name: str, device: Any = None, *, optimizer: Any = None) -> Sequential:
        """Move the network (and ``optimizer``'s state) to backend ``name``, in place.

        Returns
        -------
        Sequential
            ``self``, for chaining.
        """
        with use_backend(name, device) as target:
            dtype = target.dtype(self.backend.dtype_name(self.dtype))
            ctx = BuildContext(target, dtype, None, Generator(target, self.seed))
            for layer in self.layers:
                layer.move(ctx)
            if optimizer is not None:
                optimizer.move(target)
        self.backend, self.dtype, self.xp, self.rng = target, dtype, target.xp, ctx.rng
        return self

    def __reduce__(self) -> tuple:
        """Pickle as architecture + host weights; unpickling rebuilds on the same backend
        (its default device)."""
        host = [{k: to_numpy(v) for k, v in p.items()} for p in self.parameters()]
        dtype = self.backend.dtype_name(self.dtype)
        return _unpickle, (self.backend.name, self.get_config(), dtype, host)

    def get_config(self) -> dict:
        """A JSON-able description of the architecture (no weights)."""
        return {"layers": [layer.get_config() for layer in self.layers], "seed": self.seed}

    @classmethod
    def from_config(
        cls,
        config: dict,
        weights: list[dict[str, Array]],
        *,
        backend: str | None = None,
        device: Any = None,
        dtype: Any = None,
    ) -> Sequential:
        """Build a network from :meth:`get_config` and per-layer weights.

        Parameters
        ----------
        config : dict
            ``{"layers": [layer configs], "seed": int}``.
        weights : list of dict
            One dict per layer, as :meth:`parameters` gives: arrays of any backend or NumPy.
        backend : str, optional
            The current backend (and its device) by default.
        device : optional
        dtype : {"float32", "float64"}, optional

        Raises
        ------
        ValueError
            Weights that do not match the layers (names or shapes).
        """
        current = get_backend()
        name = backend or current.name
        if device is None and name == current.name:
            device = current.device
        with use_backend(name, device) as target:
            layers = [layer_from_config(c) for c in config["layers"]]
            net = cls(layers, seed=config["seed"], dtype=dtype)
            if len(weights) != len(layers):
                raise ValueError(
                    f"weights for {len(weights)} layers, the network has {len(layers)}"
                )
            for layer, values in zip(layers, weights):
                if set(values) != set(layer.params):
                    raise ValueError(
                        f"{layer.label} has parameters {sorted(layer.params)}, got {sorted(values)}"
                    )
                for key, value in values.items():
                    expected = tuple(layer.params[key].shape)
                    if tuple(value.shape) != expected:
                        raise ValueError(
                            f"{layer.label}.{key}: shape {tuple(value.shape)}, expected {expected}"
                        )
                    layer.params[key] = asarray(value, dtype=net.dtype, backend=target)
        return net

    def clone(self, *, backend: str | None = None, dtype: Any = None) -> Sequential:
        """A copy of this network (weights included), optionally on another backend/dtype."""
        name = backend or self.backend.name
        return Sequential.from_config(
            self.get_config(),
            self.parameters(),
            backend=name,
            device=self.backend.device if name == self.backend.name else None,
            dtype=self.backend.dtype_name(self.dtype) if dtype is None else dtype,
        )


def _unpickle(backend: str, config: dict, dtype: str, host: list) -> Sequential:
    return Sequential.from_config(config, host, backend=backend, dtype=dtype)
