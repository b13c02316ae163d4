"""Optimizers whose steps match ``torch.optim.SGD``, ``Adam`` and ``AdamW`` step for step.

An optimizer updates a network's parameter dicts from its gradient dicts
(``net.parameters()``, ``net.gradients()``). Updates are in place (``p -= ...``: the
standard's in-place operators) where the array library allows, and rebind the dict entry
where it does not. State (momentum, moments) is created lazily with ``zeros_like`` on the
parameters' own backend and device; nothing is copied to the host.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from array_api_compat import array_namespace

from .backend import asarray

Array = Any
Params = list  # list of dict[str, Array], one dict per layer


def _check_number(
    name: str, value: Any, low: float, high: float = math.inf, *, high_open=True
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    above = value >= high if high_open else value > high
    if value < low or above:
        bracket = ")" if high_open else "]"
        raise ValueError(f"{name} must lie in [{low}, {high}{bracket}, got {value!r}")
    return float(value)


class Optimizer:
    """Base class: ``step(params, grads)`` updates every parameter that has a gradient."""

    def __init__(self, lr: float) -> None:
        self.lr = _check_number("lr", lr, 0.0)
        self.state: list[dict[str, dict[str, Array]]] | None = None
        self.steps = 0

    def _state_for(self, params: Params, names: tuple[str, ...]) -> list:
        if self.state is None:
            self.state = [
                {k: {n: _zeros_like(p) for n in names} for k, p in layer.items()}
                for layer in params
            ]
        return self.state

    def step(self, params: Params, grads: Params) -> None:
        """Update ``params`` (a list of dicts, changed in place) from ``grads``."""
        raise NotImplementedError

    def move(self, backend: Any) -> None:
        """Carry the state over to another backend (see ``Sequential.to_backend``)."""
        if self.state is not None:
            self.state = [
                {
                    k: {n: asarray(a, backend=backend) for n, a in s.items()}
                    for k, s in layer.items()
                }
                for layer in self.state
            ]

    def snapshot(self) -> tuple:
        """A copy of the state (on the device) for :meth:`restore`."""
        return self.steps, _copy_state(self.state)

    def restore(self, snapshot: tuple) -> None:
        """Return to a :meth:`snapshot` (copied again, so it can be restored twice)."""
        self.steps, state = snapshot
        self.state = _copy_state(state)

    def get_config(self) -> dict:
        """The hyperparameters that rebuild this optimizer."""
        raise NotImplementedError

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "type")
        return f"{type(self).__name__}({settings})"


def _copy_state(state: list | None) -> list | None:
    if state is None:
        return None
    return [
        {
            k: {n: array_namespace(a).asarray(a, copy=True) for n, a in s.items()}
            for k, s in layer.items()
        }
        for layer in state
    ]


def _zeros_like(p: Array) -> Array:
    # ``p * 0`` would carry NaN/inf along; ``zeros_like`` is the standard's, on p's device
    return array_namespace(p).zeros_like(p)


class SGD(Optimizer):
    """Stochastic gradient descent, as ``torch.optim.SGD`` (dampening 0)::

        g = grad + weight_decay * p
        buf = momentum * buf + g                    (buf starts at g)
        g = g + momentum * buf if nesterov else buf
        p -= lr * g

    Parameters
    ----------
    lr : float >= 0
    momentum : float in [0, 1)
    nesterov : bool
        Needs ``momentum > 0``.
    weight_decay : float >= 0
        L2 penalty added to the gradient.
    """

    def __init__(
        self,
        lr: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(lr)
        self.momentum = _check_number("momentum", momentum, 0.0, 1.0)
        self.weight_decay = _check_number("weight_decay", weight_decay, 0.0)
        if nesterov and self.momentum == 0.0:
            raise ValueError("nesterov momentum needs momentum > 0")
        self.nesterov = bool(nesterov)

    def step(self, params: Params, grads: Params) -> None:
        lr, mu, wd = self.lr, self.momentum, self.weight_decay
        state = self._state_for(params, ("momentum_buffer",)) if mu else []
        for i, (layer, layer_grads) in enumerate(zip(params, grads)):
            for name, g in layer_grads.items():
                p = layer[name]
                if wd:
                    g = g + wd * p
                if mu:
                    buf = state[i][name]["momentum_buffer"]
                    buf *= mu  # zero at the first step, so buf becomes g as in PyTorch
                    buf += g
                    state[i][name]["momentum_buffer"] = buf
                    g = g + mu * buf if self.nesterov else buf
                layer[name] -= lr * g
        self.steps += 1

    def get_config(self) -> dict:
        return {
            "type": "SGD",
            "lr": self.lr,
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
        }


class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam``; with ``decoupled=True``, AdamW as ``torch.optim.AdamW``::

        p *= 1 - lr * weight_decay                  (decoupled)
        g = grad + weight_decay * p                 (not decoupled)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    Parameters
    ----------
    lr : float >= 0
    betas : (float, float), each in [0, 1)
    eps : float >= 0
    weight_decay : float >= 0
    decoupled : bool
    """

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled: bool = False,
    ) -> None:
        super().__init__(lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair of numbers in [0, 1), got {betas!r}")
        self.betas = (
            _check_number("betas[0]", betas[0], 0.0, 1.0),
            _check_number("betas[1]", betas[1], 0.0, 1.0),
        )
        self.eps = _check_number("eps", eps, 0.0)
        self.weight_decay = _check_number("weight_decay", weight_decay, 0.0)
        self.decoupled = bool(decoupled)

    def step(self, params: Params, grads: Params) -> None:
        state = self._state_for(params, ("exp_avg", "exp_avg_sq"))
        self.steps += 1
        lr, (b1, b2), eps, wd = self.lr, self.betas, self.eps, self.weight_decay
        step_size = lr / (1.0 - b1**self.steps)
        root_bc2 = math.sqrt(1.0 - b2**self.steps)
        xp = None
        for i, (layer, layer_grads) in enumerate(zip(params, grads)):
            for name, g in layer_grads.items():
                p = layer[name]
                xp = xp or array_namespace(p)
                if wd and self.decoupled:
                    p *= 1.0 - lr * wd
                    layer[name] = p
                elif wd:
                    g = g + wd * p
                s = state[i][name]
                m, v = s["exp_avg"], s["exp_avg_sq"]
                m *= b1
                m += (1.0 - b1) * g
                v *= b2
                v += (1.0 - b2) * (g * g)
                s["exp_avg"], s["exp_avg_sq"] = m, v
                layer[name] -= step_size * (m / (xp.sqrt(v) / root_bc2 + eps))

    def get_config(self) -> dict:
        return {
            "type": "Adam",
            "lr": self.lr,
            "betas": list(self.betas),
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "decoupled": self.decoupled,
        }


def AdamW(
    lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2
) -> Adam:
    """AdamW (decoupled weight decay), PyTorch's defaults: ``Adam(..., decoupled=True)``."""
    return Adam(lr, betas, eps, weight_decay, decoupled=True)


OPTIMIZERS: dict[str, Callable[..., Optimizer]] = {"sgd": SGD, "adam": Adam, "adamw": AdamW}


def optimizer_from_config(config: dict) -> Optimizer:
    """Rebuild an optimizer (no state) from :meth:`Optimizer.get_config`."""
    settings = dict(config)
    kind = settings.pop("type", None)
    classes = {"SGD": SGD, "Adam": Adam}
    if kind not in classes:
        raise ValueError(f"unknown optimizer type {kind!r}; valid types are {', '.join(classes)}")
    if "betas" in settings:
        settings["betas"] = tuple(settings["betas"])
    return classes[kind](**settings)


def get_optimizer(optimizer: str | Optimizer, lr: float | None = None) -> Optimizer:
    """Resolve ``"sgd"``, ``"adam"``, ``"adamw"`` (default hyperparameters, or ``lr``) or pass
    an Optimizer instance through."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if optimizer not in OPTIMIZERS:
        raise ValueError(
            f"unknown optimizer {optimizer!r}; valid names are {', '.join(OPTIMIZERS)}"
        )
    return OPTIMIZERS[optimizer]() if lr is None else OPTIMIZERS[optimizer](lr=lr)
