"""Time one LSTM training epoch: nnxp (numpy backend) vs PyTorch ``nn.LSTM`` eager vs a
hand-written NumPy LSTM, in one process, interleaved, one thread.

    python benchmarks/lstm.py                   # T=50, F=32, units=128, batch 64, 1024 rows
    python benchmarks/lstm.py --rounds 9 --profile

Each competitor runs the same float32 LSTM from the same initial weights over the same data
in the same batch order: forward over every step, the loss ``0.5 * mean_n ||h_T - y||^2`` on
the last state, backpropagation through time (no ``dE/dX``: the input is data), and a plain
SGD step (lr 0.01). Competitors run A B C A B C ... for ``--rounds`` rounds after a warm-up;
ratios are medians of the per-round ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

THREADS = next((a.split("=")[1] for a in sys.argv if a.startswith("--threads=")), "1")
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = THREADS

import numpy as np  # noqa: E402

import nnxp  # noqa: E402
from nnxp.layers.core import BuildContext  # noqa: E402
from nnxp.layers.recurrent import LSTM  # noqa: E402
from nnxp.random import Generator  # noqa: E402

LR = 0.01


# ----------------------------------------------------------------------------- hand-written


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


class NumpyLSTM:
    """The classic hand-written NumPy LSTM (PyTorch gate order i, f, g, o)."""

    def __init__(self, W_ih, W_hh, b_ih, b_hh):
        self.W_ih, self.W_hh, self.b_ih, self.b_hh = W_ih, W_hh, b_ih, b_hh

    def step(self, X, Y):
        N, T, F = X.shape
        U = self.W_hh.shape[1]
        W_ih, W_hh = self.W_ih, self.W_hh
        Xp = (X.reshape(N * T, F) @ W_ih.T + (self.b_ih + self.b_hh)).reshape(N, T, 4 * U)
        h = np.zeros((N, U), X.dtype)
        c = np.zeros((N, U), X.dtype)
        cache = []
        for t in range(T):
            a = Xp[:, t] + h @ W_hh.T
            i = _sigmoid(a[:, :U])
            f = _sigmoid(a[:, U : 2 * U])
            g = np.tanh(a[:, 2 * U : 3 * U])
            o = _sigmoid(a[:, 3 * U :])
            c_prev, h_prev = c, h
            c = f * c + i * g
            tc = np.tanh(c)
            h = o * tc
            cache.append((i, f, g, o, c_prev, h_prev, tc))
        dh = (h - Y) / N
        dc = np.zeros_like(dh)
        dA = np.empty((N, T, 4 * U), X.dtype)
        H_prev = np.empty((N, T, U), X.dtype)
        for t in range(T - 1, -1, -1):
            i, f, g, o, c_prev, h_prev, tc = cache[t]
            dc = dc + dh * o * (1.0 - tc * tc)
            da = dA[:, t]
            da[:, :U] = dc * g * i * (1.0 - i)
            da[:, U : 2 * U] = dc * c_prev * f * (1.0 - f)
            da[:, 2 * U : 3 * U] = dc * i * (1.0 - g * g)
            da[:, 3 * U :] = dh * tc * o * (1.0 - o)
            H_prev[:, t] = h_prev
            dh = da @ W_hh
            dc = dc * f
        dA2 = dA.reshape(N * T, 4 * U)
        db = dA2.sum(axis=0)
        self.W_ih -= LR * (dA2.T @ X.reshape(N * T, F))
        self.W_hh -= LR * (dA2.T @ H_prev.reshape(N * T, U))
        self.b_ih -= LR * db
        self.b_hh -= LR * db


# ----------------------------------------------------------------------------- competitors


def make_nnxp(weights):
    backend = nnxp.get_backend()
    layer = LSTM(weights[0].shape[1], weights[1].shape[1])
    ctx = BuildContext(
        backend=backend, dtype=backend.xp.float32, host_rng=None, rng=Generator(backend, 0)
    )
    layer.build(ctx)
    for name, w in zip(("W_ih", "W_hh", "b_ih", "b_hh"), weights):
        layer.params[name] = nnxp.asarray(w.copy())

    def step(X, Y):
        h = layer.forward(X, training=True)
        layer.backward((h - Y) / X.shape[0], need_dX=False)
        for name, g in layer.grads.items():
            layer.params[name] -= LR * g

    return step


def make_torch(weights):
    import torch

    torch.set_num_threads(int(THREADS))
    F, U = weights[0].shape[1], weights[1].shape[1]
    module = torch.nn.LSTM(F, U, batch_first=True)
    with torch.no_grad():
        for p, w in zip(
            (module.weight_ih_l0, module.weight_hh_l0, module.bias_ih_l0, module.bias_hh_l0),
            weights,
        ):
            p.copy_(torch.from_numpy(w))
    opt = torch.optim.SGD(module.parameters(), lr=LR)

    def step(X, Y):
        opt.zero_grad(set_to_none=True)
        h = module(X)[1][0][0]
        loss = 0.5 * ((h - Y) ** 2).sum() / X.shape[0]
        loss.backward()
        opt.step()

    return step


def make_numpy(weights):
    model = NumpyLSTM(*(w.copy() for w in weights))
    return model.step


def epoch(step, batches):
    start = time.perf_counter()
    for X, Y in batches:
        step(X, Y)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rows", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", default="1")
    parser.add_argument("--profile", action="store_true", help="where nnxp's time goes")
    args = parser.parse_args()
    import torch

    rng = np.random.default_rng(0)
    T, F, U, B = args.steps, args.features, args.units, args.batch
    X = rng.standard_normal((args.rows, T, F)).astype(np.float32)
    Y = rng.uniform(-0.5, 0.5, (args.rows, U)).astype(np.float32)
    k = 1.0 / np.sqrt(U)
    weights = [
        rng.uniform(-k, k, s).astype(np.float32)
        for s in ((4 * U, F), (4 * U, U), (4 * U,), (4 * U,))
    ]
    cut = range(0, args.rows, B)
    host = [(X[i : i + B], Y[i : i + B]) for i in cut]
    tens = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in host]
    nnxp.set_backend("numpy")
    competitors = {
        "nnxp (numpy)": (make_nnxp(weights), [(nnxp.asarray(x), nnxp.asarray(y)) for x, y in host]),
        "hand-written NumPy": (make_numpy(weights), host),
        "torch nn.LSTM eager": (make_torch(weights), tens),
    }
    times: dict[str, list[float]] = {name: [] for name in competitors}
    for step, batches in competitors.values():  # warm-up
        epoch(step, batches[:2])
    for _ in range(args.rounds):
        for name, (step, batches) in competitors.items():
            times[name].append(epoch(step, batches))
    ref = times["hand-written NumPy"]
    print(
        f"LSTM epoch: T={T}, F={F}, units={U}, batch {B}, {args.rows} rows, float32, "
        f"{args.threads} thread(s), {args.rounds} interleaved rounds"
    )
    print("| implementation | median epoch (s) | ratio to hand-written NumPy (median) |")
    print("| --- | --- | --- |")
    for name, ts in times.items():
        ratio = statistics.median(a / b for a, b in zip(ts, ref))
        print(f"| {name} | {statistics.median(ts):.3f} | {ratio:.2f}x |")
    if args.profile:
        profile(competitors["nnxp (numpy)"])


def profile(competitor) -> None:
    """cProfile of two nnxp epochs: the top functions by own time."""
    import cProfile
    import pstats

    step, batches = competitor
    pr = cProfile.Profile()
    pr.enable()
    epoch(step, batches)
    epoch(step, batches)
    pr.disable()
    pstats.Stats(pr).sort_stats("tottime").print_stats(14)


if __name__ == "__main__":
    main()
