"""Time nnxp.dask's full-batch loss and gradient on 1 and 2 Dask workers, interleaved.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/dask_gradient.py
    python benchmarks/dask_gradient.py --rounds 9 --rows 60000 --chunk-rows 5000

Two LocalClusters (processes, 1 thread each, BLAS pinned to 1 thread) run side by side: one
with 1 worker, one with 2. Each holds the same random float32 data (60000x784, one-hot
targets of 10 classes), generated on its workers in row chunks, persisted and spread evenly.
One call is ``nnxp.dask.loss_and_gradient`` of a 784-256-256-10 (relu, softmax) network,
``check_finite=False`` (L-BFGS checks once, then calls it so). Rounds alternate 1 worker,
2 workers, in-process ``net.loss_and_gradient`` (the same data in this process's memory),
after a warm-up; the speedup is the median of the per-round ratios. The per-call overhead is
the median call time on a tiny data set (64 rows, 2 chunks) on the 2-worker cluster, for the
two ways of sending the weights: scattered (``client=``) and as a shared graph key
(``scheduler=client.get``, what a default client uses). The chunk tasks each worker ran in
one 2-worker call show the work split. Prints a Markdown table; the machine's load average
is in its caption (the speedup means little on a busy machine).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import dask.array as da  # noqa: E402
import numpy as np  # noqa: E402

import nnxp  # noqa: E402
import nnxp.dask  # noqa: E402

SIZES = [784, 256, 256, 10]


def network(dtype: str) -> nnxp.Sequential:
    layers = [
        nnxp.Dense(n_in, n_out, "relu" if i < len(SIZES) - 2 else "softmax")
        for i, (n_in, n_out) in enumerate(zip(SIZES[:-1], SIZES[1:]))
    ]
    return nnxp.Sequential(layers, seed=0, dtype=dtype)


def _one_hot(labels: np.ndarray) -> np.ndarray:
    return (labels[:, None] == np.arange(SIZES[-1])).astype(np.float32)


def dask_data(rows: int, chunk_rows: int, dtype: str) -> tuple[da.Array, da.Array]:
    """Random data made chunk by chunk where it is computed (never in this process)."""
    state = da.random.RandomState(0)
    X = state.standard_normal((rows, SIZES[0]), chunks=(chunk_rows, -1)).astype(dtype)
    labels = state.randint(0, SIZES[-1], size=rows, chunks=chunk_rows)
    T = labels.map_blocks(_one_hot, new_axis=1, chunks=(labels.chunks[0], (SIZES[-1],)))
    return X, T.astype(dtype)


def cluster(n_workers: int):
    from distributed import Client, LocalCluster

    local = LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",
        silence_logs=40,
    )
    return local, Client(local, set_as_default=False, timeout=60)


def chunk_tasks(client, call) -> tuple[list[int], float]:
    """How many chunk tasks each worker ran during one ``call`` (the work split), and the
    median seconds one chunk task computed (it grows when the workers share cores)."""
    from distributed import get_task_stream

    with get_task_stream(client=client) as stream:
        call()
    counts: dict[str, int] = {}
    seconds = []
    for task in stream.data:
        if "_chunk_loss_and_gradient" in str(task["key"]):
            counts[task["worker"]] = counts.get(task["worker"], 0) + 1
            seconds += [
                s["stop"] - s["start"] for s in task["startstops"] if s["action"] == "compute"
            ]
    return sorted(counts.values()), statistics.median(seconds)


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=60000)
    p.add_argument("--chunk-rows", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--overhead-calls", type=int, default=30)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = p.parse_args(argv)
    load_before = os.getloadavg()[0]

    net = network(args.dtype)
    clusters = {n: cluster(n) for n in (1, 2)}
    try:
        data = {}
        for n, (_, client) in clusters.items():
            client.wait_for_workers(n, timeout=60)
            X, T = client.persist(list(dask_data(args.rows, args.chunk_rows, args.dtype)))
            client.compute([X.sum(), T.sum()], sync=True)  # every chunk is in memory now
            client.rebalance()  # the same amount of data on each worker
            data[n] = (X, T)
            sizes = client.nbytes(summary=False)
            held = [sum(sizes.get(k, 0) for k in keys) / 1e6 for keys in client.has_what().values()]
            print(f"{n} worker(s): MB held per worker {sorted(held)}", file=sys.stderr)
        X_host, T_host = (a.compute(scheduler=clusters[1][1].get) for a in data[1])
        X_mem, T_mem = nnxp.asarray(X_host), nnxp.asarray(T_host)

        def call(n: int):
            X, T = data[n]
            return nnxp.dask.loss_and_gradient(
                net, X, T, "cross_entropy", check_finite=False, client=clusters[n][1], timeout=600
            )

        def in_process():
            return net.loss_and_gradient(X_mem, T_mem, "cross_entropy", check_finite=False)

        value1, grads1 = call(1)  # warm-up, and the three agree
        value2, _ = call(2)
        value0, grads0 = in_process()
        error = max(
            float(np.max(np.abs(nnxp.to_numpy(g[k]) - nnxp.to_numpy(g0[k]))))
            / float(np.max(np.abs(nnxp.to_numpy(g0[k]))))
            for g, g0 in zip(grads1, grads0)
            for k in g0
        )
        times: dict[str, list[float]] = {"1": [], "2": [], "mem": []}
        for _ in range(args.rounds):
            times["1"].append(timed(lambda: call(1)))
            times["2"].append(timed(lambda: call(2)))
            times["mem"].append(timed(in_process))
        speedups = [a / b for a, b in zip(times["1"], times["2"])]
        tasks = {n: chunk_tasks(clusters[n][1], lambda n=n: call(n)) for n in (1, 2)}

        _, client = clusters[2]
        tiny_X = da.from_array(X_host[:64], chunks=(32, -1))
        tiny_T = da.from_array(T_host[:64], chunks=(32, -1))
        tiny_X, tiny_T = client.persist([tiny_X, tiny_T])
        ways = {
            "scattered (client=)": {"client": client},
            "graph key (default client)": {"scheduler": client.get},
        }
        overhead: dict[str, list[float]] = {k: [] for k in ways}
        for _ in range(2):
            for kwargs in ways.values():  # warm-up
                nnxp.dask.loss_and_gradient(net, tiny_X, tiny_T, "cross_entropy", **kwargs)
        for _ in range(args.overhead_calls):
            for name, kwargs in ways.items():
                overhead[name].append(
                    timed(
                        lambda kwargs=kwargs: nnxp.dask.loss_and_gradient(
                            net, tiny_X, tiny_T, "cross_entropy", check_finite=False, **kwargs
                        )
                    )
                )
    finally:
        for local, client in clusters.values():
            client.close()
            local.close()

    def ms(values):
        return f"{1e3 * statistics.median(values):.0f} ms"

    chunks = -(-args.rows // args.chunk_rows)
    print(
        f"\nnnxp.dask full-batch gradient, {args.rows}x{SIZES[0]} {args.dtype}, "
        f"{'-'.join(map(str, SIZES))} (relu, softmax + cross_entropy), {chunks} chunks of "
        f"{args.chunk_rows} rows; LocalCluster, processes, 1 thread each; median of "
        f"{args.rounds} interleaved rounds; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after\n"
    )
    print("| measure | value |")
    print("| --- | --- |")
    print(f"| in-process `net.loss_and_gradient` (1 thread) | {ms(times['mem'])} |")
    print(f"| `nnxp.dask.loss_and_gradient`, 1 worker | {ms(times['1'])} |")
    print(f"| `nnxp.dask.loss_and_gradient`, 2 workers | {ms(times['2'])} |")
    print(
        f"| speedup 2 workers vs 1 (target >= 1.6) | {statistics.median(speedups):.2f} "
        f"(rounds: {', '.join(f'{s:.2f}' for s in speedups)}) |"
    )
    print(f"| chunk tasks per worker in one 2-worker call | {', '.join(map(str, tasks[2][0]))} |")
    print(
        f"| one chunk's compute time, 1 worker / 2 workers (equal when each worker has a core) "
        f"| {1e3 * tasks[1][1]:.0f} ms / {1e3 * tasks[2][1]:.0f} ms |"
    )
    for name, values in overhead.items():
        print(f"| per-call overhead, 64 rows in 2 chunks, weights {name} | {ms(values)} |")
    print(f"| max relative gradient difference, dask vs in-process | {error:.1e} |")
    print(f"| loss (1 worker, 2 workers, in-process) | {value1:.6f}, {value2:.6f}, {value0:.6f} |")


if __name__ == "__main__":
    main()
