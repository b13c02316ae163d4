"""Seeded random numbers: initial weights on the host, per-step draws on the device.

The Array API standard has no random module. Two needs, two answers:

- Initial weights are drawn on the host with NumPy from the network's seed and copied once
  to the device, so one seed gives bit-identical initial weights on every backend.
- Per-step randomness (shuffling, dropout masks) comes from the backend's own generator on
  its device (NumPy ``Generator``, ``torch.Generator``, CuPy's ``RandomState``; array-api-strict
  via NumPy), so no host-to-device copy happens inside a training step.
- On jax the generator is a ``jax.random`` key: each draw splits it. Its state *is* the key
  (``get_state`` returns it, ``set_state`` takes one), so a pure training step can take the
  key in and hand the advanced key back, and ``jax.jit`` draws fresh masks at every step
  instead of freezing one host mask into the compiled program.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .backend import Backend

INITIALIZERS = ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "zeros")


def host_generator(seed: int | None) -> np.random.Generator:
    """The host generator a network draws its initial weights from, in layer order."""
    return np.random.default_rng(seed)


def initial_weights(
    shape: tuple[int, int], init: str, rng: np.random.Generator, backend: Backend, dtype: Any
) -> Any:
    """Draw a weight matrix of ``shape = (n_outputs, n_inputs)`` on the host, copy it once.

    Parameters
    ----------
    shape : (int, int)
        ``(fan_out, fan_in)``.
    init : {"glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "zeros"}
        Glorot (Xavier) keeps the variance of sigmoid/tanh/linear layers near one in both
        directions; He keeps it for relu-like layers, which halve it.
    rng : numpy.random.Generator
        The network's host generator (seeded once, drawn in layer order).
    backend : Backend
    dtype : backend dtype

    Returns
    -------
    array of shape ``shape`` on ``backend``.
    """
    fan_out, fan_in = shape
    if init == "glorot_uniform":
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        host = rng.uniform(-limit, limit, size=shape)
    elif init == "glorot_normal":
        host = rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), size=shape)
    elif init == "he_uniform":
        limit = math.sqrt(6.0 / fan_in)
        host = rng.uniform(-limit, limit, size=shape)
    elif init == "he_normal":
        host = rng.normal(0.0, math.sqrt(2.0 / fan_in), size=shape)
    elif init == "zeros":
        host = np.zeros(shape)
    else:
        raise ValueError(f"unknown init {init!r}; valid names are {', '.join(INITIALIZERS)}")
    return backend.xp.asarray(host, dtype=dtype, device=backend.device)


class Generator:
    """A seeded generator of the backend itself, drawing on its device.

    Parameters
    ----------
    backend : Backend
    seed : int or None
        Same seed, same backend: same numbers. ``None`` draws fresh entropy.
    """

    def __init__(self, backend: Backend, seed: int | None = None) -> None:
        self.backend = backend
        self._gen: Any = None  # numpy Generator, torch.Generator or cupy RandomState
        self.reseed(seed)

    def reseed(self, seed: int | None) -> None:
        """Start over from ``seed`` (in place: every holder of this generator follows)."""
        backend = self.backend
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        self.seed = seed
        if backend.name == "torch":
            import torch

            self._gen = torch.Generator(device=backend.device)
            self._gen.manual_seed(seed)
        elif backend.name == "jax":
            import jax

            # a raw uint32[2] key, not a typed ``jax.random.key``: typed keys leave jit's C++
            # dispatch fast path (~90 us more per compiled step on a small network).
            # Committed to the device, as a compiled step's outputs are: no recompile.
            self._gen = jax.device_put(jax.random.PRNGKey(seed % 2**32), backend.device)
        elif backend.name == "cupy":
            import cupy

            with backend.device:
                self._gen = cupy.random.RandomState(seed)
        else:
            self._gen = np.random.default_rng(seed)

    def permutation(self, n: int) -> Any:
        """A random permutation of ``0..n-1`` as an integer array on the device."""
        name = self.backend.name
        if name == "jax":
            import jax

            return jax.random.permutation(self._next_key(), n)
        if name == "torch":
            import torch

            return torch.randperm(n, generator=self._gen, device=self.backend.device)
        if name == "cupy":
            with self.backend.device:
                return self._gen.permutation(n)
        host = self._gen.permutation(n)
        if name == "numpy":
            return host
        return self.backend.xp.asarray(host, device=self.backend.device)

    def uniform(self, shape: tuple[int, ...], dtype: Any) -> Any:
        """Uniform numbers in ``[0, 1)`` of ``shape`` and float ``dtype`` on the device."""
        name = self.backend.name
        if name == "jax":
            import jax

            return jax.random.uniform(self._next_key(), shape, dtype=dtype)
        if name == "torch":
            import torch

            return torch.rand(shape, generator=self._gen, dtype=dtype, device=self.backend.device)
        if name == "cupy":
            with self.backend.device:
                return self._gen.random_sample(shape, dtype=dtype)
        if name == "numpy":
            return self._gen.random(shape, dtype=dtype)
        host = self._gen.random(shape, dtype=np.float64)
        return self.backend.xp.asarray(host, dtype=dtype, device=self.backend.device)

    def _next_key(self) -> Any:
        """jax: split the key, keep one half as the new state, return the other to draw with."""
        import jax

        self._gen, key = jax.random.split(self._gen)
        return key

    def get_state(self) -> Any:
        """An opaque snapshot of the generator, for :meth:`set_state`.

        On jax it is the key itself (an immutable array, traceable): a pure step takes it as
        an argument and returns the advanced one.
        """
        name = self.backend.name
        if name == "jax":
            return self._gen
        if name == "torch":
            return self._gen.get_state()
        if name == "cupy":
            import copy

            return copy.deepcopy(self._gen)
        return self._gen.bit_generator.state

    def set_state(self, state: Any) -> None:
        """Return the generator to a snapshot taken with :meth:`get_state`."""
        name = self.backend.name
        if name == "jax":
            self._gen = state
        elif name == "torch":
            self._gen.set_state(state)
        elif name == "cupy":
            import copy

            self._gen = copy.deepcopy(state)
        else:
            self._gen.bit_generator.state = state
