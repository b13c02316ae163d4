"""Bad input refused on every rank before training; each rank reports what it raised.

Usage: mpiexec -n 2 python bad_input.py BACKEND OUT.json
"""

from __future__ import annotations

import sys

from _shared import backend_from_argv, bounds, data, host_weights, network, report
from mpi4py import MPI

import nnxp
import nnxp.distributed

backend_from_argv()
comm = MPI.COMM_WORLD
X, T = data()
lo, hi = bounds(X.shape[0], comm.rank, comm.size)
options = dict(loss="cross_entropy", epochs=1, batch_size=16, seed=0, progress=False)
last = comm.rank == comm.size - 1


def attempt(name, Xs, Ts, comm=comm, **extra):
    net = network()
    before = host_weights(net)
    try:
        nnxp.distributed.fit(net, Xs, Ts, comm=comm, **{**options, **extra})
        outcome = "no error"
    except Exception as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    untouched = all((a == b).all() for a, b in zip(before, host_weights(net)))
    return name, outcome, untouched


Xs, Ts = X[lo:hi], T[lo:hi]
cases = [
    # rank (last) holds 6 features instead of 7
    attempt("features", nnxp.asarray(Xs[:, :6] if last else Xs), nnxp.asarray(Ts)),
    # same features, another dtype on one rank
    attempt(
        "dtype",
        nnxp.asarray(Xs, dtype="float32" if last else "float64"),
        nnxp.asarray(Ts),
    ),
    # different global batch size on one rank
    attempt("batch_size", nnxp.asarray(Xs), nnxp.asarray(Ts), batch_size=8 if last else 16),
    # an empty shard
    attempt("empty", nnxp.asarray(Xs[:0] if last else Xs), nnxp.asarray(Ts[:0] if last else Ts)),
    # not a communicator (same on every rank)
    attempt("comm", nnxp.asarray(Xs), nnxp.asarray(Ts), comm="world"),
]
gathered = comm.gather(cases)
if comm.rank == 0:
    report(sys.argv[2], {"ranks": gathered})
