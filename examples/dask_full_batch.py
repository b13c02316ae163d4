"""Full-batch L-BFGS on the 8x8 digits held as a row-chunked dask array, on a Dask cluster.

    python examples/dask_full_batch.py                      # starts a 2-worker LocalCluster
    python examples/dask_full_batch.py --scheduler tcp://10.0.0.5:8786   # a real cluster
    python examples/dask_full_batch.py --backend torch --maxiter 200
    python examples/dask_full_batch.py --in-process --maxiter 30   # quick: workers as threads

The chunks are computed where they live (NumPy on each worker; the weights are scattered to
every worker once per L-BFGS evaluation), the exact full-batch loss and gradient come back to
this process, and ``scipy.optimize.minimize(method="L-BFGS-B")`` takes the step. The network
lives on ``--backend``. Prints the training loss, the test accuracy and the wall time.
A real cluster's workers need the same nnxp (and its dependencies) installed.
"""

from __future__ import annotations

import time

import dask.array as da
from _common import parser, use

import nnxp
import nnxp.dask
from nnxp import datasets


def main(argv=None) -> dict:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--scheduler", default=None, help="address of a running Dask scheduler")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster workers (1 thread each)")
    p.add_argument(
        "--in-process",
        action="store_true",
        help="LocalCluster workers as threads of this process (quick to start; for tests)",
    )
    p.add_argument("--chunk-rows", type=int, default=256)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--maxiter", type=int, default=150)
    args = p.parse_args(argv)
    use(args, float64=True)

    from distributed import Client, LocalCluster

    cluster = None
    if args.scheduler is None:
        cluster = LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=not args.in_process,
            **({} if args.in_process else {"host": "127.0.0.1"}),  # loopback only
            dashboard_address=":0",
            silence_logs=40,
        )
    client = Client(args.scheduler or cluster, timeout=60)
    try:
        X_train, X_test, T_train, T_test = datasets.digits(seed=args.seed, dtype="float64")
        # the data side: host chunks of whole rows, persisted in the workers' memory
        X = da.from_array(nnxp.to_numpy(X_train), chunks=(args.chunk_rows, -1))
        T = da.from_array(nnxp.to_numpy(T_train), chunks=(args.chunk_rows, -1))
        X, T = client.persist([X, T])
        net = nnxp.Sequential(
            [nnxp.Dense(64, args.hidden, "tanh"), nnxp.Dense(args.hidden, 10, "softmax")],
            seed=args.seed,
            dtype="float64",
        )
        print(f"backend {nnxp.get_backend().name}: {net}")
        print(f"scheduler {client.scheduler.address}, {len(client.nthreads())} workers")
        print(f"{X.shape[0]} training images in {X.numblocks[0]} chunks")

        start = time.perf_counter()
        result = nnxp.dask.fit_lbfgs(
            net, X, T, "cross_entropy", maxiter=args.maxiter, client=client, timeout=120
        )
        seconds = time.perf_counter() - start
        train = nnxp.dask.evaluate(net, X, T, "cross_entropy", client=client, timeout=120)
        test = net.evaluate(X_test, T_test, "cross_entropy")
        print(
            f"L-BFGS: {result.nit} iterations, {result.nfev} loss+gradient evaluations in "
            f"{seconds:.2f} s ({result.message})"
        )
        print(f"training loss {train['loss']:.4f}, training accuracy {train['accuracy']:.4f}")
        print(f"test accuracy {test['accuracy']:.4f}")
        return {"accuracy": test["accuracy"], "seconds": seconds, "nit": result.nit}
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


if __name__ == "__main__":
    main()
