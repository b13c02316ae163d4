"""Data-parallel training over MPI: each rank holds a shard of the rows and a copy of the network.

Run the same script on every rank (``mpiexec -n 4 python train.py``)::

    from mpi4py import MPI
    import nnxp, nnxp.distributed

    comm = MPI.COMM_WORLD
    X_shard, T_shard = ...  # this rank's contiguous block of the global rows (rank order)
    net = nnxp.Sequential([...], seed=0)  # rank 0's initial weights are broadcast
    history = nnxp.distributed.fit(net, X_shard, T_shard, comm=comm, loss="cross_entropy",
                                   optimizer="sgd", epochs=10, batch_size=1024, seed=0)

How a step runs (the Horovod / ChainerMN scheme, with the batch order of single-process fit):

- Every rank draws the same global permutation of ``0..N-1`` on the host,
  ``numpy.random.default_rng(seed).permutation(N)`` once per epoch; a global batch is the next
  ``batch_size`` indices. Each rank trains on the rows of that batch it holds (the number
  differs from rank to rank and may be 0), so no per-rank batch division is configured.
- Each rank packs ``count * gradient`` of its rows (the gradient SUM), its loss sum, its
  count and an ok-flag into ONE flat buffer; ONE ``Allreduce`` sums it; every rank divides by
  the global count and takes the same optimizer step. In float64 the weights equal
  single-process training with the same batch order to rounding (<= 1e-12 relative).
- Buffers are staged through host NumPy once per step for torch and array-api-strict, and for
  CuPy unless ``cuda_aware=True`` (mpi4py cannot ask MPICH whether it was built CUDA-aware).
- Dropout: each rank draws the masks of its own rows from ``net.rng``, reseeded every step
  from ``(seed, rank, step)``: deterministic per rank, so a resumed run repeats them (the
  masks differ from single-process ``fit``'s, so with dropout only the batch order matches).
- Failures: an exception on one rank sets its flag in the next allreduce; every rank then
  raises at the same step (the failing rank its own exception, the others
  :class:`DistributedError` naming it), each with the weights of the last completed step. A
  rank that dies ends the job through ``mpiexec``; ``timeout=`` aborts the job when a
  collective waits longer than that (a hung rank). Only rank 0 shows the progress bar and
  writes checkpoints (atomically).

The package: :mod:`~nnxp.distributed.train` (``fit``), :mod:`~nnxp.distributed.agree` (the
collective input checks), :mod:`~nnxp.distributed.comm` (watchdog, guarded communicator, the
flat-buffer allreduce, failure propagation), :mod:`~nnxp.distributed.buffers` (what the
buffers hold), :mod:`~nnxp.distributed.loop` (the epoch loop) and
:mod:`~nnxp.distributed.checkpoint` (state files and resume).
"""

from __future__ import annotations

from ..training import EarlyStopping, History
from .buffers import CLASSIFICATION
from .checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_KEY, STATE_SUFFIX, checkpoint_info, state_path
from .comm import COLLECTIVES, DistributedError
from .train import fit

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_KEY",
    "CLASSIFICATION",
    "COLLECTIVES",
    "STATE_SUFFIX",
    "DistributedError",
    "EarlyStopping",
    "History",
    "checkpoint_info",
    "fit",
    "state_path",
]
