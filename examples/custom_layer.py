"""A custom layer in under 40 lines: attention pooling over time, (N, T, F) -> (N, F).

Each sequence has one marked step (feature 3 set high); its class is the sign of feature 0
at that step. Averaging over time cannot find it; a learnt attention can.

python examples/custom_layer.py [--backend array_api_strict] [--epochs 40]
"""

from __future__ import annotations

import numpy as np
from _common import parser, use

import nnxp
from nnxp import functional as F


@nnxp.register
class AttentionPool(nnxp.Layer):
    """``Y[n] = sum_t a[n, t] X[n, t]``, ``a[n] = softmax_t(X[n] @ w)`` over real steps."""

    takes_sequence_mask = True

    def __init__(self, n_features: int):
        super().__init__()
        self.n_features = n_features

    def build(self, ctx):
        super().build(ctx)
        init = nnxp.initializers.get("glorot_uniform")
        self.params = {"w": nnxp.initializers.draw(init, (self.n_features,), ctx)}

    def output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def forward(self, X, *, training=False, sequence_mask=None):
        xp = self.xp
        scores = xp.sum(X * self.params["w"], axis=-1)  # (N, T)
        mask = xp.ones(scores.shape, dtype=xp.bool) if sequence_mask is None else sequence_mask
        self._X, self._a = X, F.masked_softmax(scores, mask, axis=1)
        return xp.sum(self._a[:, :, None] * X, axis=1)

    def backward(self, dEdY, *, need_dX=True):
        xp, X, a = self.xp, self._X, self._a
        da = xp.sum(X * dEdY[:, None, :], axis=-1)  # dE/da, (N, T)
        ds = a * (da - xp.sum(da * a, axis=1, keepdims=True))  # through the softmax
        self.grads = {"w": xp.sum(ds[:, :, None] * X, axis=(0, 1))}
        if not need_dX:
            return None
        return a[:, :, None] * dEdY[:, None, :] + ds[:, :, None] * self.params["w"]


def marked_sequences(n: int, steps: int, rng: np.random.Generator):
    X = rng.standard_normal((n, steps, 4))
    marked = rng.integers(0, steps, size=n)
    X[np.arange(n), marked, 3] += 4.0
    labels = (X[np.arange(n), marked, 0] > 0).astype(np.int64)
    return X, labels


def main(argv=None) -> dict:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--samples", type=int, default=1024)
    args = p.parse_args(argv)
    use(args, float64=True)
    rng = np.random.default_rng(args.seed)
    X_host, labels_host = marked_sequences(args.samples, 8, rng)
    X, labels = nnxp.asarray(X_host, dtype="float32"), nnxp.asarray(labels_host)

    def network(pool):
        layers = [pool, nnxp.Dense(4, 16, "tanh"), nnxp.Dense(16, 2, "softmax")]
        return nnxp.Sequential(layers, seed=args.seed)

    net = network(AttentionPool(4))
    error = nnxp.gradcheck(net, X[:6, ...], labels[:6], "cross_entropy")  # float64 copy
    print(f"gradcheck max relative error {error:.1e}: {'ok' if error < 1e-6 else 'WRONG'}")
    results = {"gradcheck": error}
    for name, pool in (("attention", net), ("average", network(nnxp.GlobalAveragePooling1D()))):
        pool.fit(X, labels, loss="cross_entropy", optimizer=nnxp.Adam(0.01),
                 epochs=args.epochs, batch_size=32, progress=False)  # fmt: skip
        results[name] = pool.evaluate(X, labels, "cross_entropy")["accuracy"]
        print(f"{name} pooling: training accuracy {results[name]:.3f}")
    return results


if __name__ == "__main__":
    main()
