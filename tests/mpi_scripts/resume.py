"""Checkpoint, fault, resume: an interrupted-and-resumed run ends exactly where an
uninterrupted one does (dropout, shuffling, Adam, validation, early stopping).

Usage: mpiexec -n K python resume.py BACKEND OUT.json CHECKPOINT_PATH
"""

from __future__ import annotations

import sys

import numpy as np
from _shared import backend_from_argv, bounds, data, host_weights, network, report
from mpi4py import MPI

import nnxp
import nnxp.distributed

backend_from_argv()
comm = MPI.COMM_WORLD
out, path = sys.argv[2], sys.argv[3]
X, T = data()
lo, hi = bounds(X.shape[0], comm.rank, comm.size)
Xs, Ts = nnxp.asarray(X[lo:hi]), nnxp.asarray(T[lo:hi])
Xv, Tv = X[::4], T[::4]
vlo, vhi = bounds(Xv.shape[0], comm.rank, comm.size)
options = dict(
    loss="cross_entropy",
    optimizer="adam",
    epochs=4,
    batch_size=32,
    seed=11,
    progress=False,
    validation_data=(nnxp.asarray(Xv[vlo:vhi]), nnxp.asarray(Tv[vlo:vhi])),
    early_stopping=nnxp.EarlyStopping(patience=10),
    checkpoint_every=5,
)

full = network(dropout=0.3)
hist_full = nnxp.distributed.fit(full, Xs, Ts, comm=comm, **options)


def fail_at(net, call: int, rank: int) -> None:
    """Make ``rank``'s training forward pass number ``call`` raise."""
    step, calls = net._loss_and_delta, [0]

    def wrapped(*args, **kwargs):
        calls[0] += 1
        if comm.rank == rank and calls[0] == call:
            raise RuntimeError("injected fault")
        return step(*args, **kwargs)

    net._loss_and_delta = wrapped


interrupted = network(dropout=0.3)
fail_at(interrupted, call=13, rank=comm.size - 1)
try:
    nnxp.distributed.fit(interrupted, Xs, Ts, comm=comm, checkpoint=path, **options)
    raised = None
except Exception as exc:  # the test checks which
    raised = f"{type(exc).__name__}: {exc}"

resumed = network(dropout=0.3, seed=99)  # other initial weights: all must come from the file
hist_resumed = nnxp.distributed.fit(
    resumed, Xs, Ts, comm=comm, resume=path, checkpoint=path, **options
)
same = all(np.array_equal(a, b) for a, b in zip(host_weights(full), host_weights(resumed)))
raised_all = comm.gather(raised)
equal_all = comm.gather(same)
if comm.rank == 0:
    report(
        out,
        {
            "raised": raised_all,
            "weights_equal": equal_all,
            "history_full": hist_full.history,
            "history_resumed": hist_resumed.history,
            "steps": [hist_full.steps, hist_resumed.steps],
            "interrupted_differs": not all(
                np.array_equal(a, b) for a, b in zip(host_weights(full), host_weights(interrupted))
            ),
        },
    )
