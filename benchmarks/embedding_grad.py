"""Time the embedding weight gradient (a scatter-add) on a 10,000-token vocabulary: nnxp's
two standard-Array-API formulations against ``numpy.add.at`` and ``torch.index_add_``.

    python benchmarks/embedding_grad.py               # batch 64 x 50 tokens, dim 64
    python benchmarks/embedding_grad.py --dim 256 --rounds 9

``sorted``: stable argsort of the ids, a segmented scan over the sorted rows, searchsorted;
``onehot``: ``onehot(ids).T @ dY`` in blocks. Each is checked against ``numpy.add.at``
(float64 sums) before timing; competitors run interleaved, medians of ``--rounds`` rounds
of ``--repeat`` calls each, one thread.
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
from nnxp.functional.embedding import embedding_backward  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", default="1")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(int(args.threads))
    rng = np.random.default_rng(0)
    V, D = args.vocab, args.dim
    # Zipf-like ids, as text has: a few frequent tokens, a long tail
    ids = np.minimum(rng.zipf(1.3, size=(args.batch, args.steps)) - 1, V - 1).astype(np.int64)
    dY = rng.standard_normal((args.batch, args.steps, D)).astype(np.float32)
    nnxp.set_backend("numpy")
    ids_x, dY_x = nnxp.asarray(ids), nnxp.asarray(dY)
    ids_t, dY_t = torch.from_numpy(ids).reshape(-1), torch.from_numpy(dY).reshape(-1, D)

    def add_at():
        out = np.zeros((V, D), np.float32)
        np.add.at(out, ids.reshape(-1), dY.reshape(-1, D))
        return out

    def index_add():
        return torch.zeros(V, D).index_add_(0, ids_t, dY_t)

    competitors = {
        "numpy.add.at": add_at,
        "nnxp sorted (segmented scan)": lambda: embedding_backward(ids_x, dY_x, V),
        "nnxp onehot (blocked matmul)": lambda: embedding_backward(
            ids_x, dY_x, V, method="onehot", block=512
        ),
        "torch index_add_": index_add,
    }
    exact = np.zeros((V, D))
    np.add.at(exact, ids.reshape(-1), dY.reshape(-1, D).astype(np.float64))
    for name, fn in competitors.items():
        err = np.max(np.abs(np.asarray(fn(), dtype=np.float64) - exact))
        print(f"{name}: max |error| vs float64 add.at = {err:.2e}")
    times: dict[str, list[float]] = {name: [] for name in competitors}
    for _ in range(args.rounds):
        for name, fn in competitors.items():
            start = time.perf_counter()
            for _ in range(args.repeat):
                fn()
            times[name].append((time.perf_counter() - start) / args.repeat)
    ref = times["numpy.add.at"]
    n_unique = len(np.unique(ids))
    print(
        f"\nEmbedding gradient: V={V}, {ids.size} tokens ({n_unique} distinct), dim {D}, "
        f"float32, {args.threads} thread(s), {args.rounds} interleaved rounds"
    )
    print("| method | median (ms) | ratio to numpy.add.at (median) |")
    print("| --- | --- | --- |")
    for name, ts in times.items():
        ratio = statistics.median(a / b for a, b in zip(ts, ref))
        print(f"| {name} | {1e3 * statistics.median(ts):.2f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
