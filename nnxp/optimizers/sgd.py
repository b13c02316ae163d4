"""Stochastic gradient descent, as ``torch.optim.SGD``."""

from __future__ import annotations

from .base import Optimizer, Params, State, _check_number, _first_array, _mutable


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
        self.slot_names = ("momentum_buffer",) if self.momentum else ()
        self.needs_namespace = False

    def update(
        self, params: Params, grads: Params, state: State, *, inplace: bool = False
    ) -> tuple[Params, State]:
        """As :meth:`Optimizer.update`; plain SGD in place (no momentum, no weight decay)
        runs ``p -= lr * g`` inline: on a small network a call per parameter is a
        measurable part of the step."""
        if inplace and not (self.momentum or self.weight_decay):
            first = _first_array(params)
            if first is not None and _mutable(first):
                lr = self.lr
                for layer, layer_grads in zip(params, grads):
                    for name, g in layer_grads.items():
                        layer[name] -= lr * g
                return params, {"step": state["step"] + 1, "slots": state["slots"]}
        return super().update(params, grads, state, inplace=inplace)

    def _update_one(self, p, g, slots, t, coefficients, inplace, xp):
        lr, mu, wd = self.lr, self.momentum, self.weight_decay
        if wd:
            g = g + wd * p
        if mu:
            buf = slots["momentum_buffer"]
            if inplace:
                buf *= mu  # zero at the first step, so buf becomes g as in PyTorch
                buf += g
            else:
                buf = buf * mu + g
            slots = {"momentum_buffer": buf}
            g = g + mu * buf if self.nesterov else buf
        if inplace:
            p -= lr * g
            return p, slots
        return p - lr * g, slots

    def get_config(self) -> dict:
        return {
            "type": "SGD",
            "lr": self.lr,
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
        }
