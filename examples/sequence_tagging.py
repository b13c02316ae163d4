"""Tag every timestep of a sequence with a time-distributed dense network.

    python examples/sequence_tagging.py [--backend torch]

Inputs are (N, T, F): N sequences of T steps with F features. Dense layers apply the same
weights at every step (the leading axes are folded), Dropout(noise_shape=(None, 1, None))
draws one mask per sequence and shares it over all timesteps, and the softmax runs over the
last axis. The cross-entropy is averaged over samples and timesteps.
"""

from __future__ import annotations

import numpy as np
from _common import parser, use

import nnxp

N_FEATURES, N_TAGS = 8, 4


def make_data(n: int, steps: int, rng: np.random.Generator, mixing: np.ndarray):
    X = rng.standard_normal((n, steps, N_FEATURES))
    tags = np.argmax(np.tanh(X @ mixing), axis=-1)  # a per-step rule the net must learn
    return X, np.eye(N_TAGS)[tags]


def main(argv=None) -> dict:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--sequences", type=int, default=1000)
    args = p.parse_args(argv)
    use(args)
    rng = np.random.default_rng(args.seed)
    mixing = rng.standard_normal((N_FEATURES, N_TAGS))
    X, T = make_data(args.sequences, args.steps, rng, mixing)
    X_test, T_test = make_data(300, args.steps, rng, mixing)
    X, T, X_test, T_test = (nnxp.asarray(a, dtype="float32") for a in (X, T, X_test, T_test))

    net = nnxp.Sequential(
        [
            nnxp.Dense(N_FEATURES, 64, "relu"),
            nnxp.Dropout(0.2, noise_shape=(None, 1, None)),  # one mask for all timesteps
            nnxp.Dense(64, N_TAGS, "softmax"),
        ],
        seed=args.seed,
    )
    net.fit(
        X,
        T,
        loss="cross_entropy",
        optimizer=nnxp.Adam(3e-3),
        epochs=args.epochs,
        batch_size=32,
        progress=False,
    )
    P = nnxp.to_numpy(net.predict(X_test))
    hits = np.argmax(P, axis=-1) == np.argmax(nnxp.to_numpy(T_test), axis=-1)
    per_step = hits.mean(axis=0)
    print("accuracy per timestep: " + " ".join(f"{a:.2f}" for a in per_step))
    print(f"mean accuracy over {args.steps} timesteps: {per_step.mean():.3f}")
    return {"per_step": per_step, "accuracy": float(per_step.mean())}


if __name__ == "__main__":
    main()
