"""Weight penalties added to the loss: ``l1``, ``l2``, ``l1_l2`` (Array API only).

As Keras: ``l1(f)`` adds ``f * sum(|W|)``, ``l2(f)`` adds ``f * sum(W**2)`` (no 1/2) and
``l1_l2(l1, l2)`` both, to the *mean* loss (not scaled by the batch size). A regularizer
returns the penalty (0-d array) and its gradient with respect to the parameter; a layer
collects them in :meth:`nnxp.Layer.regularization`.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from array_api_compat import array_namespace

from .functional.activations import from_registry

Array = Any


class Regularizer:
    """``penalty, grad = reg(W, xp)``: a 0-d array and an array of ``W``'s shape."""

    name = ""

    def __call__(self, W: Array, xp: Any = None) -> tuple[Array, Array]:
        raise NotImplementedError

    def get_config(self) -> dict:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Regularizer) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v}" for k, v in self.get_config().items() if k != "name")
        return f"{self.name}({settings})"


class L1L2(Regularizer):
    """``l1 * sum(|W|) + l2 * sum(W**2)``; gradient ``l1 * sign(W) + 2 * l2 * W`` (the
    sub-gradient 0 at ``W == 0``, as PyTorch's ``sign``)."""

    name = "l1_l2"

    def __init__(self, l1: float = 0.01, l2: float = 0.01) -> None:
        self.l1 = _factor(l1, "l1")
        self.l2 = _factor(l2, "l2")

    def __call__(self, W: Array, xp: Any = None) -> tuple[Array, Array]:
        xp = xp or array_namespace(W)
        if self.l1 and self.l2:
            penalty = self.l1 * xp.sum(xp.abs(W)) + self.l2 * xp.sum(W * W)
            grad = self.l1 * xp.sign(W) + (2.0 * self.l2) * W
        elif self.l1:
            penalty, grad = self.l1 * xp.sum(xp.abs(W)), self.l1 * xp.sign(W)
        else:
            penalty, grad = self.l2 * xp.sum(W * W), (2.0 * self.l2) * W
        return penalty, grad

    def get_config(self) -> dict:
        return {"name": self.name, "l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """``factor * sum(|W|)``."""

    name = "l1"

    def __init__(self, factor: float = 0.01) -> None:
        super().__init__(l1=factor, l2=0.0)

    def get_config(self) -> dict:
        return {"name": self.name, "factor": self.l1}


class L2(L1L2):
    """``factor * sum(W**2)``."""

    name = "l2"

    def __init__(self, factor: float = 0.01) -> None:
        super().__init__(l1=0.0, l2=factor)

    def get_config(self) -> dict:
        return {"name": self.name, "factor": self.l2}


REGULARIZERS: dict[str, type[Regularizer]] = {cls.name: cls for cls in (L1, L2, L1L2)}


def l1(factor: float = 0.01) -> L1:
    """``factor * sum(|W|)``."""
    return L1(factor)


def l2(factor: float = 0.01) -> L2:
    """``factor * sum(W**2)``."""
    return L2(factor)


def l1_l2(l1: float = 0.01, l2: float = 0.01) -> L1L2:
    """``l1 * sum(|W|) + l2 * sum(W**2)``."""
    return L1L2(l1, l2)


def get(reg: str | dict | Regularizer | None) -> Regularizer | None:
    """Resolve a name (default factors 0.01), a config dict or a :class:`Regularizer`.

    Raises
    ------
    ValueError
        An unknown name (the message lists the valid ones) or a bad factor.
    TypeError
        Anything else.
    """
    if reg is None or isinstance(reg, Regularizer):
        return reg
    if isinstance(reg, (str, dict)):
        hint = " (with factors: nnxp.regularizers.l2(1e-4), l1_l2(l1=..., l2=...))"
        return from_registry(reg, REGULARIZERS, "regularizer", hint)
    raise TypeError(
        f"a regularizer is a name ({', '.join(REGULARIZERS)}), a config dict or a "
        f"nnxp.regularizers.Regularizer, got {reg!r}"
    )


def _factor(value: Any, what: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"regularizer factor {what} must be a finite number >= 0, got {value!r}")
    return float(value)
