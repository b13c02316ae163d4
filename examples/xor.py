"""The classic question's network: 2 inputs, a hidden layer, 1 sigmoid output, learns XOR.

python examples/xor.py [--backend array_api_strict]
"""

from __future__ import annotations

import numpy as np
from _common import parser, use

import nnxp
from nnxp import datasets


def main(argv=None) -> dict:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, default=4)
    p.add_argument("--epochs", type=int, default=500)
    args = p.parse_args(argv)
    use(args)
    X, T = datasets.xor()
    net = nnxp.Sequential(
        [nnxp.Dense(2, args.hidden, "tanh"), nnxp.Dense(args.hidden, 1, "sigmoid")], seed=args.seed
    )
    history = net.fit(
        X,
        T,
        loss="binary_cross_entropy",
        optimizer=nnxp.Adam(0.05),
        epochs=args.epochs,
        batch_size=4,
        progress=False,
    )
    Y = nnxp.to_numpy(net.predict(X))[:, 0]
    accuracy = float(np.mean((Y > 0.5) == (nnxp.to_numpy(T)[:, 0] > 0.5)))
    for x, y in zip(nnxp.to_numpy(X), Y):
        print(f"{x.astype(int)} -> {y:.3f}")
    print(f"loss {history.history['loss'][-1]:.4f}, accuracy {accuracy:.0%}")
    return {"accuracy": accuracy, "predictions": Y}


if __name__ == "__main__":
    main()
