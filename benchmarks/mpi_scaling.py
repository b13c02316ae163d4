"""Data-parallel SGD over MPI: epoch throughput on 2 ranks vs 1, and the allreduce per step.

    python benchmarks/mpi_scaling.py                      # 60000x784, 784-256-256-10, SGD
    python benchmarks/mpi_scaling.py --rounds 5 --epochs 3 --ranks 1 2 4
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/mpi_scaling.py

Each measurement is a fresh ``mpiexec -n K python benchmarks/mpi_scaling.py --worker ...``:
every rank makes its own shard of the synthetic float32 data (60000 rows in all), trains
the same network with ``nnxp.distributed.fit`` (plain SGD, lr 0.01, the GLOBAL batch size)
for ``--epochs`` epochs, and rank 0 reports the median epoch time after the first (which
pays for the set-up), the time per step spent in the allreduce (waiting for the slower rank
included) and, separately, the bare ``Allreduce`` of the same buffer (the gradients plus 3
floats) timed after a barrier. One thread per process (OMP/OpenBLAS/MKL), the rank counts
alternate within each round (1 2 1 2 ...), and ratios are medians of per-round ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
SIZES = [784, 256, 256, 10]
N = 60000


def worker(args: argparse.Namespace) -> None:
    """One measurement, run on every rank by mpiexec; rank 0 prints one JSON line."""
    import numpy as np
    from mpi4py import MPI

    import nnxp
    import nnxp.distributed

    comm = MPI.COMM_WORLD
    base, extra = divmod(args.n, comm.size)
    rows = base + (comm.rank < extra)
    rng = np.random.default_rng(comm.rank)
    X = nnxp.asarray(rng.standard_normal((rows, SIZES[0]), dtype=np.float32))
    labels = rng.integers(0, SIZES[-1], rows)
    T = nnxp.asarray((labels[:, None] == np.arange(SIZES[-1])).astype(np.float32))
    layers = [nnxp.Dense(a, b, "relu") for a, b in zip(SIZES[:-2], SIZES[1:-1])]
    net = nnxp.Sequential([*layers, nnxp.Dense(SIZES[-2], SIZES[-1], "softmax")], seed=0)
    batch = args.n if args.batch == 0 else args.batch
    stamps: list[float] = []
    comm.Barrier()
    stamps.append(time.perf_counter())
    history = nnxp.distributed.fit(
        net,
        X,
        T,
        comm=comm,
        loss="cross_entropy",
        optimizer=nnxp.SGD(0.01),
        epochs=args.epochs,
        batch_size=batch,
        seed=0,
        progress=False,
        check_finite=False,
        callbacks=[lambda epoch, logs: stamps.append(time.perf_counter())],
    )
    epoch_seconds = [b - a for a, b in zip(stamps, stamps[1:])]
    # the bare collective on a buffer of the same size, after a barrier
    n_values = sum(int(np.prod(p.shape)) for layer in net.parameters() for p in layer.values())
    buffer = np.zeros(n_values + 3, dtype=np.float32)
    times = []
    for _ in range(args.allreduce_repeats):
        comm.Barrier()
        start = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, buffer)
        times.append(time.perf_counter() - start)
    if comm.rank == 0:
        steps_per_epoch = -(-args.n // batch)
        result = {
            "ranks": comm.size,
            "batch": batch,
            "epoch_s": statistics.median(epoch_seconds[1:] or epoch_seconds),
            "first_epoch_s": epoch_seconds[0],
            "steps": history.steps,
            "steps_per_epoch": steps_per_epoch,
            "in_allreduce_per_step_ms": 1e3 * history.allreduce_seconds / max(history.steps, 1),
            "bare_allreduce_ms": 1e3 * statistics.median(times),
            "buffer_mb": buffer.nbytes / 1e6,
        }
        print("RESULT " + json.dumps(result), flush=True)


def measure(ranks: int, batch: int, args: argparse.Namespace) -> dict:
    env = {
        k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
    }
    env.update({var: "1" for var in THREAD_VARS})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [
        "mpiexec",
        "-n",
        str(ranks),
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        "--batch",
        str(batch),
        "--epochs",
        str(args.epochs),
        "--n",
        str(args.n),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(lines[-1][len("RESULT ") :])


def table(results: dict, args: argparse.Namespace) -> str:
    lines = [
        f"MPI data-parallel SGD, {args.n}x{SIZES[0]} float32, "
        f"{'-'.join(map(str, SIZES))}, 1 thread per rank, {args.rounds} rounds, "
        f"median epoch after the first of {args.epochs}",
        "",
        "| global batch | ranks | epoch (s) | rows/s | speed-up vs 1 rank (median of rounds) "
        "| in allreduce per step (ms) | bare allreduce (ms) | buffer (MB) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for batch, by_ranks in results.items():
        for ranks, runs in by_ranks.items():
            epoch = statistics.median(r["epoch_s"] for r in runs)
            ratios = [one["epoch_s"] / r["epoch_s"] for one, r in zip(by_ranks[1], runs)]
            lines.append(
                f"| {'full' if batch == args.n else batch} | {ranks} | {epoch:.3f} "
                f"| {args.n / epoch:,.0f} | {statistics.median(ratios):.2f}x "
                f"| {statistics.median(r['in_allreduce_per_step_ms'] for r in runs):.2f} "
                f"| {statistics.median(r['bare_allreduce_ms'] for r in runs):.3f} "
                f"| {runs[0]['buffer_mb']:.2f} |"
            )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=1024, help=argparse.SUPPRESS)
    p.add_argument("--batches", type=int, nargs="+", default=[1024, 0], help="0: full batch")
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--n", type=int, default=N)
    p.add_argument("--allreduce-repeats", type=int, default=50)
    p.add_argument("--write", default=None, help="also write the table to this file")
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    if 1 not in args.ranks:
        p.error("--ranks must include 1 (the baseline)")
    results: dict = {b or args.n: {k: [] for k in args.ranks} for b in args.batches}
    for r in range(args.rounds):
        for batch in args.batches:
            order = args.ranks if r % 2 == 0 else list(reversed(args.ranks))
            for ranks in order:
                result = measure(ranks, batch, args)
                results[batch or args.n][ranks].append(result)
                print(f"round {r + 1}: {json.dumps(result)}", file=sys.stderr, flush=True)
    text = table(results, args)
    print(text)
    if args.write:
        Path(args.write).write_text(text + "\n")


if __name__ == "__main__":
    main()
