"""The hand-written NumPy network that nnxp is measured against: the classic per-layer
forward/backprop, written the way the question's answer writes it, batch-wise.

    forward:  A = X @ W.T + b ; Y = g(A)
    backprop: Deltas = g'(Y) * dEdY ; dEdX = Deltas @ W ; dEdW = Deltas.T @ X ; dEdb = sum(Deltas)

The output layer is softmax + cross-entropy, so its delta is (Y - T) / n. No loss value is
computed (the classic loop does not need one); the first layer's dE/dX is skipped.
"""

from __future__ import annotations

import numpy as np


def sigmoid(A):
    return 1.0 / (1.0 + np.exp(-A))


def relu(A):
    return np.maximum(A, 0.0)


def softmax(A):
    E = np.exp(A - A.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


ACTIVATIONS = {
    "sigmoid": (sigmoid, lambda Y: Y * (1.0 - Y)),
    "relu": (relu, lambda Y: (Y > 0).astype(Y.dtype)),
}


class ReferenceMLP:
    """Hidden layers with activation ``hidden``, a softmax output, plain SGD or Adam.

    Parameters
    ----------
    Ws, bs : lists of float32 arrays, ``W`` of shape (n_out, n_in), ``b`` of shape (n_out,)
    hidden : {"sigmoid", "relu"}
    """

    def __init__(self, Ws, bs, hidden):
        self.Ws = [W.copy() for W in Ws]
        self.bs = [b.copy() for b in bs]
        self.g, self.gd = ACTIVATIONS[hidden]
        self.adam_state = None
        self.t = 0

    def gradients(self, X, T):
        """Forward and backprop of one batch: lists of dE/dW and dE/db."""
        Ys = [X]
        for W, b in zip(self.Ws[:-1], self.bs[:-1]):
            Ys.append(self.g(Ys[-1] @ W.T + b))
        Y = softmax(Ys[-1] @ self.Ws[-1].T + self.bs[-1])
        D = (Y - T) / X.shape[0]
        dWs, dbs = [], []
        for i in range(len(self.Ws) - 1, -1, -1):
            dWs.append(D.T @ Ys[i])
            dbs.append(D.sum(axis=0))
            if i > 0:
                D = (D @ self.Ws[i]) * self.gd(Ys[i])
        return dWs[::-1], dbs[::-1]

    def epoch_sgd(self, X, T, batch_size, lr):
        for start in range(0, X.shape[0], batch_size):
            dWs, dbs = self.gradients(X[start : start + batch_size], T[start : start + batch_size])
            for W, b, dW, db in zip(self.Ws, self.bs, dWs, dbs):
                W -= lr * dW
                b -= lr * db

    def epoch_adam(self, X, T, batch_size, lr, b1=0.9, b2=0.999, eps=1e-8):
        params = self.Ws + self.bs
        if self.adam_state is None:
            self.adam_state = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
        for start in range(0, X.shape[0], batch_size):
            dWs, dbs = self.gradients(X[start : start + batch_size], T[start : start + batch_size])
            self.t += 1
            step = lr / (1 - b1**self.t)
            root = np.sqrt(1 - b2**self.t)
            for p, g, (m, v) in zip(params, dWs + dbs, self.adam_state):
                m *= b1
                m += (1 - b1) * g
                v *= b2
                v += (1 - b2) * g * g
                p -= step * m / (np.sqrt(v) / root + eps)
