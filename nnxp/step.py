"""The training step as one pure function, built once per (network, loss, optimizer).

::

    step = build_step(net, "cross_entropy", nnxp.Adam(1e-3), compile=True)
    params, opt_state = net.parameters(), optimizer.init_state(net.parameters())
    rng = net.rng.get_state()
    for Xb, Tb in batches:
        params, opt_state, rng, loss_sum = step(params, opt_state, rng, Xb, Tb, None)

From the caller's view the step is pure: it reads ``params``, the optimizer state and the
random state it is given and returns new ones; the network's layers, its generator and the
optimizer object are left as they were (the step borrows the layers to run their forward and
backward passes, then puts their parameters back and clears their caches, so no
intermediate, and under ``jax.jit`` no tracer, outlives the call). Nothing is read back to
the host.

Randomness: on jax ``rng`` is the ``jax.random`` key (``net.rng.get_state()``), split by
every draw and returned advanced, so a compiled step draws fresh dropout masks at every call.
On the stateful backends (numpy, torch, cupy, array_api_strict) ``rng=None`` lets the
network's generator advance in place (cheapest); a state from ``net.rng.get_state()`` is
set before and read back after the step instead.

``compile=True`` (jax only) wraps the step in ``jax.jit``; :meth:`Step.epoch` runs equal-size
batches of an epoch through ``jax.lax.scan`` as one program.

Where a data-parallel allreduce goes: between the gradients and the optimizer update (see
``grads_hook``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import passes
from .losses import Loss, get_loss
from .optimizers import Optimizer, get_optimizer

Array = Any
Params = list


class Step:
    """A built training step; call it as ``step(params, opt_state, rng, X, T, mask,
    sequence_mask)`` (both masks optional).

    Attributes
    ----------
    net, loss, optimizer
        What it was built from.
    compiled : bool
        Whether the call runs a ``jax.jit`` program.
    """

    def __init__(
        self,
        net: Any,
        loss: Loss,
        optimizer: Optimizer,
        *,
        compile: bool,
        donate: bool,
        grads_hook: Callable[[Params], Params] | None,
        with_count: bool = False,
        borrow: bool = True,
    ) -> None:
        self.net, self.loss, self.optimizer = net, loss, optimizer
        self._borrow = borrow or compile  # a compiled step never leaves tracers behind
        self.compiled = compile
        self._jax = net.backend.name == "jax"
        self._donate = donate and not self._jax
        self._grads_hook = grads_hook
        self._with_count = with_count
        self._jitted: Any = None
        self._scanned: Any = None
        # the uncompiled call, for callers (fit's loop) that skip __call__'s checks
        self.run_eager = self._pure if self._borrow else self._in_layers
        if compile:
            import jax

            self._jitted = jax.jit(self._pure)

    # ------------------------------------------------------------------ the step itself
    def _pure(self, params, opt_state, rng, X, T, mask, sequence_mask=None):
        """The step, with the layers' parameters, grads, caches and the generator put back
        afterwards."""
        net = self.net
        layers = net.layers
        # plain copies: a wrapper's ``params`` is a live view over its parts
        saved_params = [dict(layer.params) for layer in layers]
        saved_rng = None if rng is None else net.rng.get_state()
        try:
            return self._in_layers(params, opt_state, rng, X, T, mask, sequence_mask)
        finally:
            for layer, p in zip(layers, saved_params):
                layer.params = p
                layer.grads = {}
                layer.forget()
            if rng is not None:
                net.rng.set_state(saved_rng)

    def _in_layers(self, params, opt_state, rng, X, T, mask, sequence_mask=None):
        """The step run in the network's layers, which are left holding ``params`` (not
        the new ones; with ``donate``, the same dicts updated), their grads and caches:
        for ``fit``, which owns the network for the loop and puts the last parameters in
        once at the end (``borrow=False``)."""
        net = self.net
        layers = net.layers
        if rng is not None:
            net.rng.set_state(rng)
        for layer, p in zip(layers, params):
            if layer.params is not p:
                layer.params = p
        total, count = passes.loss_and_delta(
            layers, X, T, self.loss, mask, True, net.xp, net._first_trainable, False, sequence_mask
        )
        if self._with_count:
            total = (total, count)
        grads = [layer.grads for layer in layers]
        if self._grads_hook is not None:
            grads = self._grads_hook(grads)
        new_params, new_state = self.optimizer.update(
            params, grads, opt_state, inplace=self._donate
        )
        return new_params, new_state, None if rng is None else net.rng.get_state(), total

    def __call__(
        self,
        params: Params,
        opt_state: dict,
        rng: Any,
        X: Array,
        T: Array,
        mask: Array = None,
        sequence_mask: Array = None,
    ) -> tuple[Params, dict, Any, Array]:
        """One optimizer step on the batch ``(X, T, mask)`` (prepared: see
        ``Sequential.prepare``).

        Parameters
        ----------
        params : list of dict of str to array
            One dict per layer (``net.parameters()`` to start).
        opt_state : dict
            ``optimizer.init_state(params)`` to start, then what the last step returned.
        rng : jax key, generator state or None
            See the module docstring; required (a key) for a compiled step.
        X : array of shape (batch, ..., n_inputs)
        T : array of the output's shape (targets already one-hot)
        mask : array of the output's shape, optional
        sequence_mask : bool array of shape (batch, n_steps), optional
            True on real timesteps (checked, as ``Sequential.prepare_sequences`` gives it);
            default: the first layer's ``compute_mask`` of ``X``, where it has one.

        Returns
        -------
        params, opt_state, rng, loss_sum
            ``loss_sum`` is a 0-d array on the device: the batch's loss summed over its
            counted rows (the mean times the count), for the epoch total; built with
            ``with_count=True``, the pair ``(loss_sum, count)`` (count: the rows the mean
            runs over, an int or a 0-d array).
        """
        if not self.compiled:
            return self.run_eager(params, opt_state, rng, X, T, mask, sequence_mask)
        params, state = self._compiled_inputs(params, opt_state, rng, "step")
        return self._jitted(params, state, rng, X, T, mask, sequence_mask)

    def epoch(
        self,
        params: Params,
        opt_state: dict,
        rng: Any,
        X: Array,
        T: Array,
        mask: Array = None,
        sequence_mask: Array = None,
    ) -> tuple[Params, dict, Any, Array]:
        """Every step of an epoch whose batches are stacked on a new first axis.

        Parameters
        ----------
        X : array of shape (n_batches, batch, ..., n_inputs)
        T, mask, sequence_mask : arrays stacked the same way (the masks may be None)

        Returns
        -------
        params, opt_state, rng, loss_sums
            ``loss_sums`` has shape ``(n_batches,)``. Compiled: one ``jax.lax.scan`` program;
            otherwise a Python loop over the batches (same numbers).
        """
        xp = self.net.xp
        if not self.compiled:
            sums = []
            for i in range(X.shape[0]):
                Mi = None if mask is None else mask[i, ...]
                Si = None if sequence_mask is None else sequence_mask[i, ...]
                params, opt_state, rng, total = self(
                    params, opt_state, rng, X[i, ...], T[i, ...], Mi, Si
                )
                sums.append(total)
            if self._with_count:
                totals = xp.stack([t for t, _ in sums])
                counts = xp.stack([xp.asarray(c, dtype=totals.dtype) for _, c in sums])
                return params, opt_state, rng, (totals, counts)
            return params, opt_state, rng, xp.stack(sums)
        params, state = self._compiled_inputs(params, opt_state, rng, "epoch")
        if self._scanned is None:
            import jax

            def body(carry, batch):
                p, s, r = carry
                p, s, r, total = self._pure(p, s, r, *batch)
                return (p, s, r), total

            def run(p, s, r, Xs, Ts, Ms, Ss):
                (p, s, r), totals = jax.lax.scan(body, (p, s, r), (Xs, Ts, Ms, Ss))
                return p, s, r, totals

            self._scanned = jax.jit(run)
        return self._scanned(params, state, rng, X, T, mask, sequence_mask)

    def _compiled_inputs(self, params: Params, opt_state: dict, rng: Any, what: str) -> tuple:
        """``params`` as plain dicts (pytrees; a wrapper's view is not) and the state with a
        traced step count, for a compiled call; refused without ``rng``."""
        if rng is None:
            raise ValueError(
                f"a compiled {what} needs rng, the jax.random key to draw dropout masks from "
                f"(net.rng.get_state()); without it every step would reuse one mask"
            )
        return [dict(p) for p in params], _traced_step(opt_state, self.net.backend)


def _traced_step(opt_state: dict, backend: Any) -> dict:
    """The step count as a 0-d int32 array on the device (committed there, as the step's
    outputs are), so the program is traced and compiled once, not again at the 2nd call."""
    step = opt_state["step"]
    if isinstance(step, int):
        xp = backend.xp
        return {**opt_state, "step": xp.asarray(step, dtype=xp.int32, device=backend.device)}
    return opt_state


def build_step(
    net: Any,
    loss: str | Loss,
    optimizer: str | Optimizer,
    *,
    compile: bool = False,
    donate: bool = False,
    grads_hook: Callable[[Params], Params] | None = None,
    with_count: bool = False,
    borrow: bool = True,
) -> Step:
    """Build the pure training step of ``net`` for ``loss`` and ``optimizer``.

    Parameters
    ----------
    net : Sequential
    loss : {"mse", "cross_entropy", "binary_cross_entropy"} or Loss
    optimizer : {"adam", "sgd", "adamw"} or Optimizer
        Only its hyperparameters and functional form are used; its own state is untouched.
    compile : bool
        Compile with ``jax.jit`` (jax backend only; elsewhere a ``ValueError`` says so).
    donate : bool
        On mutable backends, update the ``params`` and optimizer state passed in, in place
        (the same numbers, less allocation): for a caller that owns and discards them, as
        ``fit`` does. Ignored on jax.
    grads_hook : callable, optional
        ``grads -> grads`` between the backward pass and the update (an allreduce).
    with_count : bool
        Return ``(loss_sum, count)`` in place of ``loss_sum`` (what ``fit`` needs to take
        the mean over masked batches).
    borrow : bool
        True: the step borrows the layers and puts their parameters, grads, caches and
        the generator back, so the network is left as it was. False (uncompiled only; the
        loop in ``fit``): the layers are left holding the parameters the step was given,
        its grads and caches; cheaper per step, for a caller that owns the network for the
        loop and puts the last parameters in itself.

    Returns
    -------
    Step
        ``step(params, opt_state, rng, X, T, mask=None, sequence_mask=None) -> (params,
        opt_state, rng, loss_sum)``.

    Raises
    ------
    ValueError
        ``compile=True`` on a backend other than jax, or a loss the output layer cannot
        be differentiated with.
    """
    loss = get_loss(loss)
    optimizer = get_optimizer(optimizer)
    out = net._output_layer()
    loss.check_activation(out.activation, out.label)
    if compile and net.backend.name != "jax":
        raise ValueError(
            f"compile=True needs the jax backend (nnxp.set_backend('jax')); the network "
            f"computes with {net.backend.name}, which nnxp does not compile: "
            f"use compile=False there"
        )
    return Step(
        net,
        loss,
        optimizer,
        compile=bool(compile),
        donate=donate,
        grads_hook=grads_hook,
        with_count=with_count,
        borrow=borrow,
    )


class ObjectStep:
    """The step through the optimizer's object API, for an optimizer whose class overrides
    ``step`` (a hand-written optimizer, or one instrumented to count its steps): called as
    a :class:`Step`, it trains the network's layers in place and returns their parameters,
    the optimizer's state and the generator's state (``rng`` given) after the step."""

    compiled = False

    def __init__(self, net: Any, loss: Loss, optimizer: Optimizer) -> None:
        self.net, self.loss, self.optimizer = net, get_loss(loss), optimizer

    def __call__(self, params, opt_state, rng, X, T, mask=None, sequence_mask=None):
        net = self.net
        result = net._loss_and_delta(X, T, self.loss, mask, True, sequence_mask=sequence_mask)
        params = net.parameters()
        self.optimizer.step(params, net.gradients())
        state = self.optimizer.get_functional_state(params)
        return params, state, None if rng is None else net.rng.get_state(), result

    run_eager = __call__


def overrides_step(optimizer: Optimizer) -> bool:
    """Whether ``optimizer``'s class replaces :meth:`Optimizer.step` (then only the object
    API does what it means)."""
    return type(optimizer).step is not Optimizer.step
