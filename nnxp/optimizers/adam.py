"""Adam and AdamW, as ``torch.optim.Adam`` and ``torch.optim.AdamW``."""

from __future__ import annotations

import math
import numbers

from .base import Optimizer, _check_number


class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam``; with ``decoupled=True``, AdamW as ``torch.optim.AdamW``::

        p *= 1 - lr * weight_decay                  (decoupled)
        g = grad + weight_decay * p                 (not decoupled)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    The bias corrections are Python floats (float64) when the step count ``t`` is an int,
    as in PyTorch; inside a compiled step, where ``t`` is a 0-d array, they are computed on
    the device in the parameters' dtype.

    Parameters
    ----------
    lr : float >= 0
    betas : (float, float), each in [0, 1)
    eps : float >= 0
    weight_decay : float >= 0
    decoupled : bool
    """

    slot_names = ("exp_avg", "exp_avg_sq")

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled: bool = False,
    ) -> None:
        super().__init__(lr)
        try:
            pair = None if isinstance(betas, (str, bytes)) else tuple(betas)
        except TypeError:
            pair = None
        if pair is None or len(pair) != 2:
            raise ValueError(f"betas must be a pair of numbers in [0, 1), got {betas!r}")
        self.betas = (
            _check_number("betas[0]", pair[0], 0.0, 1.0),
            _check_number("betas[1]", pair[1], 0.0, 1.0),
        )
        self.eps = _check_number("eps", eps, 0.0)
        self.weight_decay = _check_number("weight_decay", weight_decay, 0.0)
        self.decoupled = bool(decoupled)

    def _coefficients(self, t):
        b1, b2 = self.betas
        if isinstance(t, numbers.Integral):
            t = int(t)
            return self.lr / (1.0 - b1**t), math.sqrt(1.0 - b2**t), None
        return None, None, t  # computed per dtype in _update_one (a traced step count)

    def _update_one(self, p, g, slots, t, coefficients, inplace, xp):
        lr, (b1, b2), eps, wd = self.lr, self.betas, self.eps, self.weight_decay
        step_size, root_bc2, traced_t = coefficients
        if traced_t is not None:
            tf = xp.astype(traced_t, p.dtype)
            step_size = lr / (1.0 - b1**tf)
            root_bc2 = xp.sqrt(1.0 - b2**tf)
        if wd and self.decoupled:
            if inplace:
                p *= 1.0 - lr * wd
            else:
                p = p * (1.0 - lr * wd)
        elif wd:
            g = g + wd * p
        m, v = slots["exp_avg"], slots["exp_avg_sq"]
        if inplace:
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * (g * g)
            p -= step_size * (m / (xp.sqrt(v) / root_bc2 + eps))
            return p, {"exp_avg": m, "exp_avg_sq": v}
        m = m * b1 + (1.0 - b1) * g
        v = v * b2 + (1.0 - b2) * (g * g)
        p = p - step_size * (m / (xp.sqrt(v) / root_bc2 + eps))
        return p, {"exp_avg": m, "exp_avg_sq": v}

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
