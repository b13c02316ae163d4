"""``Sequential``: a stack of layers with forward, backward, the loss gradient and fit.

A thin conductor: input checks live in :mod:`nnxp.checks` and :mod:`nnxp.preparation`, the
passes over the layers in :mod:`nnxp.passes`, layer ownership and twins in
:mod:`nnxp.ownership`, construction, rebuilding and moves in :mod:`nnxp.building`, the epoch
loop in :mod:`nnxp.training`, persistence in :mod:`nnxp.io`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from . import building, checks, passes, preparation, training
from .backend import Backend, to_numpy
from .layers import ActivatedLayer, Layer
from .losses import Loss
from .ownership import adopt_gradients, float64_twin, shadow
from .ownership import no_owner as _no_owner  # noqa: F401  (pickles of layers name it here)
from .random import Generator

Array = Any


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

    # the state nnxp.building.setup gives every network
    layers: list[Layer]
    n_inputs: Any
    n_outputs: int | None
    seed: int
    backend: Backend
    dtype: Any
    xp: Any
    rng: Generator  # the backend generator (dropout)
    shuffle_rng: Any  # the host generator: the rows' order in fit, same on every backend
    history: training.History | None  # set by fit
    _placement: int  # bumped by to_backend: optimizers check it
    _lock: threading.RLock  # passes that use the layers' own caches
    _last_output_shape: tuple[int, ...] | None
    _first_trainable: int  # backward stops at the first layer with parameters

    def __init__(self, layers: Sequence[Layer], seed: int = 0, dtype: Any = None) -> None:
        self._setup(layers, seed, dtype, draw=True)

    def _setup(self, layers: Sequence[Layer], seed: Any, dtype: Any, *, draw: bool) -> None:
        building.setup(self, layers, seed, dtype, draw=draw)

    def _float64_twin(self) -> Sequential:
        """A float64 copy that shares nothing the checks write to: twins of the layers moved
        to float64 (own parameter dicts; the same classes, so unregistered layers work), no
        config round trip. Used by :func:`nnxp.gradcheck`."""
        return float64_twin(self)

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
        return passes.output_shape(self.layers, X)

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
        X, mask, sequence_mask, _ = preparation.prepare_inputs(self, X, mask, sequence_mask)
        with self._lock:
            sequence_mask = passes.timestep_mask(self.layers, X, sequence_mask)
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
        return passes.run_forward(self.layers, X, training, mask, sequence_mask, check)

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
            return passes.backward(self.layers, dEdY)

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
            return passes.backward(self.layers[:-1], out.backward_from_delta(delta))

    def _check_output_gradient(self, G: Array, name: str) -> Array:
        return preparation.check_output_gradient(self, G, name)

    def _backward_from_output_delta(self, delta: Array, layers: list | None = None) -> None:
        """Back-propagate a loss's ``dE/dA`` of the output layer, down to the first layer
        with parameters (whose ``dE/dX`` nobody needs)."""
        layers = self.layers if layers is None else layers
        passes.backprop_delta(layers, delta, self._first_trainable)

    def _output_layer(self, layers: list | None = None) -> ActivatedLayer:
        return passes.output_layer(self.layers if layers is None else layers)

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
        stop = self._first_trainable
        return passes.loss_and_delta(
            layers, X, T, loss, mask, training, self.xp, stop, check, sequence_mask
        )

    def _inference_loss(
        self, X: Array, T: Array, loss: Loss, mask: Array, sequence_mask: Array = None
    ) -> tuple:
        """``(Y, total, count)`` in inference mode on twins of the layers (their own caches
        untouched); ``total`` includes ``count`` times the regularization penalty."""
        twins = [shadow(layer) for layer in self.layers]
        return passes.inference_loss(twins, X, T, loss, mask, sequence_mask, self.xp)

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
        return preparation.prepare(self, X, T, loss, mask, sequence_mask, check_finite)

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
        twins = [shadow(layer) for layer in self.layers]
        total, count = self._loss_and_delta(
            X, T, loss, mask, False, twins, check=True, sequence_mask=sequence_mask
        )
        grads = adopt_gradients(self.layers, twins, self._first_trainable)
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
        X, mask, sequence_mask, out_shape = preparation.prepare_inputs(
            self, X, mask, sequence_mask, allow_empty=True
        )
        if X.shape[0] == 0:
            return self.xp.zeros(out_shape, dtype=self.dtype, device=self.backend.device)
        if batch_size is not None:
            batch_size = training.check_batch_size(batch_size)
        twins = [shadow(layer) for layer in self.layers]
        return passes.run_forward_in_chunks(twins, X, batch_size, mask, sequence_mask, self.xp)

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
        building.set_weights(self, weights)

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
        building.move(self, name, device, optimizer)
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
        return building.from_config(cls, config, weights, backend, device, dtype)

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


def _unpickle(backend: str, config: dict, dtype: str, host: list) -> Sequential:
    return Sequential.from_config(config, host, backend=backend, dtype=dtype)
