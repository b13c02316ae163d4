"""The classic NaN question: a 3-4-1 net, leaky_relu hidden, sigmoid output, cross-entropy.

    python examples/nan_free.py [--backend torch] [--epochs 10000]

The hand-written version computes ``-T log(Y)`` and ``-T/Y`` from the sigmoid's output and
goes NaN once a prediction saturates at 0 or 1. nnxp takes the loss from the logits
(softplus) and the output delta as ``(Y - T)/N``, so every loss stays finite even with
full-batch SGD at lr=1.0 for 10000 epochs.
"""

from __future__ import annotations

import math

import numpy as np
from _common import parser, use

import nnxp

X = [[0, 0, 1], [0, 1, 1], [1, 0, 1], [0, 1, 0], [1, 0, 0], [1, 1, 1], [0, 0, 0]]
Y = [0, 1, 1, 1, 1, 0, 0]


def main(argv=None) -> dict:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10000)
    args = p.parse_args(argv)
    use(args)
    X_, T = nnxp.asarray(X, dtype="float32"), nnxp.asarray([[y] for y in Y], dtype="float32")
    net = nnxp.Sequential(
        [nnxp.Dense(3, 4, "leaky_relu"), nnxp.Dense(4, 1, "sigmoid")], seed=args.seed
    )
    history = net.fit(
        X_,
        T,
        loss="binary_cross_entropy",
        optimizer=nnxp.SGD(1.0),
        epochs=args.epochs,
        batch_size=7,
        shuffle=False,
        progress=False,
    )
    losses = history.history["loss"]
    finite = all(math.isfinite(value) for value in losses)
    predictions = nnxp.to_numpy(net.predict(X_))[:, 0]
    print(f"{len(losses)} epochs, every loss finite: {finite}; final loss {losses[-1]:.3g}")
    for x, y, p_ in zip(X, Y, predictions):
        print(f"{x} target {y} -> {p_:.4f}")
    fitted = bool(np.all((predictions > 0.5) == np.array(Y, dtype=bool)))
    print(f"all 7 samples fitted: {fitted}")
    return {"finite": finite, "fitted": fitted, "losses": losses}


if __name__ == "__main__":
    main()
