"""Mask softmax outputs from an input mask, inside the network and during training.

    python examples/masked_actions.py [--backend torch]

Each input holds 6 state features and a block of 10 flags saying which of 10 actions are
allowed. The target is the best allowed action. The flags are passed as the softmax mask:
forbidden actions get probability exactly 0, the allowed ones are renormalised to sum to
one, in training and in prediction.
"""

from __future__ import annotations

import numpy as np
from _common import parser, use

import nnxp

N_ACTIONS, N_STATE = 10, 6


def make_data(n: int, rng: np.random.Generator, scores: np.ndarray):
    state = rng.standard_normal((n, N_STATE))
    allowed = rng.random((n, N_ACTIONS)) < 0.5
    allowed[np.arange(n), rng.integers(0, N_ACTIONS, n)] = True  # at least one action
    value = np.where(allowed, state @ scores, -np.inf)
    targets = np.eye(N_ACTIONS)[np.argmax(value, axis=1)]
    X = np.concatenate([state, allowed.astype(float)], axis=1)
    return X, targets


def main(argv=None) -> dict:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--samples", type=int, default=4000)
    args = p.parse_args(argv)
    use(args)
    rng = np.random.default_rng(args.seed)
    scores = rng.standard_normal((N_STATE, N_ACTIONS))
    X, T = make_data(args.samples, rng, scores)
    X_test, T_test = make_data(1000, rng, scores)
    X, T, X_test, T_test = (nnxp.asarray(a, dtype="float32") for a in (X, T, X_test, T_test))
    mask, mask_test = X[:, N_STATE:], X_test[:, N_STATE:]  # the input's flag block

    net = nnxp.Sequential(
        [nnxp.Dense(N_STATE + N_ACTIONS, 64, "relu"), nnxp.Dense(64, N_ACTIONS, "softmax")],
        seed=args.seed,
    )
    history = net.fit(
        X,
        T,
        loss="cross_entropy",
        optimizer=nnxp.Adam(3e-3),
        epochs=args.epochs,
        batch_size=64,
        mask=mask,
        validation_data=(X_test, T_test, mask_test),
        progress=False,
    )
    P = nnxp.to_numpy(net.predict(X_test, mask=mask_test))
    forbidden = nnxp.to_numpy(mask_test) == 0
    on_forbidden = float(P[forbidden].max()) if forbidden.any() else 0.0
    row_error = float(np.abs(P.sum(axis=1) - 1).max())
    accuracy = history.history["val_accuracy"][-1]
    print(f"largest probability on a forbidden action: {on_forbidden}")
    print(f"largest |row sum - 1|: {row_error:.2e}")
    print(f"test accuracy (best allowed action): {accuracy:.3f} after {args.epochs} epochs")
    return {"on_forbidden": on_forbidden, "row_error": row_error, "accuracy": accuracy}


if __name__ == "__main__":
    main()
