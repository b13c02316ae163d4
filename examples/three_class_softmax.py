"""The multi-class question: 2 features, 4 sigmoid hidden units, 3 softmax outputs.

    python examples/three_class_softmax.py [--backend torch]

Trains on three spiral arms and shows that every row of probabilities sums to one.
"""

from __future__ import annotations

import numpy as np
from _common import parser, use

import nnxp
from nnxp import datasets


def main(argv=None) -> dict:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=200)
    args = p.parse_args(argv)
    use(args)
    X, T = datasets.spirals(n_classes=3, n_per_class=50, noise=0.1, seed=args.seed)
    net = nnxp.Sequential(
        [nnxp.Dense(2, 4, "sigmoid"), nnxp.Dense(4, 3, "softmax")], seed=args.seed
    )
    net.fit(
        X,
        T,
        loss="cross_entropy",
        optimizer=nnxp.Adam(0.05),
        epochs=args.epochs,
        batch_size=16,
        progress=False,
    )
    P = nnxp.to_numpy(net.predict(X))
    print("first rows of probabilities (each row sums to one):")
    for row in P[::30]:
        print(f"  {np.array2string(row, precision=3)}  sum = {row.sum():.6f}")
    accuracy = net.evaluate(X, T, "cross_entropy")["accuracy"]
    row_sums = P.sum(axis=1)
    print(f"largest |row sum - 1| = {np.abs(row_sums - 1).max():.2e}; accuracy {accuracy:.3f}")
    return {"accuracy": accuracy, "row_sums": row_sums}


if __name__ == "__main__":
    main()
