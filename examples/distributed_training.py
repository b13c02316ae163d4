"""Data-parallel training over MPI: each rank trains on its shard of the digits.

    mpiexec -n 2 python examples/distributed_training.py [--backend torch] [--epochs 10]
    mpiexec -n 2 python examples/distributed_training.py --checkpoint run.npz   # then
    mpiexec -n 2 python examples/distributed_training.py --checkpoint run.npz --resume run.npz

Every rank loads its own contiguous block of the training rows (here: slices the digits),
builds the same network (rank 0's weights are broadcast), and calls
``nnxp.distributed.fit`` with the GLOBAL batch size: the result is the network one process
would train with the same seed. Only rank 0 prints and writes.
"""

from __future__ import annotations

import time

from _common import parser, use
from mpi4py import MPI

import nnxp
import nnxp.distributed
from nnxp import datasets


def shard(n: int, rank: int, size: int) -> slice:
    """This rank's contiguous block of ``n`` rows (the first ``n % size`` ranks get one more)."""
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def main(argv=None) -> dict:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32, help="the global batch size")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--checkpoint", default=None, help="write a checkpoint here every epoch")
    p.add_argument("--resume", default=None, help="continue from this checkpoint")
    args = p.parse_args(argv)
    use(args)
    comm = MPI.COMM_WORLD
    rank = comm.rank

    X_train, X_test, T_train, T_test = datasets.digits(seed=args.seed)
    rows, test_rows = (
        shard(X_train.shape[0], rank, comm.size),
        shard(X_test.shape[0], rank, comm.size),
    )
    X, T = X_train[rows, ...], T_train[rows, ...]
    validation = (X_test[test_rows, ...], T_test[test_rows, ...])
    net = nnxp.Sequential(
        [nnxp.Dense(64, 64, "relu"), nnxp.Dense(64, 10, "softmax")], seed=args.seed
    )
    if rank == 0:
        print(f"{comm.size} ranks, backend {nnxp.get_backend().name}: {net}")
        print(f"rank 0 holds {X.shape[0]} of {X_train.shape[0]} training rows")

    def report(epoch, logs):
        if rank == 0:
            print(
                f"epoch {epoch + 1:3d}/{args.epochs}  loss {logs['loss']:.4f}  "
                f"test loss {logs['val_loss']:.4f}  test accuracy {logs['val_accuracy']:.4f}",
                flush=True,
            )

    start = time.perf_counter()
    history = nnxp.distributed.fit(
        net,
        X,
        T,
        comm=comm,
        loss="cross_entropy",
        optimizer=nnxp.Adam(args.lr),
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        validation_data=validation,
        checkpoint=args.checkpoint,
        resume=args.resume,
        progress=False,
        callbacks=[report],
        timeout=60.0,
    )
    seconds = time.perf_counter() - start
    if rank == 0:
        accuracy = history.history["val_accuracy"][-1] if history.epoch else float("nan")
        print(
            f"test accuracy {accuracy:.4f} after {args.epochs} epochs in {seconds:.2f} s "
            f"({history.allreduce_seconds:.3f} s in {history.steps} allreduces on rank 0)"
        )
    return history.history


if __name__ == "__main__":
    main()
