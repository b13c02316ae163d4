"""Losses fused with their output activation, as PyTorch's mean reductions.

Each loss gives its value and ``dE/dA``, the gradient with respect to the output layer's
pre-activation ``A``. For the pairs below the fused delta is written once, here:

==========================  ==================  ======================================
loss                        output activation   dE/dA
==========================  ==================  ======================================
``cross_entropy``           softmax             ``(Y - T) / N``
``binary_cross_entropy``    sigmoid             ``(Y - T) / (N * K)``
``mse``                     any                 ``g'(A) * 2 (Y - T) / (N * K)`` (chain)
==========================  ==================  ======================================

``N`` counts samples (every leading axis: samples x timesteps for sequences) and ``K`` the
outputs. Under an output mask, ``N`` counts only the rows with at least one allowed output:
a fully masked row (a padded timestep) is left out of the mean, as PyTorch's
``ignore_index`` and Keras's masked losses do. Likewise a sequence mask's padded timesteps
(``rows``: False at padded steps of an ``(N, T, K)`` output) are left out: their delta is
zero and ``N`` counts the real steps only. The cross-entropies take their value from
the pre-activation (log-softmax, softplus), so neither the loss nor its gradient meets
``log(0)`` or ``-T/Y``: both stay finite for logits of +-1e4 and beyond. A cross-entropy
asked of the wrong output activation is refused rather than differentiated wrongly.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

from .functional import ActivationFunction, LayerOutput, softplus

Array = Any


class Loss:
    """A loss ``E(Y, T)`` reduced to a mean; ``Y = g(A)`` is the output layer's output.

    Attributes
    ----------
    name : str
    requires : str or None
        The output activation the fused gradient needs (None: any, via the chain rule).
    """

    name = ""
    requires: str | None = None

    def check_activation(self, activation: ActivationFunction, layer: str) -> None:
        """Refuse an output activation this loss cannot be differentiated through."""
        if self.requires is not None and activation.name != self.requires:
            other = {"softmax": "cross_entropy", "sigmoid": "binary_cross_entropy"}.get(
                activation.name, "mse"
            )
            raise ValueError(
                f"loss {self.name!r} is computed from the logits of a {self.requires} output "
                f"layer, but the last layer {layer} has activation {activation.name!r}; use "
                f"activation={self.requires!r} in that layer or loss={other!r}"
            )

    def count(self, A: Array, xp: Any, mask: Array = None, rows: Array = None) -> Any:
        """``N``, the rows the mean runs over: every row (all leading axes of ``A``), or under
        ``mask`` the rows with at least one allowed output, and under ``rows`` (bool of
        ``A``'s shape without its last axis) only the rows it marks: a 0-d array on the
        device then."""
        if mask is None and rows is None:
            return math.prod(A.shape[:-1])
        return xp.sum(xp.astype(counted_rows(xp, mask, rows), A.dtype))

    def total_and_delta(
        self,
        out: LayerOutput,
        T: Array,
        xp: Any,
        mask: Array = None,
        *,
        count: Any = None,
        rows: Array = None,
    ) -> tuple[Array, Array]:
        """The loss summed over the counted rows (a 0-d array, left on the device) and
        ``dE/dA`` of the mean loss.

        The mean reduction is ``total / count`` (see :meth:`count`); returning the sum saves
        a division per batch, and a training epoch adds the sums of its batches.

        Parameters
        ----------
        out : LayerOutput
            ``A``, ``Y`` (shapes ``(..., K)``), ``log_Y`` and the activation of the output
            layer's last forward pass.
        T : array of shape ``(..., K)``
            Targets in the output dtype (class labels already one-hot; cross-entropy rows
            sum to one, checked once by the network).
        xp : namespace
        mask : bool array of shape ``(..., K)`` or None
            Allowed outputs of a masked softmax.
        count : int or 0-d array, optional
            :meth:`count`, when the caller has it already.
        rows : bool array of shape ``(...)`` (the output's without ``K``), optional
            The rows that count (False at the padded timesteps of a sequence mask): the
            loss and ``dE/dA`` are zero on the others.
        """
        raise NotImplementedError


def counted_rows(xp: Any, mask: Array = None, rows: Array = None) -> Array:
    """The bool rows a mean runs over (shape of the output without ``K``): those with an
    allowed output under ``mask`` and marked in ``rows``; None when every row counts."""
    if mask is None:
        return rows
    allowed = xp.any(mask, axis=-1)
    return allowed if rows is None else allowed & rows


def _only(rows: Array, R: Array, xp: Any) -> Array:
    """``R`` (shape ``(..., K)``) with the rows that do not count set to zero."""
    return R if rows is None else xp.where(rows[..., None], R, 0.0)


def _safe(count: Any, xp: Any) -> Any:
    """``count``, or 1 where it is 0 (a batch of fully masked rows: its delta is 0 anyway)."""
    if isinstance(count, int):
        return max(count, 1)
    return count + xp.astype(count == 0, count.dtype)


def _scaled(R: Array, factor: float, n: Any) -> Array:
    """``R * factor / n`` (one multiplication when ``n`` is a Python int)."""
    return R * (factor / n) if isinstance(n, int) else R * factor / n


_TAKES_A: dict[type, bool] = {}


def _activation_backward(out: LayerOutput, dEdY: Array, xp: Any) -> Array:
    """``dE/dA`` from ``dE/dY``, handing the activation ``A`` when its ``backward`` takes it."""
    kind = type(out.activation)
    if kind not in _TAKES_A:
        _TAKES_A[kind] = "A" in inspect.signature(out.activation.backward).parameters
    if _TAKES_A[kind]:
        return out.activation.backward(out.Y, dEdY, xp, A=out.A)
    return out.activation.backward(out.Y, dEdY, xp)


class MeanSquaredError(Loss):
    """``mean((Y - T) ** 2)`` over every element, as ``torch.nn.MSELoss()``."""

    name = "mse"

    def total_and_delta(self, out, T, xp, mask=None, *, count=None, rows=None):
        n = _safe(self.count(out.A, xp, mask, rows) if count is None else count, xp)
        R = _only(counted_rows(xp, mask, rows), out.Y - T, xp)  # uncounted rows: nothing
        K = R.shape[-1]
        return xp.sum(R * R) / K, _activation_backward(out, _scaled(R, 2.0 / K, n), xp)


class CrossEntropy(Loss):
    """``mean over samples of -sum_k T_k log softmax(A)_k``, as ``torch.nn.CrossEntropyLoss``.

    Targets are one-hot rows, probability rows, or integer class labels (made one-hot before
    they get here). With a mask, masked outputs have probability 0, may carry no target mass,
    and a row with every output masked contributes nothing.
    """

    name = "cross_entropy"
    requires = "softmax"

    def total_and_delta(self, out, T, xp, mask=None, *, count=None, rows=None):
        if mask is None and rows is None:  # every row counts: the fewest operations
            n = max(math.prod(out.A.shape[:-1]) if count is None else count, 1)
            return -xp.sum(T * out.log_Y), (out.Y - T) / n
        n = _safe(self.count(out.A, xp, mask, rows) if count is None else count, xp)
        log_Y = out.log_Y if mask is None else xp.where(mask, out.log_Y, 0.0)  # no 0 * -inf
        T = _only(rows, T, xp)  # padded steps: no target, so no loss and no delta
        # rows of T sum to 1 (or 0 where all-masked); Y is 0 on fully masked rows
        return -xp.sum(T * log_Y), _only(rows, out.Y - T, xp) / n


class BinaryCrossEntropy(Loss):
    """``mean(-T log Y - (1 - T) log(1 - Y))`` over every element, from the logits:
    ``softplus(A) - T * A``, as ``torch.nn.BCEWithLogitsLoss()``."""

    name = "binary_cross_entropy"
    requires = "sigmoid"

    def total_and_delta(self, out, T, xp, mask=None, *, count=None, rows=None):
        n = _safe(self.count(out.A, xp, mask, rows) if count is None else count, xp)
        K = out.A.shape[-1]
        total = xp.sum(_only(rows, softplus(out.A, xp=xp) - T * out.A, xp)) / K
        return total, _scaled(_only(rows, out.Y - T, xp), 1.0 / K, n)


LOSSES = {cls.name: cls for cls in (MeanSquaredError, CrossEntropy, BinaryCrossEntropy)}


def get_loss(loss: str | Loss) -> Loss:
    """Resolve ``"mse"``, ``"cross_entropy"``, ``"binary_cross_entropy"`` (or a Loss).

    Raises
    ------
    ValueError
        For an unknown name; the message lists the valid ones.
    """
    if isinstance(loss, Loss):
        return loss
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; valid names are {', '.join(LOSSES)}")
    return LOSSES[loss]()
