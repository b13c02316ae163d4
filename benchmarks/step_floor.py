"""Where a small network's training step goes: the hand-written NumPy reference, the same
step written with nnxp's own kernels and no structure around them (the floor nnxp's step can
reach while it reports the loss), and nnxp's ``fit``, one epoch each, interleaved.

    python benchmarks/step_floor.py                 # digits 64-32-10, batch 32, SGD
    python benchmarks/step_floor.py --optimizer adam --rounds 200

The kernels floor runs the reference's arithmetic plus what nnxp does on purpose: the loss
value of every batch (log-softmax and ``-sum(T log Y)``: the reference computes none) and the
sigmoid that keeps float32 tails exact without overflowing (one clip). What ``fit`` takes
beyond the floor is its Python: the layer protocol, the pure step, the loop's bookkeeping.
Prints the minimum and the median epoch time of each, and their ratios to the reference.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mlp  # noqa: E402
from reference import ReferenceMLP  # noqa: E402

import nnxp  # noqa: E402
from nnxp.functional import sigmoid, softmax_with_log  # noqa: E402


def kernels_epoch(X, T, Ws, bs, batch: int, optimizer: str):
    """One epoch of 64-32-10 (sigmoid, softmax + cross-entropy) in nnxp's kernels, inline."""
    xp = nnxp.get_backend().xp
    W1, b1, W2, b2 = (a.copy() for a in (Ws[0], bs[0], Ws[1], bs[1]))
    params = [W1, b1, W2, b2]
    moments = [(xp.zeros_like(p), xp.zeros_like(p)) for p in params]
    steps = [0]

    def epoch():
        for start in range(0, X.shape[0], batch):
            Xb, Tb = X[start : start + batch, ...], T[start : start + batch, ...]
            A1 = Xb @ W1.T
            A1 += b1
            Y1 = sigmoid(A1, xp=xp)
            A2 = Y1 @ W2.T
            A2 += b2
            Y2, log_Y2 = softmax_with_log(A2, xp=xp)
            -xp.sum(Tb * log_Y2)  # the batch's loss, as fit computes it
            D2 = (Y2 - Tb) / Xb.shape[0]
            D1 = (D2 @ W2) * (Y1 * (1.0 - Y1))
            grads = [D1.T @ Xb, xp.sum(D1, axis=0), D2.T @ Y1, xp.sum(D2, axis=0)]
            if optimizer == "sgd":
                for p, g in zip(params, grads):
                    p -= mlp.LR["sgd"] * g
                continue
            steps[0] += 1
            t = steps[0]
            step = mlp.LR["adam"] / (1 - 0.9**t)
            root = (1 - 0.999**t) ** 0.5
            for p, g, (m, v) in zip(params, grads, moments):
                m *= 0.9
                m += 0.1 * g
                v *= 0.999
                v += 0.001 * g * g
                p -= step * m / (xp.sqrt(v) / root + 1e-8)

    return epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args()
    case, X, T, _, Ws, bs = mlp.make_case("digits")
    ref = ReferenceMLP(Ws, bs, case["hidden"])
    lr = mlp.LR[args.optimizer]
    epochs = {
        "reference": (
            (lambda: ref.epoch_sgd(X, T, case["batch"], lr))
            if args.optimizer == "sgd"
            else (lambda: ref.epoch_adam(X, T, case["batch"], lr))
        ),
        "nnxp kernels floor": kernels_epoch(X, T, Ws, bs, case["batch"], args.optimizer),
        "nnxp fit": mlp.nnxp_epoch("numpy", case, X, T, Ws, bs, args.optimizer),
    }
    times: dict[str, list[float]] = {name: [] for name in epochs}
    for epoch in epochs.values():  # warm-up
        epoch()
    for _ in range(args.rounds):
        for name, epoch in epochs.items():
            start = time.perf_counter()
            epoch()
            times[name].append(time.perf_counter() - start)
    best_ref = min(times["reference"])
    median_ref = statistics.median(times["reference"])
    print(
        f"digits 64-32-10, batch {case['batch']}, {args.optimizer}, one epoch, "
        f"{args.rounds} interleaved rounds, 1 thread"
    )
    for name, values in times.items():
        best, median = min(values), statistics.median(values)
        print(
            f"{name:20s} min {best * 1e3:6.3f} ms ({best / best_ref:.2f}x)   "
            f"median {median * 1e3:6.3f} ms ({median / median_ref:.2f}x)"
        )


if __name__ == "__main__":
    main()
