"""Distributed fit on every rank vs one process (comm of size 1, and nnxp's own fit).

Usage: mpiexec -n K python equality.py BACKEND OUT.json
"""

from __future__ import annotations

import sys

import numpy as np
from _shared import backend_from_argv, bounds, data, host_weights, max_relative, network, report
from mpi4py import MPI

import nnxp
import nnxp.distributed
import nnxp.training

name = backend_from_argv()
comm = MPI.COMM_WORLD
X, T = data()
lo, hi = bounds(X.shape[0], comm.rank, comm.size)
options = dict(loss="cross_entropy", epochs=3, batch_size=32, seed=5, progress=False)
net = network(seed=comm.rank)  # rank 0's initial weights are broadcast
vlo, vhi = bounds(X[::3].shape[0], comm.rank, comm.size)
val = (nnxp.asarray(X[::3][vlo:vhi]), nnxp.asarray(T[::3][vlo:vhi]))
hist = nnxp.distributed.fit(
    net,
    nnxp.asarray(X[lo:hi]),
    nnxp.asarray(T[lo:hi]),
    comm=comm,
    optimizer="adam",
    validation_data=val,
    **options,
)
# a softmax mask with some rows fully masked: the global count comes through the allreduce
rng = np.random.default_rng(2)
M = rng.random(T.shape) < 0.6
M[T == 1] = True
M[::7] = False
TM = np.where(M.any(axis=1, keepdims=True), T, 0.0)
masked = network(seed=0)
nnxp.distributed.fit(
    masked,
    nnxp.asarray(X[lo:hi]),
    nnxp.asarray(TM[lo:hi]),
    comm=comm,
    mask=nnxp.asarray(M[lo:hi]),
    **options,
)
# a callback that asks to stop on the last rank only stops every rank after that epoch
stopped = nnxp.distributed.fit(
    network(seed=0),
    nnxp.asarray(X[lo:hi]),
    nnxp.asarray(T[lo:hi]),
    comm=comm,
    callbacks=[lambda epoch, logs: comm.rank == comm.size - 1],
    **options,
)
stopped_all = comm.allgather((stopped.steps, stopped.epoch, stopped.stopped_epoch))
result = {
    "world": comm.size,
    "steps": hist.steps,
    "history": hist.history,
    "callback_stop": stopped_all,
}
if comm.rank == 0:
    single = network(seed=0)
    hist1 = nnxp.distributed.fit(
        single, nnxp.asarray(X), nnxp.asarray(T), comm=MPI.COMM_SELF, optimizer="adam", **options
    )
    result["vs_comm_self"] = max_relative(host_weights(net), host_weights(single))
    result["loss_self"] = hist1.history["loss"]
    # nnxp's own fit with the same batch order: unshuffled always; shuffled once training.py
    # draws its permutation on the host with numpy.random.default_rng(seed)
    for shuffle in (False, True):
        a, b = network(seed=0), network(seed=0)
        nnxp.distributed.fit(
            a, nnxp.asarray(X), nnxp.asarray(T), comm=MPI.COMM_SELF, shuffle=shuffle, **options
        )
        b.fit(nnxp.asarray(X), nnxp.asarray(T), shuffle=shuffle, **options)
        result[f"vs_fit_shuffle_{shuffle}"] = max_relative(host_weights(a), host_weights(b))
    source = open(nnxp.training.__file__).read()
    result["training_has_host_permutation"] = "host_generator" in source or "default_rng" in source
    reference = network(seed=0)
    reference.fit(nnxp.asarray(X), nnxp.asarray(TM), mask=nnxp.asarray(M), **options)
    result["masked_vs_fit"] = max_relative(host_weights(masked), host_weights(reference))
    # a distributed validation agrees with the whole validation set on one process
    result["val_loss"] = hist.history["val_loss"]
    result["val_loss_single"] = [
        nnxp.distributed.fit(
            network(seed=0),
            nnxp.asarray(X),
            nnxp.asarray(T),
            comm=MPI.COMM_SELF,
            validation_data=(nnxp.asarray(X[::3]), nnxp.asarray(T[::3])),
            **options,
        ).history["val_loss"]
    ][0]
    report(sys.argv[2], result)
