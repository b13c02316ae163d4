"""scikit-learn's MLP objectives as nnxp losses: the data term of ``MLPClassifier`` and
``MLPRegressor`` (weighted by ``sample_weight``), and the L2 penalty ``alpha``.

scikit-learn's MLP sums over outputs and takes a (weighted) mean over samples, and its output
delta is ``w_i * (Y - T) / sum(w)`` for every pair below; computed here from the
pre-activation, so neither the value nor the gradient meets ``log(0)``:

=================  =================  ==============================================
loss               output             per-sample value (summed over outputs k)
=================  =================  ==============================================
``squared_error``  identity           ``0.5 * (Y - T)**2``
``log_loss``       softmax            ``-T * log_softmax(A)``
``binary_log``     logistic           ``softplus(A) - T * A`` (binary and multilabel)
``poisson``        exp (of A)         ``T * log(T) - T * A - T + exp(A)``
=================  =================  ==============================================

(scikit-learn *reports* the squared error averaged over outputs; ``report_divisor`` says so.)
"""

from __future__ import annotations

from typing import Any

from ..functional import softplus
from ..losses import Loss

Array = Any

REQUIRES = {"squared_error": None, "log_loss": "softmax", "binary_log": "sigmoid", "poisson": None}


class SklearnLoss(Loss):
    """One of scikit-learn's MLP losses, optionally weighted per sample.

    Parameters
    ----------
    kind : {"squared_error", "log_loss", "binary_log", "poisson"}
    weights : array of shape (n_samples, 1), optional
        The batch's sample weights on the network's backend (None: all ones).

    ``total_and_delta`` returns ``n_samples * weighted mean`` so that
    ``Sequential.loss_and_gradient`` (which divides by ``n_samples``) gives scikit-learn's
    weighted mean.
    """

    def __init__(self, kind: str, weights: Array = None) -> None:
        if kind not in REQUIRES:
            raise ValueError(f"unknown scikit-learn loss {kind!r}; valid: {', '.join(REQUIRES)}")
        self.name = f"sklearn_{kind}"
        self.kind = kind
        self.requires = REQUIRES[kind]
        self.weights = weights

    def total_and_delta(self, out, T, xp, mask=None, *, count=None, **_):
        """The batch's ``n_samples * weighted mean`` loss and ``dE/dA``; ``mask`` and
        ``count`` (the network's row count: every row here) are not used."""
        A, Y = out.A, out.Y
        if self.kind == "squared_error":
            R = Y - T
            values, residual = 0.5 * (R * R), R
        elif self.kind == "log_loss":
            log_Y = out.log_Y if out.log_Y is not None else xp.log(Y)
            values, residual = -(T * log_Y), Y - T
        elif self.kind == "binary_log":
            values, residual = softplus(A, xp=xp) - T * A, Y - T
        else:  # poisson: the network's output is the log of the mean
            mu = xp.exp(A)
            t_log_t = xp.where(T > 0, T * xp.log(xp.where(T > 0, T, 1.0)), 0.0)
            values, residual = t_log_t - T * A - T + mu, mu - T
        per_sample = xp.sum(values, axis=-1, keepdims=True)
        n = A.shape[0]
        if self.weights is None:
            return xp.sum(per_sample), residual / n
        w = self.weights
        w_sum = xp.sum(w)
        return n * xp.sum(w * per_sample) / w_sum, (w * residual) / w_sum


def report_divisor(kind: str, n_outputs: int) -> int:
    """scikit-learn reports the squared error as a mean over outputs (its gradient is that of
    the sum): the factor between the objective's data term and ``loss_``."""
    return n_outputs if kind == "squared_error" else 1
