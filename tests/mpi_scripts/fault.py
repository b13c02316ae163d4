"""A rank that dies (``os._exit``) or hangs mid-training, or never calls fit: the job must
end, not hang.

Usage: mpiexec -n K python fault.py BACKEND {die,hang,late} CHECKPOINT_PATH
"""

from __future__ import annotations

import os
import sys
import time

from _shared import backend_from_argv, bounds, data, network
from mpi4py import MPI

import nnxp
import nnxp.distributed

backend_from_argv()
mode, path = sys.argv[2], sys.argv[3]
comm = MPI.COMM_WORLD
X, T = data()
lo, hi = bounds(X.shape[0], comm.rank, comm.size)
net = network()
step, calls = net._loss_and_delta, [0]


def wrapped(*args, **kwargs):
    calls[0] += 1  # one call per training step of this rank
    if comm.rank == comm.size - 1 and calls[0] == 8:
        if mode == "die":
            os._exit(9)  # no exception, no MPI_Finalize: the process is gone
        time.sleep(120)  # hangs: the others' watchdog must abort the job
    return step(*args, **kwargs)


net._loss_and_delta = wrapped
if mode == "late" and comm.rank == comm.size - 1:
    time.sleep(120)  # never reaches fit: the others wait in its first collective
nnxp.distributed.fit(
    net,
    nnxp.asarray(X[lo:hi]),
    nnxp.asarray(T[lo:hi]),
    comm=comm,
    loss="cross_entropy",
    epochs=3,
    batch_size=32,
    seed=3,
    progress=False,
    checkpoint=path,
    checkpoint_every=3,
    timeout=None if mode == "die" else 3.0,
)
print("finished without a fault: the test must fail", flush=True)
