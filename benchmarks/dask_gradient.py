"""Time nnxp.dask's full-batch loss and gradient on 1 and 2 Dask workers, interleaved.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/dask_gradient.py
    python benchmarks/dask_gradient.py --rounds 9 --rows 60000 --chunk-rows 5000

Two LocalClusters (processes, 1 thread each, BLAS pinned to 1 thread in every worker) run
side by side: one with 1 worker, one with 2. Each holds the same random float32 data
(60000x784, one-hot targets of 10 classes), generated on its workers in row chunks and
persisted there, chunk ``i`` of X and of T on worker ``i % n_workers`` (the same number of
chunks on each worker, X and T of a chunk together). One call is
``nnxp.dask.loss_and_gradient`` of a 784-256-256-10 (relu, softmax) network,
``check_finite=False`` (L-BFGS checks once, then calls it so). Rounds alternate 1 worker,
2 workers, in-process ``net.loss_and_gradient`` (the same data in this process's memory),
after a warm-up; the speedup is the median of the per-round ratios. The per-call overhead is
the median call time on a tiny data set (64 rows, 2 chunks) on the 2-worker cluster, for the
two ways of sending the weights: scattered (``client=``) and as a shared graph key
(``scheduler=client.get``, what a default client uses). One call per cluster under the task
stream shows where the time goes: chunks held and seconds computed per worker, the lead-in
before the first task, the tail after the last, and the bytes fetched between workers.

Both clusters run with Dask's housekeeping turned down (``--dask-defaults`` keeps Dask's
defaults): no statistical profiler in the workers (it samples the running task every
10 ms) and an event-loop health check once a second instead of every 20 ms. On 2 cores the
two clusters' housekeeping (~0.23 s of CPU a second at the defaults, half of it in this
process's schedulers and nannies, ~0.1 s with these settings) competes with the
2-worker call only: the 1-worker call leaves it a core. Prints a Markdown table; the
machine's load average is in its caption (the speedup means little on a busy machine).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

THREADS = dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), "1")
os.environ.update(THREADS)  # this process (the in-process rounds) and, inherited, the workers

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


def placed(client, arrays: list[da.Array]) -> list[da.Array]:
    """``arrays`` (same row chunks) computed and kept in the cluster with row chunk ``i`` of
    every array on worker ``i % n_workers``: each worker holds the same number of chunks,
    and a chunk's X and T sit together (``client.rebalance`` moves keys one by one and can
    part them, so that every call then ships data between the workers)."""
    workers = sorted(client.scheduler_info()["workers"])
    out = []
    for a in arrays:
        blocks = []
        for i in range(a.numblocks[0]):
            block = a.blocks[i]
            future = client.compute(block, workers=[workers[i % len(workers)]])
            blocks.append(da.from_delayed(future, block.shape, dtype=a.dtype, meta=a._meta))
        out.append(da.concatenate(blocks, axis=0))
    out = client.persist(out)
    client.compute([a.sum() for a in out], sync=True)  # every chunk is in memory now
    return out


QUIET = {  # Dask's housekeeping, turned down for both clusters alike (see the module's doc)
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
}


def _threads_env() -> dict:
    return {k: os.environ.get(k) for k in THREADS}


def cluster(n_workers: int, quiet: bool = True):
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set(QUIET if quiet else {}):
        local = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",
            silence_logs=40,
            env=THREADS,
        )
        client = Client(local, set_as_default=False, timeout=60)
    return local, client


def _received_since(start: float, dask_worker=None) -> int:
    """Bytes this worker fetched from other workers since ``start`` (time.time())."""
    return sum(e["total"] for e in dask_worker.transfer_incoming_log if e["start"] >= start)


def where_time_goes(client, call, X) -> dict:
    """One ``call`` under the task stream: the row chunks of ``X`` each worker holds, the
    seconds each worker computed (``busy``: chunks, then the additions), the call's wall
    time, the lead-in (call start to the first task's start: weights scattered, graph sent),
    the tail (the last task's end to the call's return: result back, final divide) and the
    bytes the workers fetched from one another during the call (partial sums; data would
    show here as ~16 MB a chunk)."""
    from distributed import get_task_stream

    held: dict[str, int] = {}
    for workers in client.who_has(X).values():
        for worker in workers:
            held[worker] = held.get(worker, 0) + 1
    with get_task_stream(client=client) as stream:
        start = time.time()
        call()
        stop = time.time()
    busy = dict.fromkeys(held, 0.0)
    spans = []
    for task in stream.data:
        for s in task["startstops"]:
            if s["action"] == "compute":
                busy[task["worker"]] = busy.get(task["worker"], 0.0) + s["stop"] - s["start"]
                spans.append((s["start"], s["stop"]))
    received = client.run(_received_since, start)
    return {
        "held": [held[w] for w in sorted(held)],
        "busy": [busy[w] for w in sorted(held)],
        "wall": stop - start,
        "lead_in": min(a for a, _ in spans) - start,
        "tail": stop - max(b for _, b in spans),
        "received": sum(received.values()),
    }


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
    p.add_argument(
        "--dask-defaults",
        action="store_true",
        help="keep Dask's housekeeping defaults (worker profiler, 20 ms event-loop ticks)",
    )
    args = p.parse_args(argv)
    load_before = os.getloadavg()[0]

    net = network(args.dtype)
    clusters = {n: cluster(n, quiet=not args.dask_defaults) for n in (1, 2)}
    try:
        data = {}
        for n, (_, client) in clusters.items():
            client.wait_for_workers(n, timeout=60)
            X, T = placed(client, list(dask_data(args.rows, args.chunk_rows, args.dtype)))
            data[n] = (X, T)
            sizes = client.nbytes(summary=False)
            held = [sum(sizes.get(k, 0) for k in keys) / 1e6 for keys in client.has_what().values()]
            print(f"{n} worker(s): MB held per worker {sorted(held)}", file=sys.stderr)
            for worker, env in client.run(_threads_env).items():
                if env != THREADS:
                    raise RuntimeError(f"worker {worker} is not pinned to 1 BLAS thread: {env}")
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
        stream = {
            n: where_time_goes(clusters[n][1], lambda n=n: call(n), data[n][0]) for n in (1, 2)
        }

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
        f"{args.chunk_rows} rows; LocalCluster, processes, 1 thread each, "
        f"{'Dask defaults' if args.dask_defaults else 'no worker profiler, 1 s ticks'}; median of "
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
    for n in (1, 2):
        st = stream[n]
        per_chunk = ", ".join(f"{1e3 * b / h:.0f}" for b, h in zip(st["busy"], st["held"]))
        print(
            f"| one {n}-worker call: chunks held per worker; busy per worker; wall; lead-in; "
            f"tail; fetched between workers | {', '.join(map(str, st['held']))}; "
            f"{', '.join(f'{1e3 * b:.0f}' for b in st['busy'])} ms ({per_chunk} ms a chunk); "
            f"{1e3 * st['wall']:.0f} ms; {1e3 * st['lead_in']:.0f} ms; {1e3 * st['tail']:.0f} ms; "
            f"{st['received'] / 1e6:.1f} MB |"
        )
    for name, values in overhead.items():
        print(f"| per-call overhead, 64 rows in 2 chunks, weights {name} | {ms(values)} |")
    print(f"| max relative gradient difference, dask vs in-process | {error:.1e} |")
    print(f"| loss (1 worker, 2 workers, in-process) | {value1:.6f}, {value2:.6f}, {value0:.6f} |")


if __name__ == "__main__":
    main()
