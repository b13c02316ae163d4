"""Classify variable-length token sequences with Embedding + LSTM (or GRU).

    python examples/sequence_classification.py [--backend torch] [--cell gru]

Each sequence (3 to 30 tokens, padded with 0 to the longest) is labelled 1 when it holds
the pattern "a ... b": a token ``a`` followed, after a gap of any length, by a token ``b``.
Negatives hold neither, only one of them, or ``b`` before ``a``, so the order matters and
no single position decides. The timestep mask (``tokens != 0``), given once to ``fit`` and
``evaluate`` as ``sequence_mask=`` (``Embedding(mask_zero=True)`` would derive the same one
from the tokens), reaches the LSTM, which carries its state over the padding: the last
*real* step's state is classified.
"""

from __future__ import annotations

import numpy as np
from _common import parser, use

import nnxp

PAD, A, B = 0, 1, 2
N_TOKENS = 12  # 0 padding, 1 = a, 2 = b, 3..11 fillers


def make_data(n: int, rng: np.random.Generator, min_len: int = 3, max_len: int = 30):
    """Tokens (n, max_len) int64 (0 = padding), labels (n,) and the mask (n, max_len)."""
    tokens = np.zeros((n, max_len), dtype=np.int64)
    labels = rng.integers(0, 2, n)
    for row in range(n):
        length = int(rng.integers(min_len, max_len + 1))
        seq = rng.integers(3, N_TOKENS, length)
        i, j = np.sort(rng.choice(length, 2, replace=False))
        kind = rng.integers(0, 4)  # negatives: none, a only, b only, b before a
        if labels[row] == 1:
            seq[i], seq[j] = A, B
        elif kind == 1:
            seq[i] = A
        elif kind == 2:
            seq[j] = B
        elif kind == 3:
            seq[i], seq[j] = B, A
        tokens[row, :length] = seq
    return tokens, labels, tokens != PAD


def main(argv=None) -> dict:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--cell", choices=["lstm", "gru"], default="lstm")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--sequences", type=int, default=2000)
    p.add_argument("--units", type=int, default=32)
    args = p.parse_args(argv)
    use(args)
    rng = np.random.default_rng(args.seed)
    tokens, labels, mask = make_data(args.sequences, rng)
    tokens_test, labels_test, mask_test = make_data(500, rng)
    cell = {"lstm": nnxp.LSTM, "gru": nnxp.GRU}[args.cell]
    net = nnxp.Sequential(
        [
            nnxp.Embedding(N_TOKENS, 16, mask_zero=True),
            cell(16, args.units),
            nnxp.Dense(args.units, 2, "softmax"),
        ],
        seed=args.seed,
    )
    X, M = nnxp.asarray(tokens), nnxp.asarray(mask)
    T = nnxp.asarray(np.eye(2, dtype=np.float32)[labels])
    net.fit(
        X,
        T,
        loss="cross_entropy",
        optimizer=nnxp.Adam(lr=0.01),
        epochs=args.epochs,
        batch_size=64,
        sequence_mask=M,
        progress=False,
    )
    X_test, M_test = nnxp.asarray(tokens_test), nnxp.asarray(mask_test)
    T_test = nnxp.asarray(np.eye(2, dtype=np.float32)[labels_test])
    scores = net.evaluate(X_test, T_test, loss="cross_entropy", sequence_mask=M_test)
    lengths = mask_test.sum(axis=1)
    print(
        f"{args.cell.upper()} on {args.backend}: test accuracy {scores['accuracy']:.3f} "
        f"(sequences of {lengths.min()} to {lengths.max()} tokens)"
    )
    return scores


if __name__ == "__main__":
    main()
