"""The classic timing: a forward pass row by row versus the whole batch at once.

    python examples/batch_vs_instance.py [--backend torch]

W is (10, 5000) and X is (1000, 5000): one matrix product beats a thousand small ones.
"""

from __future__ import annotations

import time

import numpy as np
from _common import parser, use

import nnxp


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(argv=None) -> dict:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1000)
    p.add_argument("--features", type=int, default=5000)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    use(args)
    rng = np.random.default_rng(args.seed)
    X = nnxp.asarray(rng.standard_normal((args.rows, args.features)), dtype="float32")
    net = nnxp.Sequential([nnxp.Dense(args.features, 10, "sigmoid")], seed=args.seed)

    def row_by_row():
        return [net.predict(X[i : i + 1, ...]) for i in range(args.rows)]

    def batched():
        return net.predict(X)

    np.testing.assert_allclose(  # same numbers either way
        np.concatenate([nnxp.to_numpy(y) for y in row_by_row()]),
        nnxp.to_numpy(batched()),
        rtol=1e-5,
    )
    rows = _median_seconds(lambda: nnxp.to_numpy(row_by_row()[-1]), args.repeats)
    batch = _median_seconds(lambda: nnxp.to_numpy(batched()), args.repeats)
    print(
        f"row by row: {rows * 1e3:.2f} ms   batched: {batch * 1e3:.2f} ms   "
        f"ratio {rows / batch:.1f}x  ({nnxp.get_backend().name}, median of {args.repeats})"
    )
    return {"row_by_row": rows, "batched": batch, "ratio": rows / batch}


if __name__ == "__main__":
    main()
