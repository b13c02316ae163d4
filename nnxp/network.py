"""``Sequential``: a stack of layers with forward, backward, the loss gradient and fit.

A thin conductor: input checks live in :mod:`nnxp.checks`, the epoch loop in
:mod:`nnxp.training`, persistence in :mod:`nnxp.io`.
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from . import checks, training
from .backend import Backend, asarray, get_backend, to_numpy, use_backend
from .layers import ActivatedLayer, BuildContext, Layer, check_backend, layer_from_config
from .losses import Loss, get_loss
from .random import Generator, host_generator

Array = Any


def _protocol_builds_without_rng() -> bool:
    """True once the layers honour ``BuildContext(host_rng=None)`` (allocate, draw nothing)."""
    return hasattr(Layer, "regularization")


def _shadow(layer: Layer) -> Layer:
    """A shallow twin of ``layer`` sharing its parameters but not its caches or grads, so an
    inference pass (or a thread) leaves the layer's own training caches untouched; nested
    layers (wrappers: attributes holding layers, lists or dicts of layers) get twins too."""
    twin = copy.copy(layer)
    for key, value in vars(layer).items():
        if isinstance(value, Layer):
            setattr(twin, key, _shadow(value))
        elif (
            isinstance(value, (list, tuple)) and value and all(isinstance(v, Layer) for v in value)
        ):
            setattr(twin, key, type(value)(_shadow(v) for v in value))
        elif (
            isinstance(value, dict) and value and all(isinstance(v, Layer) for v in value.values())
        ):
            setattr(twin, key, {k: _shadow(v) for k, v in value.items()})
    try:
        twin.grads = {}
    except (TypeError, AttributeError):  # grads as a view over the (twinned) parts
        pass
    return twin


class _Owner:
    """The network a layer belongs to (a weak reference: a dead network frees its layers).
    A pickled or deep-copied layer belongs to no network."""

    __slots__ = ("ref",)

    def __init__(self, net: Any) -> None:
        self.ref = weakref.ref(net)

    def alive(self) -> bool:
        return self.ref() is not None

    def __reduce__(self) -> tuple:
        return (_no_owner, ())


def _no_owner() -> None:
    return None


class Sequential:
    """A feed-forward network: each layer's output is the next one's input.

    Parameters
    ----------
    layers : sequence of Layer
        Any layers of the layer protocol. Consecutive layers must agree on the size of the
        last axis (checked here with ``layer.output_width``). A layer instance belongs to one
        network, once: a layer used twice, or already part of another network, is refused.
    seed : int, default 0
        Seeds the initial weights (drawn on the host, identical on every backend), the host
        generator that shuffles the rows in ``fit`` (``net.shuffle_rng``) and the backend
        generator used for dropout.
    dtype : {"float32", "float64"} or a backend dtype, optional
        float32 by default.

    The network lives on the backend that is current when it is built (``net.backend``).
    """

    def __init__(self, layers: Sequence[Layer], seed: int = 0, dtype: Any = None) -> None:
        self._setup(layers, seed, dtype, draw=True)

    def _setup(self, layers: Sequence[Layer], seed: Any, dtype: Any, *, draw: bool) -> None:
        layers = list(layers)
        if not layers or not all(isinstance(layer, Layer) for layer in layers):
            raise TypeError("Sequential needs a non-empty list of nnxp layers")
        seed = checks.integer("seed", seed)
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
            if isinstance(owner, _Owner) and owner.alive():
                raise ValueError(
                    f"layers[{i}] {layer.describe()} is already part of another network: a "
                    f"layer belongs to one network (build new layers, or use net.clone())"
                )
        width = getattr(layers[0], "n_inputs", None)
        for i, layer in enumerate(layers):
            layer.position = f"layers[{i}] "
            width = layer.output_width(width)
        backend = get_backend()
        self.layers = layers
        self.n_inputs = getattr(layers[0], "n_inputs", None)
        self.n_outputs = width
        self.seed = seed
        self.backend: Backend = backend
        self.dtype = backend.dtype(dtype)
        self.xp = backend.xp
        self.rng = Generator(backend, seed)
        self.shuffle_rng = host_generator(seed)  # the rows' order in fit, same on every backend
        self.history: training.History | None = None  # set by fit
        self._placement = 0  # bumped by to_backend: optimizers check it
        self._lock = threading.RLock()  # passes that use the layers' own caches
        self._last_output_shape: tuple[int, ...] | None = None
        host_rng = host_generator(seed) if draw or not _protocol_builds_without_rng() else None
        ctx = BuildContext(backend, self.dtype, host_rng, self.rng)
        for layer in layers:
            layer.build(ctx)
        owner = _Owner(self)
        for layer in layers:
            layer._nnxp_network = owner  # type: ignore[attr-defined]
        # backward stops at the first layer with parameters, which needs no dE/dX
        self._first_trainable = next((i for i, layer in enumerate(layers) if layer.params), 0)

    def _float64_twin(self) -> Sequential:
        """A float64 copy that shares nothing the checks write to: twins of the layers moved
        to float64 (own parameter dicts; the same classes, so unregistered layers work), no
        config round trip. Used by :func:`nnxp.gradcheck`."""
        twin = object.__new__(type(self))
        twin.__dict__.update(self.__dict__)
        backend = self.backend
        twin.dtype = backend.dtype("float64")
        twin.rng = Generator(backend, self.seed)
        twin._lock = threading.RLock()
        twin._last_output_shape = None
        ctx = BuildContext(backend, twin.dtype, None, twin.rng)
        twin.layers = [_shadow(layer) for layer in self.layers]
        for layer in twin.layers:
            layer.move(ctx)
        return twin

    def __repr__(self) -> str:
        inner = ", ".join(layer.describe() for layer in self.layers)
        dtype = self.backend.dtype_name(self.dtype)
        return f"Sequential([{inner}], backend={self.backend.name!r}, dtype={dtype!r})"

    # ------------------------------------------------------------------ checked entry points
    def check_inputs(self, X: Array) -> Array:
        """Check ``X`` (see :func:`nnxp.checks.check_inputs`); returns it in the net's dtype."""
        return checks.check_inputs(self, X)

    def check_mask(self, mask: Array, out_shape: tuple[int, ...]) -> Array:
        """Check a softmax mask (bool, or 0/1 numbers) of the output's shape; return bool."""
        return checks.check_mask(self, mask, out_shape)

    def check_targets(
        self, T: Array, loss: Loss, out_shape: tuple[int, ...], mask: Array = None
    ) -> Array:
        """Check targets against the output shape and loss; one-hot integer class labels."""
        return checks.check_targets(self, T, loss, out_shape, mask)

    def output_shape(self, X: Any) -> tuple[int, ...]:
        """The shape of the network's output for input ``X`` (an array or a shape), from the
        layers' own ``output_shape``."""
        shape = tuple(X) if isinstance(X, (tuple, list)) else tuple(X.shape)
        for layer in self.layers:
            if hasattr(layer, "output_shape"):
                shape = tuple(layer.output_shape(shape))
            else:
                shape = (*shape[:-1], layer.output_width(shape[-1]))
        return shape

    # ------------------------------------------------------------------ passes
    def forward(
        self,
        X: Array,
        *,
        training: bool = False,
        mask: Array = None,
        sequence_mask: Array = None,
    ) -> Array:
        """Run every layer; the layers cache what :meth:`backward` needs.

        Parameters
        ----------
        X : array of shape (n_samples, ..., n_inputs)
        training : bool
            True turns dropout on.
        mask : array of the output's shape, optional
            Bool or 0/1: outputs of the (softmax) output layer allowed to be non-zero.
        sequence_mask : array of shape (n_samples, n_steps), optional
            Bool or 0/1, True on real timesteps: given to every layer that takes it
            (``takes_sequence_mask``). By default ``layers[0].compute_mask(X)`` when the
            first layer has one (``Embedding(mask_zero=True)``: ``X != 0``).

        Returns
        -------
        Y : array of the output's shape (:meth:`output_shape`)
        """
        X = self.check_inputs(X)
        sequence_mask = checks.check_sequence_mask(self, sequence_mask, X)
        mask = self.check_mask(mask, self.output_shape(X))
        with self._lock:
            sequence_mask = _timestep_mask(self.layers, X, sequence_mask)
            Y = self._forward(X, training, mask, sequence_mask, check=True)
            self._last_output_shape = tuple(Y.shape)
        return Y

    def _forward(
        self,
        X: Array,
        training: bool,
        mask: Array = None,
        sequence_mask: Array = None,
        check: bool = False,
    ) -> Array:
        return _run_forward(self.layers, X, training, mask, sequence_mask, check)

    def backward(self, dEdY: Array) -> Array:
        """Back-propagate ``dE/dY`` of the output (``Y`` the last :meth:`forward`'s output)
        through every layer; each layer stores its gradients in ``layer.grads``.

        Parameters
        ----------
        dEdY : array of exactly the output's shape (no broadcasting)

        Returns
        -------
        dEdX : array of the input's shape

        See Also
        --------
        backward_from_delta : from ``dE/dA`` of the output layer (the classic ``Y - T``).
        """
        dEdY = self._check_output_gradient(dEdY, "dEdY")
        with self._lock:
            for layer in reversed(self.layers):
                dEdY = layer.backward(dEdY)
        return dEdY

    def backward_from_delta(self, delta: Array) -> Array:
        """Back-propagate ``delta = dE/dA``, the gradient at the output layer's
        *pre-activation*, through every layer; returns ``dE/dX`` and fills every ``grads``.

        This is the classic answer's output delta: for softmax + cross-entropy (and sigmoid
        + binary cross-entropy, linear + squared error) ``dE/dA = (Y - T) / N``. Passing
        ``Y - T`` to :meth:`backward` instead would push it through the softmax's Jacobian a
        second time: that is the trap this method avoids.

        Parameters
        ----------
        delta : array of exactly the output's shape

        Returns
        -------
        dEdX : array of the input's shape
        """
        delta = self._check_output_gradient(delta, "delta")
        out = self._output_layer()
        with self._lock:
            dEdY = out.backward_from_delta(delta)
            for layer in reversed(self.layers[:-1]):
                dEdY = layer.backward(dEdY)
        return dEdY

    def _check_output_gradient(self, G: Array, name: str) -> Array:
        check_backend(G, self.backend, name)
        G = checks.detached(G)
        if self._last_output_shape is None:
            raise RuntimeError(f"{name}: call forward(X) before back-propagating")
        if tuple(G.shape) != self._last_output_shape:
            raise ValueError(
                f"{name} must have exactly the shape of the last forward's output "
                f"{self._last_output_shape}, got {tuple(G.shape)} (no broadcasting)"
            )
        if G.dtype != self.dtype:
            if not self.xp.isdtype(G.dtype, "real floating"):
                raise TypeError(f"{name} must hold real floating numbers, got {G.dtype}")
            G = self.xp.astype(G, self.dtype)
        return G

    def _backward_from_output_delta(self, delta: Array, layers: list | None = None) -> None:
        """Back-propagate a loss's ``dE/dA`` of the output layer, down to the first layer
        with parameters (whose ``dE/dX`` nobody needs)."""
        _backprop_delta(self.layers if layers is None else layers, delta, self._first_trainable)

    def _output_layer(self, layers: list | None = None) -> ActivatedLayer:
        out = (self.layers if layers is None else layers)[-1]
        if not isinstance(out, ActivatedLayer):
            raise ValueError(
                f"a loss or a mask needs a Dense or Activation output layer, not {out.label}"
            )
        return out

    def _loss_and_delta(
        self,
        X: Array,
        T: Array,
        loss: Loss,
        mask: Array,
        training: bool,
        layers: list | None = None,
        check: bool = False,
        sequence_mask: Array = None,
    ) -> tuple[Array, Any]:
        """Forward, the loss and the backward pass of the mean loss; fills ``grads``.

        Returns ``(total, count)``: the loss summed over the counted rows plus ``count``
        times the regularization penalty, and the number of counted rows (rows with at least
        one allowed output under a mask; for an output with a time axis under a sequence
        mask, real timesteps only); ``total / count`` is the mean loss. Both may be device
        arrays: nothing is read back here. ``sequence_mask`` (checked, bool ``(N, T)``)
        defaults to ``layers[0].compute_mask(X)`` where the first layer has one.
        """
        layers = self.layers if layers is None else layers
        sequence_mask = _timestep_mask(layers, X, sequence_mask)
        _run_forward(layers, X, training, mask, sequence_mask, check=check)
        out = self._output_layer(layers).output()
        total, delta, count = _loss_terms(loss, out, T, self.xp, mask, sequence_mask)
        _backprop_delta(layers, delta, self._first_trainable)
        penalty = _add_regularization(layers)
        if penalty is not None:
            total = total + penalty * count
        return total, count

    def _inference_loss(
        self, X: Array, T: Array, loss: Loss, mask: Array, sequence_mask: Array = None
    ) -> tuple:
        """``(Y, total, count)`` in inference mode on twins of the layers (their own caches
        untouched); ``total`` includes ``count`` times the regularization penalty."""
        twins = [_shadow(layer) for layer in self.layers]
        sequence_mask = _timestep_mask(twins, X, sequence_mask)
        Y = _run_forward(twins, X, False, mask, sequence_mask, check=True)
        out = self._output_layer(twins).output()
        total, _, count = _loss_terms(loss, out, T, self.xp, mask, sequence_mask)
        penalty = _penalty(twins)
        if penalty is not None:
            total = total + penalty * count
        return Y, total, count

    def prepare(
        self, X: Array, T: Array, loss: str | Loss, mask: Array = None, check_finite: bool = True
    ) -> tuple[Array, Array, Loss, Array]:
        """Check and convert ``(X, T, loss, mask)`` once, before any computation.

        ``check_finite`` refuses NaN or inf in ``X`` or ``T`` (one reduction each, read
        back once); pass False to skip the check.
        """
        return self.prepare_sequences(X, T, loss, mask, None, check_finite)[:4]

    def prepare_sequences(
        self,
        X: Array,
        T: Array,
        loss: str | Loss,
        mask: Array = None,
        sequence_mask: Array = None,
        check_finite: bool = True,
    ) -> tuple[Array, Array, Loss, Array, Array]:
        """:meth:`prepare` with a timestep mask: ``(X, T, loss, mask, sequence_mask)``.

        ``sequence_mask`` (bool or 0/1 of shape ``X.shape[:2]``) comes back as bool, or None
        when not given (a first layer's ``compute_mask`` is then used per batch). For an
        output with the time axis, the targets of padded timesteps are not checked (class
        labels there may be anything) and come back as zeros.
        """
        loss = get_loss(loss)
        out = self._output_layer()
        loss.check_activation(out.activation, out.label)
        X = self.check_inputs(X)
        sequence_mask = checks.check_sequence_mask(self, sequence_mask, X)
        out_shape = self.output_shape(X)
        mask = self.check_mask(mask, out_shape)
        rows = checks.sequence_rows(_timestep_mask(self.layers, X, sequence_mask), out_shape)
        T = checks.check_targets(self, T, loss, out_shape, mask, rows)
        if check_finite:
            for name, values in (("X", X), ("T", T)):
                if not checks.all_finite(self.xp, values):
                    raise ValueError(
                        f"{name} holds NaN or inf values; clean the data, or pass "
                        f"check_finite=False to train on it anyway"
                    )
        return X, T, loss, mask, sequence_mask

    def _all_finite(self, values: Array, block: int = 1 << 20) -> bool:
        return checks.all_finite(self.xp, values, block)

    def loss_and_gradient(
        self,
        X: Array,
        T: Array,
        loss: str | Loss,
        *,
        mask: Array = None,
        sequence_mask: Array = None,
        check_finite: bool = True,
    ) -> tuple[float, list[dict[str, Array]]]:
        """The mean loss on ``(X, T)`` and its gradient with respect to every parameter.

        Dropout is off (inference mode), so the result is deterministic. The loss includes
        every layer's regularization penalty and the gradient its gradient. Safe to call
        from several threads at once; each layer's ``grads`` holds the last call's result.

        Parameters
        ----------
        X : array of shape (n_samples, ..., n_inputs)
        T : array of the output's shape, or integer class labels (the output's shape without
            its last axis) for cross_entropy
        loss : {"mse", "cross_entropy", "binary_cross_entropy"}
        mask : array of the output's shape, optional
            The mean runs over the rows with at least one allowed output (``N`` counts them).
        sequence_mask : array of shape (n_samples, n_steps), optional
            Bool or 0/1, True on real timesteps (default: ``layers[0].compute_mask(X)``
            where the first layer has it, as ``Embedding(mask_zero=True)``). It reaches every
            layer that takes it; for an output with the time axis ``(N, T, K)`` the loss is
            the mean over real timesteps (``N`` counts them; padded ones add nothing), for
            an output without it ``(N, K)`` every sequence counts.
        check_finite : bool
            Refuse NaN/inf in ``X`` and ``T`` (``ValueError``); False skips the check.

        Returns
        -------
        loss : float
        grads : list of dict
            ``grads[i] == {"W": dE/dW, "b": dE/db}`` for a Dense layer, ``{}`` otherwise.
        """
        X, T, loss, mask, sequence_mask = self.prepare_sequences(
            X, T, loss, mask, sequence_mask, check_finite
        )
        twins = [_shadow(layer) for layer in self.layers]
        total, count = self._loss_and_delta(
            X, T, loss, mask, False, twins, check=True, sequence_mask=sequence_mask
        )
        for twin in twins[: self._first_trainable]:
            twin.grads = {}
        grads = [dict(twin.grads) for twin in twins]
        for layer, g in zip(self.layers, grads):
            layer.grads = dict(g)
        return float(total) / max(float(count), 1.0), grads

    def predict(
        self,
        X: Array,
        batch_size: int | None = None,
        *,
        mask: Array = None,
        sequence_mask: Array = None,
    ) -> Array:
        """The network's output in inference mode, in chunks of ``batch_size`` rows if given.

        Leaves the layers' caches (a pending :meth:`backward`) untouched and keeps no
        activation alive once it returns; safe to call from several threads at once.

        Parameters
        ----------
        X : array of shape (n_samples, ..., n_inputs)
        batch_size : int, optional
        mask : array of the output's shape, optional
        sequence_mask : array of shape (n_samples, n_steps), optional
            True on real timesteps (default: ``layers[0].compute_mask(X)`` if any).

        Returns
        -------
        Y : array of the output's shape; ``(0, ..., K)`` for 0 rows
        """
        X = checks.check_inputs(self, X, allow_empty=True)
        sequence_mask = checks.check_sequence_mask(self, sequence_mask, X)
        out_shape = self.output_shape(X)
        mask = self.check_mask(mask, out_shape)
        n = X.shape[0]
        if n == 0:
            return self.xp.zeros(out_shape, dtype=self.dtype, device=self.backend.device)
        if batch_size is not None:
            batch_size = training.check_batch_size(batch_size)
        twins = [_shadow(layer) for layer in self.layers]
        if batch_size is None or batch_size >= n:
            S = _timestep_mask(twins, X, sequence_mask)
            return _run_forward(twins, X, False, mask, S, check=True)
        parts = []
        for start in range(0, n, batch_size):
            rows = slice(start, min(start + batch_size, n))
            Xb = X[rows, ...]
            S = None if sequence_mask is None else sequence_mask[rows, ...]
            parts.append(
                _run_forward(
                    twins,
                    Xb,
                    False,
                    None if mask is None else mask[rows, ...],
                    _timestep_mask(twins, Xb, S),
                    check=True,
                )
            )
        return self.xp.concat(parts, axis=0)

    def evaluate(
        self,
        X: Array,
        T: Array,
        loss: str | Loss,
        *,
        mask: Array = None,
        sequence_mask: Array = None,
    ) -> dict[str, float]:
        """Loss on ``(X, T)`` (regularization penalty included), and accuracy for the
        classification losses.

        Parameters
        ----------
        X, T, loss, mask
            As for :meth:`loss_and_gradient`.
        sequence_mask : array of shape (n_samples, n_steps), optional
            True on real timesteps (default: ``layers[0].compute_mask(X)`` if any). For an
            output with the time axis, padded timesteps count in neither the loss nor the
            accuracy.

        Returns
        -------
        dict
            ``{"loss": float}`` plus ``"accuracy"`` for cross_entropy (arg-max over the last
            axis) and binary_cross_entropy (threshold 0.5). Under a mask, rows with every
            output masked count in neither.
        """
        X, T, loss, mask, sequence_mask = self.prepare_sequences(X, T, loss, mask, sequence_mask)
        return training.evaluate(self, X, T, loss, mask, sequence_mask)

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
        """Put a snapshot from :meth:`get_weights` back (copied, names and shapes checked
        for every layer before anything changes)."""
        if len(weights) != len(self.layers):
            raise ValueError(f"expected weights for {len(self.layers)} layers, got {len(weights)}")
        for layer, values in zip(self.layers, weights):
            _check_layer_weights(layer, values)
            for value in values.values():
                check_backend(value, self.backend, f"{layer.label} weights")
        xp = self.xp
        for layer, values in zip(self.layers, weights):
            for name, value in values.items():
                layer.params[name] = xp.astype(value, self.dtype, copy=True)

    def save(self, path: Any, optimizer: Any = None) -> Any:
        """Write the network (and optimizer state) to ``path``; see :func:`nnxp.io.save`."""
        from . import io

        return io.save(self, path, optimizer)

    def to_backend(self, name: str, device: Any = None, *, optimizer: Any = None) -> Sequential:
        """Move the network (and ``optimizer``'s state) to backend ``name``, in place.

        An optimizer used with this network and not passed here cannot be used with it
        afterwards (its state stayed behind): ``fit`` refuses it.

        Returns
        -------
        Sequential
            ``self``, for chaining.
        """
        if optimizer is not None:
            training.check_optimizer(self, optimizer)
        with use_backend(name, device) as target:
            dtype = target.dtype(self.backend.dtype_name(self.dtype))
            ctx = BuildContext(target, dtype, None, Generator(target, self.seed))
            for layer in self.layers:
                layer.move(ctx)
            if optimizer is not None:
                optimizer.move(target)
        self.backend, self.dtype, self.xp, self.rng = target, dtype, target.xp, ctx.rng
        self._placement += 1
        self._last_output_shape = None
        if optimizer is not None:
            training.claim_optimizer(self, optimizer)
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

        No random initial weights are drawn: the layers are built empty and take ``weights``,
        copied (the new network never shares memory with ``weights``).

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
            if len(weights) != len(layers):
                raise ValueError(
                    f"weights for {len(weights)} layers, the network has {len(layers)}"
                )
            net = cls.__new__(cls)
            net._setup(layers, config["seed"], dtype, draw=False)
            for layer, values in zip(layers, weights):
                _check_layer_weights(layer, values)
            xp = target.xp
            for layer, values in zip(layers, weights):
                for key, value in values.items():
                    value = asarray(value, dtype=net.dtype, backend=target)
                    layer.params[key] = xp.asarray(value, copy=True)
        return net

    def clone(self, *, backend: str | None = None, dtype: Any = None) -> Sequential:
        """An independent copy of this network (weights copied, no memory shared),
        optionally on another backend/dtype."""
        name = backend or self.backend.name
        return Sequential.from_config(
            self.get_config(),
            self.parameters(),
            backend=name,
            device=self.backend.device if name == self.backend.name else None,
            dtype=self.backend.dtype_name(self.dtype) if dtype is None else dtype,
        )


def _check_layer_weights(layer: Layer, values: dict) -> None:
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


def _timestep_mask(layers: list, X: Array, sequence_mask: Array) -> Array:
    """The timestep mask: ``sequence_mask`` when given, else the first layer's
    ``compute_mask(X)`` (``Embedding(mask_zero=True)``: ``X != 0``, on the device), else
    None."""
    if sequence_mask is not None:
        return sequence_mask
    compute = getattr(layers[0], "compute_mask", None)
    return None if compute is None else compute(X)


def _loss_terms(
    loss: Loss, out: Any, T: Array, xp: Any, mask: Array, sequence_mask: Array
) -> tuple[Array, Array, Any]:
    """``(total, delta, count)`` of ``loss`` on the output ``out``; under a sequence mask
    an output with the time axis counts its real timesteps only."""
    rows = checks.sequence_rows(sequence_mask, tuple(out.A.shape))
    extra = {} if rows is None else {"rows": rows}  # custom losses need not know rows
    count = loss.count(out.A, xp, mask, **extra)
    total, delta = loss.total_and_delta(out, T, xp, mask, count=count, **extra)
    return total, delta, count


def _call_forward(layer: Layer, X: Array, training: bool, sequence_mask: Array) -> Array:
    if sequence_mask is not None and getattr(layer, "takes_sequence_mask", False):
        return layer.forward(X, training=training, sequence_mask=sequence_mask)  # type: ignore[call-arg]
    return layer.forward(X, training=training)


def _run_forward(
    layers: list,
    X: Array,
    training: bool,
    mask: Array = None,
    sequence_mask: Array = None,
    check: bool = False,
) -> Array:
    """Each layer's forward in turn (``mask``: the output softmax's; ``sequence_mask``: the
    timestep mask, given to layers with ``takes_sequence_mask``). With ``check``, each
    layer's output must have the shape its ``output_shape`` declares."""
    last = len(layers) - 1
    for i, layer in enumerate(layers):
        shape = tuple(X.shape)
        if i < last or mask is None:
            X = _call_forward(layer, X, training, sequence_mask)
        elif not isinstance(layer, ActivatedLayer):
            raise ValueError(f"a mask needs a Dense or Activation output layer, not {layer.label}")
        else:
            X = layer.forward(X, training=training, mask=mask)
        if check and hasattr(layer, "output_shape"):
            declared = tuple(layer.output_shape(shape))
            got = tuple(X.shape)
            if len(declared) != len(got) or any(
                d is not None and d != g for d, g in zip(declared, got)
            ):
                raise ValueError(
                    f"{layer.label} declares output shape {declared} for input {shape} but "
                    f"its forward returned {got}: fix the layer's output_shape or forward"
                )
    return X


def _backprop_delta(layers: list, delta: Array, stop: int) -> None:
    """``dE/dA`` of the output layer down to layer ``stop`` (whose ``dE/dX`` is not needed)."""
    last = len(layers) - 1
    delta = layers[-1].backward_from_delta(delta, need_dX=last > stop)
    for i in range(last - 1, stop - 1, -1):
        delta = layers[i].backward(delta, need_dX=i > stop)


def _add_regularization(layers: list) -> Array:
    """Add every layer's regularization gradient to its ``grads``; the summed penalty (a 0-d
    array) or None when no layer has one."""
    penalty = None
    for layer in layers:
        regularization = getattr(layer, "regularization", None)
        if regularization is None:
            continue
        value, grads = regularization()
        if value is not None:
            penalty = value if penalty is None else penalty + value
        for name, g in (grads or {}).items():
            _add_grad(layer, name, g)
    return penalty


def _add_grad(layer: Layer, name: str, g: Array) -> None:
    """``layer.grads[name] += g`` without writing into the arrays; a wrapper whose ``grads``
    is a view over its parts (``"part.name"``) gets it in that part."""
    merged = dict(layer.grads)
    merged[name] = merged[name] + g if name in merged else g
    try:
        layer.grads = merged
        return
    except (TypeError, AttributeError):
        pass
    prefix, _, rest = name.partition(".")
    parts = getattr(layer, "_parts", None)
    if not rest or not isinstance(parts, dict) or prefix not in parts:
        raise TypeError(f"{layer.label}: cannot add the regularization gradient of {name!r}")
    _add_grad(parts[prefix], rest, g)


def _penalty(layers: list) -> Array:
    """The summed regularization penalty of ``layers`` (None when none has one)."""
    penalty = None
    for layer in layers:
        regularization = getattr(layer, "regularization", None)
        value = None if regularization is None else regularization()[0]
        if value is not None:
            penalty = value if penalty is None else penalty + value
    return penalty


def _unpickle(backend: str, config: dict, dtype: str, host: list) -> Sequential:
    return Sequential.from_config(config, host, backend=backend, dtype=dtype)
