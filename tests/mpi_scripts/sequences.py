"""Distributed fit of padded sequences vs nnxp's own fit, in float64.

Embedding + LSTM(return_sequences=True) + Dense tagging: the loss is the mean over the real
timesteps of each GLOBAL batch, so each rank's count of real steps goes through the
allreduce. Two runs: an explicit ``sequence_mask`` with a 4-element ``validation_data``,
and ``Embedding(mask_zero=True)`` (derived masks) with a dict ``validation_data``.

Usage: mpiexec -n K python sequences.py BACKEND OUT.json
"""

from __future__ import annotations

import sys

import numpy as np
from _shared import backend_from_argv, bounds, host_weights, max_relative, report
from mpi4py import MPI

import nnxp
import nnxp.distributed

backend_from_argv()
comm = MPI.COMM_WORLD
N, STEPS, TOKENS, CLASSES = 61, 6, 8, 3


def padded(n: int, seed: int):
    """Tokens (n, STEPS), 0 after each length (1..STEPS); labels -1 on padded steps."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, STEPS + 1, n)
    M = np.arange(STEPS)[None, :] < lengths[:, None]
    tokens = np.where(M, rng.integers(1, TOKENS, (n, STEPS)), 0)
    labels = np.where(M, (tokens + np.roll(tokens, 1, axis=1)) % CLASSES, -1)
    return tokens, labels, M


def network(mask_zero: bool, seed: int = 0):
    layers = [
        nnxp.Embedding(TOKENS, 4, mask_zero=mask_zero),
        nnxp.LSTM(4, 6, return_sequences=True),
        nnxp.Dense(6, CLASSES, "softmax"),
    ]
    return nnxp.Sequential(layers, seed=seed, dtype="float64")


X, T, M = padded(N, 1)
Xv, Tv, Mv = padded(20, 2)
lo, hi = bounds(N, comm.rank, comm.size)
vlo, vhi = bounds(20, comm.rank, comm.size)
a = nnxp.asarray
options = dict(loss="cross_entropy", epochs=3, batch_size=16, seed=7, progress=False)
result: dict = {"world": comm.size}
for mask_zero in (False, True):
    key = "derived" if mask_zero else "explicit"
    net = network(mask_zero, seed=comm.rank)  # rank 0's weights are broadcast
    shard = {} if mask_zero else {"sequence_mask": a(M[lo:hi])}
    if mask_zero:
        val: object = {"X": a(Xv[vlo:vhi]), "T": a(Tv[vlo:vhi])}
    else:
        val = (a(Xv[vlo:vhi]), a(Tv[vlo:vhi]), None, a(Mv[vlo:vhi]))
    hist = nnxp.distributed.fit(
        net, a(X[lo:hi]), a(T[lo:hi]), comm=comm, validation_data=val, **shard, **options
    )
    if comm.rank == 0:
        reference = network(mask_zero)
        whole = {} if mask_zero else {"sequence_mask": a(M)}
        whole_val = (a(Xv), a(Tv)) if mask_zero else (a(Xv), a(Tv), None, a(Mv))
        reference.fit(a(X), a(T), validation_data=whole_val, **whole, **options)
        result[f"{key}_vs_fit"] = max_relative(host_weights(net), host_weights(reference))
        result[f"{key}_history"] = hist.history
        result[f"{key}_history_fit"] = reference.history.history
if comm.rank == 0:
    # the mask acts: without it (every step counted) the weights differ
    plain = network(False)
    plain.fit(a(X), a(np.maximum(T, 0)), **options)
    result["unmasked_vs_masked"] = max_relative(host_weights(plain), host_weights(net))
    report(sys.argv[2], result)
