"""nnxp.dask: the loss, gradient, prediction and evaluation of row-chunked dask arrays equal
the in-memory ones for any chunking and scheduler; L-BFGS on them trains; a killed worker
changes nothing.

Chunks are NumPy arrays, so the workers compute with NumPy; the results land on the
network's backend (the ``backend`` fixture) and are compared with that backend's in-memory
``net.loss_and_gradient``: float64, max |difference| <= 1e-12 * max |value| per array.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")
pytest.importorskip("scipy")

from helpers import host  # noqa: E402

import nnxp  # noqa: E402
import nnxp.dask as nd  # noqa: E402
import nnxp.dask.reduce as ndr  # noqa: E402
from nnxp.backend import array_library  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ACTIVATION = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid", "mse": "tanh"}
RAGGED = [(60,), (7, 13, 1, 39), (25, 25, 10), (1,) * 5 + (55,)]


def network(loss, n_in=6, n_out=4, dtype="float64", hidden=5):
    return nnxp.Sequential(
        [nnxp.Dense(n_in, hidden, "relu"), nnxp.Dense(hidden, n_out, ACTIVATION[loss])],
        seed=3,
        dtype=dtype,
    )


def data(loss, rng, n=60, n_in=6, n_out=4):
    """Host X and targets valid for ``loss``."""
    X = rng.standard_normal((n, n_in))
    if loss == "cross_entropy":
        T = np.eye(n_out)[rng.integers(0, n_out, n)]
    elif loss == "binary_cross_entropy":
        T = rng.integers(0, 2, (n, n_out)).astype(float)
    else:
        T = rng.standard_normal((n, n_out))
    return X, T


def rows(a, chunks):
    """A dask array of host ``a`` with the given row chunks (whole rows)."""
    return da.from_array(a, chunks=(chunks, *a.shape[1:]))


def close(a, b, rel=1e-12):
    a, b = host(a), host(b)
    assert a.shape == b.shape
    scale = max(float(np.max(np.abs(b))), 1e-300)
    assert float(np.max(np.abs(a - b))) <= rel * scale, float(np.max(np.abs(a - b))) / scale


def assert_same_result(got, expected, backend_name, rel=1e-12):
    (value, grads), (value0, grads0) = got, expected
    assert abs(value - value0) <= rel * abs(value0)
    assert [sorted(g) for g in grads] == [sorted(g) for g in grads0]
    for g, g0 in zip(grads, grads0):
        for k in g0:
            assert array_library(g[k]) == backend_name
            assert g[k].dtype == g0[k].dtype
            close(g[k], g0[k], rel)


# ---------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("scheduler", ["synchronous", "threads"])
@pytest.mark.parametrize("chunks", RAGGED)
@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy", "mse"])
def test_loss_and_gradient_equals_in_memory(backend, loss, chunks, scheduler, rng):
    net = network(loss)
    X, T = data(loss, rng)
    expected = net.loss_and_gradient(nnxp.asarray(X), nnxp.asarray(T), loss)
    got = nd.loss_and_gradient(net, rows(X, chunks), rows(T, chunks), loss, scheduler=scheduler)
    assert_same_result(got, expected, backend.name)


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(1, 39), max_size=8, unique=True), n=st.integers(1, 40))
def test_any_row_chunking_gives_the_in_memory_result(cuts, n):
    """Random chunk boundaries (1-row chunks, one chunk, ragged ends): the same result."""
    rng = np.random.default_rng(n)
    net = network("binary_cross_entropy")
    X, T = data("binary_cross_entropy", rng, n=n)
    bounds = sorted({c for c in cuts if c < n} | {0, n})
    chunks = tuple(b - a for a, b in zip(bounds[:-1], bounds[1:]))
    expected = net.loss_and_gradient(nnxp.asarray(X), nnxp.asarray(T), "binary_cross_entropy")
    got = nd.loss_and_gradient(
        net, rows(X, chunks), rows(T, chunks), "binary_cross_entropy", scheduler="sync"
    )
    assert_same_result(got, expected, "numpy")


def test_class_labels_of_sequences_equal_in_memory(backend, rng):
    """3-D inputs (samples x timesteps x features), integer labels, ragged row chunks."""
    net = network("cross_entropy")
    X = rng.standard_normal((23, 4, 6))
    labels = rng.integers(0, 4, (23, 4))
    expected = net.loss_and_gradient(nnxp.asarray(X), nnxp.asarray(labels), "cross_entropy")
    got = nd.loss_and_gradient(
        net, rows(X, (10, 10, 3)), rows(labels, (10, 10, 3)), "cross_entropy", scheduler="sync"
    )
    assert_same_result(got, expected, backend.name)


def test_mask_without_empty_rows_equals_in_memory(backend, rng):
    net = network("cross_entropy")
    X, _ = data("cross_entropy", rng, n=40)
    mask = rng.random((40, 4)) < 0.6
    mask[np.arange(40), rng.integers(0, 4, 40)] = True  # every row allows an output
    T = np.zeros((40, 4))
    for i in range(40):
        T[i, rng.choice(np.flatnonzero(mask[i]))] = 1.0
    expected = net.loss_and_gradient(
        nnxp.asarray(X), nnxp.asarray(T), "cross_entropy", mask=nnxp.asarray(mask)
    )
    chunks = (9, 30, 1)
    got = nd.loss_and_gradient(
        net, rows(X, chunks), rows(T, chunks), "cross_entropy", mask=rows(mask, chunks)
    )
    assert_same_result(got, expected, backend.name)


def test_fully_masked_rows_and_chunks_do_not_count(rng):
    """Rows with no allowed output (a whole chunk of them too) are left out of the mean,
    as the in-memory loss does."""
    net = network("cross_entropy")
    X, _ = data("cross_entropy", rng, n=30)
    mask = np.ones((30, 4), dtype=bool)
    mask[10:20] = False  # chunk 2 entirely masked
    mask[[2, 25]] = False
    T = np.eye(4)[rng.integers(0, 4, 30)] * mask
    expected = net.loss_and_gradient(
        nnxp.asarray(X), nnxp.asarray(T), "cross_entropy", mask=nnxp.asarray(mask)
    )
    got = nd.loss_and_gradient(
        net, rows(X, 10), rows(T, 10), "cross_entropy", mask=rows(mask, 10), scheduler="sync"
    )
    assert_same_result(got, expected, "numpy")
    metrics = nd.evaluate(net, rows(X, 10), rows(T, 10), "cross_entropy", mask=rows(mask, 10))
    in_memory = net.evaluate(
        nnxp.asarray(X), nnxp.asarray(T), "cross_entropy", mask=nnxp.asarray(mask)
    )
    assert metrics == pytest.approx(in_memory, rel=1e-12)
    with pytest.raises(ValueError, match="every row of the data is masked"):
        nd.loss_and_gradient(
            net, rows(X, 10), rows(T * 0, 10), "cross_entropy", mask=rows(mask & False, 10)
        )


def test_penalties_and_a_rank_changing_network_equal_in_memory(backend, rng):
    """Regularization penalties sit in every chunk's mean and still combine exactly; a
    pooling layer turns (n, steps, features) into (n, features) and the chunks follow it."""
    net = nnxp.Sequential(
        [
            nnxp.Dense(6, 5, "tanh", kernel_regularizer="l2"),
            nnxp.GlobalAveragePooling1D(),
            nnxp.Dense(5, 4, "softmax", bias_regularizer="l1"),
        ],
        dtype="float64",
    )
    X = rng.standard_normal((31, 3, 6))
    T = np.eye(4)[rng.integers(0, 4, 31)]
    Xm, Tm = nnxp.asarray(X), nnxp.asarray(T)
    expected = net.loss_and_gradient(Xm, Tm, "cross_entropy")
    chunks = (12, 12, 7)
    got = nd.loss_and_gradient(net, rows(X, chunks), rows(T, chunks), "cross_entropy")
    assert_same_result(got, expected, backend.name)
    Y = nd.predict(net, rows(X, chunks))
    assert Y.chunks == (chunks, (4,))
    close(Y.compute(scheduler="sync"), host(net.predict(Xm)))
    metrics = nd.evaluate(net, rows(X, chunks), rows(T, chunks), "cross_entropy")
    assert metrics == pytest.approx(net.evaluate(Xm, Tm, "cross_entropy"), rel=1e-12)


def test_rows_filtered_alike_pair_up_in_chunks_of_unknown_size(rng):
    net = network("mse")
    X, T = data("mse", rng)
    keep = X[:, 0] > 0
    expected = net.loss_and_gradient(nnxp.asarray(X[keep]), nnxp.asarray(T[keep]), "mse")
    Xd, Td, Kd = rows(X, 13), rows(T, 13), rows(keep, 13)
    Xf, Tf = Xd[Kd], Td[Kd]
    assert np.isnan(Xf.shape[0])
    assert_same_result(nd.loss_and_gradient(net, Xf, Tf, "mse"), expected, "numpy")
    Y = nd.predict(net, Xf).compute(scheduler="sync")
    close(Y, host(net.predict(nnxp.asarray(X[keep]))))
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        nd.loss_and_gradient(net, Xf, rows(T, 30)[rows(keep, 30)], "mse")  # 5 vs 2 chunks


def test_float32_network_matches_in_memory_float32(backend, rng):
    net = network("mse", dtype="float32")
    X, T = data("mse", rng)
    expected = net.loss_and_gradient(nnxp.asarray(X, "float32"), nnxp.asarray(T, "float32"), "mse")
    got = nd.loss_and_gradient(net, rows(X.astype(np.float32), 7), rows(T, 7), "mse")
    assert_same_result(got, expected, backend.name, rel=1e-5)


@pytest.mark.parametrize("loss", ["cross_entropy", "binary_cross_entropy", "mse"])
def test_evaluate_equals_in_memory(backend, loss, rng):
    net = network(loss)
    X, T = data(loss, rng)
    expected = net.evaluate(nnxp.asarray(X), nnxp.asarray(T), loss)
    got = nd.evaluate(net, rows(X, (7, 13, 1, 39)), rows(T, (7, 13, 1, 39)), loss)
    assert sorted(got) == sorted(expected)
    for k in expected:
        assert abs(got[k] - expected[k]) <= 1e-12 * abs(expected[k])


def test_predict_is_lazy_chunked_and_equals_in_memory(backend, rng):
    net = network("cross_entropy")
    X = rng.standard_normal((45, 6))
    Y = nd.predict(net, rows(X, (20, 20, 5)))
    assert isinstance(Y, da.Array)
    assert Y.chunks == ((20, 20, 5), (4,))
    assert Y.dtype == np.float64
    expected = host(net.predict(nnxp.asarray(X)))
    net.set_weights([{k: v * 0 for k, v in p.items()} for p in net.get_weights()])
    got = Y.compute(scheduler="threads")  # the weights are those of the predict call
    assert isinstance(got, np.ndarray)
    close(got, expected)


def test_predict_with_mask_and_sequences(rng):
    net = network("cross_entropy")
    X = rng.standard_normal((9, 3, 6))
    mask = rng.random((9, 3, 4)) < 0.5
    expected = host(net.predict(nnxp.asarray(X), mask=nnxp.asarray(mask)))
    Y = nd.predict(net, rows(X, (4, 5)), mask=rows(mask, (3, 6)))  # mask rechunked to X's
    assert Y.chunks == ((4, 5), (3,), (4,))
    close(Y.compute(scheduler="sync"), expected)
    assert not np.any(Y.compute(scheduler="sync")[~mask])


def test_targets_with_other_row_chunks_are_rechunked_to_x(rng):
    net = network("mse")
    X, T = data("mse", rng)
    expected = net.loss_and_gradient(nnxp.asarray(X), nnxp.asarray(T), "mse")
    got = nd.loss_and_gradient(net, rows(X, (7, 13, 1, 39)), rows(T, 11), "mse")
    assert_same_result(got, expected, "numpy")
    got = nd.loss_and_gradient(net, rows(X, 11), T, "mse")  # NumPy targets: chunked as X
    assert_same_result(got, expected, "numpy")


# ---------------------------------------------------------------------------- L-BFGS
def test_fit_lbfgs_trains_and_follows_the_in_memory_run(backend, rng):
    from scipy.optimize import minimize

    net = network("cross_entropy")
    X, T = data("cross_entropy", rng, n=50)
    reference = net.clone()
    before = net.loss_and_gradient(nnxp.asarray(X), nnxp.asarray(T), "cross_entropy")[0]
    result = nd.fit_lbfgs(
        net, rows(X, (17, 17, 16)), rows(T, (17, 17, 16)), "cross_entropy", maxiter=15
    )
    after = net.loss_and_gradient(nnxp.asarray(X), nnxp.asarray(T), "cross_entropy")[0]
    assert result.nit >= 5 and after < 0.7 * before
    assert abs(after - result.fun) <= 1e-12 * after

    # the same L-BFGS on the in-memory loss and gradient lands on the same weights
    layout = [(i, k) for i, p in enumerate(reference.parameters()) for k in p]

    def fun(theta):
        start, weights = 0, [{} for _ in reference.layers]
        for i, k in layout:
            shape = tuple(reference.parameters()[i][k].shape)
            size = int(np.prod(shape))
            weights[i][k] = nnxp.asarray(theta[start : start + size].reshape(shape), "float64")
            start += size
        reference.set_weights(weights)
        value, grads = reference.loss_and_gradient(
            nnxp.asarray(X), nnxp.asarray(T), "cross_entropy"
        )
        return value, np.concatenate([host(grads[i][k]).reshape(-1) for i, k in layout])

    theta0 = np.concatenate([host(reference.parameters()[i][k]).reshape(-1) for i, k in layout])
    expected = minimize(fun, theta0, jac=True, method="L-BFGS-B", options={"maxiter": 15})
    assert result.nit == expected.nit
    close(result.x, expected.x, rel=1e-8)
    close(np.concatenate([host(p[k]).reshape(-1) for p in net.parameters() for k in p]), result.x)


def test_fit_lbfgs_refuses_a_bad_maxiter(rng):
    X, T = data("mse", rng)
    with pytest.raises(ValueError, match="maxiter must be a positive integer, got 0"):
        nd.fit_lbfgs(network("mse"), rows(X, 10), rows(T, 10), "mse", maxiter=0)


# ---------------------------------------------------------------------------- sequence masks
def padded_sequences(rng, n=23, steps=7, n_tokens=9, n_classes=3):
    """Tokens (n, steps) with 0 after each sequence's length (1..steps), the timestep mask,
    and per-step class labels that are -1 on padded steps (ignored there)."""
    lengths = rng.integers(1, steps + 1, n)
    M = np.arange(steps)[None, :] < lengths[:, None]
    tokens = np.where(M, rng.integers(1, n_tokens, (n, steps)), 0)
    labels = np.where(M, rng.integers(0, n_classes, (n, steps)), -1)
    return tokens, M, labels


def tagger(mask_zero=False, return_sequences=True, n_tokens=9, n_classes=3):
    return nnxp.Sequential(
        [
            nnxp.Embedding(n_tokens, 4, mask_zero=mask_zero),
            nnxp.LSTM(4, 5, return_sequences=return_sequences),
            nnxp.Dense(5, n_classes, "softmax"),
        ],
        seed=4,
        dtype="float64",
    )


def in_memory(a):
    return None if a is None else nnxp.asarray(a)


@pytest.mark.parametrize("derived", [False, True], ids=["sequence_mask", "mask_zero"])
def test_padded_tagging_equals_in_memory(backend, derived, rng):
    """Embedding + LSTM(return_sequences) + Dense tagging on padded sequences: the mean
    over real timesteps of the whole data, for an explicit mask and a derived one
    (Embedding(mask_zero=True)), with padded labels of -1 and ragged chunks."""
    tokens, M, labels = padded_sequences(rng)
    net = tagger(mask_zero=derived)
    S = None if derived else M
    X, T = nnxp.asarray(tokens), nnxp.asarray(labels)
    expected = net.loss_and_gradient(X, T, "cross_entropy", sequence_mask=in_memory(S))
    chunks = (5, 1, 9, 8)
    Sd = None if S is None else rows(S, (10, 13))  # other chunks: rechunked to X's
    got = nd.loss_and_gradient(
        net, rows(tokens, chunks), rows(labels, chunks), "cross_entropy", sequence_mask=Sd
    )
    assert_same_result(got, expected, backend.name)
    metrics = nd.evaluate(
        net, rows(tokens, chunks), rows(labels, chunks), "cross_entropy", sequence_mask=Sd
    )
    assert metrics == pytest.approx(
        net.evaluate(X, T, "cross_entropy", sequence_mask=in_memory(S)), rel=1e-12, abs=0
    )
    Y = nd.predict(net, rows(tokens, chunks), sequence_mask=Sd).compute()
    close(Y, net.predict(X, sequence_mask=in_memory(S)))
    # n_c counts real steps: weighting the chunks by their sequences instead would differ
    bounds = np.cumsum((0, *chunks))
    by_rows = sum(
        (b - a)
        * net.loss_and_gradient(
            X[a:b, ...],
            T[a:b, ...],
            "cross_entropy",
            sequence_mask=None if S is None else nnxp.asarray(S[a:b]),
        )[0]
        for a, b in zip(bounds[:-1], bounds[1:])
    ) / len(tokens)
    assert abs(by_rows - got[0]) > 1e-6 * got[0]


def test_a_chunk_of_empty_sequences_adds_nothing(rng):
    """Sequences with no real step (a whole chunk of them) count in neither the loss nor
    its mean; every step of the data empty is a ValueError."""
    tokens, M, labels = padded_sequences(rng)
    M[5:10], tokens[5:10], labels[5:10] = False, 0, -1
    net = tagger()
    expected = net.loss_and_gradient(
        nnxp.asarray(tokens), nnxp.asarray(labels), "cross_entropy", sequence_mask=nnxp.asarray(M)
    )
    got = nd.loss_and_gradient(
        net, rows(tokens, 5), rows(labels, 5), "cross_entropy", sequence_mask=rows(M, 5)
    )
    assert_same_result(got, expected, "numpy")
    with pytest.raises(ValueError, match="every row of the data is masked"):
        nd.loss_and_gradient(
            net, rows(tokens, 5), rows(labels * 0, 5), "cross_entropy", sequence_mask=M & False
        )


def test_an_explicit_sequence_mask_wins_over_the_derived_one(rng):
    """With Embedding(mask_zero=True), an explicit mask (here one step shorter per
    sequence) replaces ``tokens != 0`` in every chunk, as in memory."""
    tokens, M, labels = padded_sequences(rng, steps=8)
    tokens[:, 0] = np.maximum(tokens[:, 0], 1)
    M = tokens != 0
    net = tagger(mask_zero=True)
    shorter = M & (np.cumsum(M, axis=1) < M.sum(axis=1, keepdims=True))
    shorter[:, 0] = True
    X, T = nnxp.asarray(tokens), nnxp.asarray(np.where(M, np.maximum(labels, 0), -1))
    values = []
    for S in (None, shorter):
        expected = net.loss_and_gradient(X, T, "cross_entropy", sequence_mask=in_memory(S))
        got = nd.loss_and_gradient(
            net,
            rows(tokens, 6),
            rows(host(T), 6).astype(np.int64),
            "cross_entropy",
            sequence_mask=S,
        )
        assert_same_result(got, expected, "numpy")
        values.append(got[0])
    assert abs(values[0] - values[1]) > 1e-9


def test_sequence_classification_counts_every_sequence(rng):
    """LSTM without return_sequences: an (N, K) output, every sequence counts once; the
    mask acts inside the LSTM (the state after the last real step)."""
    tokens, M, _ = padded_sequences(rng, n=19)
    y = rng.integers(0, 3, 19)
    net = tagger(return_sequences=False)
    X = nnxp.asarray(tokens)
    expected = net.loss_and_gradient(
        X, nnxp.asarray(y), "cross_entropy", sequence_mask=nnxp.asarray(M)
    )
    got = nd.loss_and_gradient(
        net, rows(tokens, (4, 15)), rows(y, (4, 15)), "cross_entropy", sequence_mask=M
    )
    assert_same_result(got, expected, "numpy")
    without = net.loss_and_gradient(X, nnxp.asarray(y), "cross_entropy")[0]
    assert abs(without - got[0]) > 1e-9  # the mask did act


def test_fit_lbfgs_with_a_sequence_mask_follows_the_in_memory_loss(rng):
    tokens, M, labels = padded_sequences(rng, n=17)
    net = tagger()
    X, T, S = nnxp.asarray(tokens), nnxp.asarray(labels), nnxp.asarray(M)
    before = net.loss_and_gradient(X, T, "cross_entropy", sequence_mask=S)[0]
    result = nd.fit_lbfgs(
        net,
        rows(tokens, 6),
        rows(labels, 6),
        "cross_entropy",
        sequence_mask=rows(M, 6),
        maxiter=5,
    )
    after = net.loss_and_gradient(X, T, "cross_entropy", sequence_mask=S)[0]
    assert after < before
    assert abs(after - result.fun) <= 1e-12 * after


def test_a_bad_sequence_mask_is_refused_before_any_task(rng):
    tokens, M, labels = padded_sequences(rng)
    net = tagger()
    with pytest.raises(ValueError, match=r"sequence_mask must have shape \(n_samples, n_steps\)"):
        nd.loss_and_gradient(
            net, rows(tokens, 5), rows(labels, 5), "cross_entropy", sequence_mask=M[:, :3]
        )
    with pytest.raises(ValueError, match="X has 23 rows but sequence_mask has shape"):
        nd.predict(net, rows(tokens, 5), sequence_mask=M[:22])
    with pytest.raises(ValueError, match="sequence_mask must hold only 0 and 1"):
        nd.loss_and_gradient(
            net,
            rows(tokens, 5),
            rows(labels, 5),
            "cross_entropy",
            sequence_mask=rows(M * 2, 5),
            scheduler="sync",
        )


# ---------------------------------------------------------------------------- bad input
def test_in_memory_arrays_are_refused_with_the_way_to_go(backend, rng):
    net = network("mse")
    X, T = data("mse", rng)
    with pytest.raises(TypeError, match=r"use net\.loss_and_gradient"):
        nd.loss_and_gradient(net, nnxp.asarray(X), nnxp.asarray(T), "mse")
    with pytest.raises(TypeError, match=r"use net\.evaluate"):
        nd.evaluate(net, X, T, "mse")
    with pytest.raises(TypeError, match=r"use net\.predict"):
        nd.predict(net, X)
    with pytest.raises(TypeError, match="T is .*list"):
        nd.loss_and_gradient(net, rows(X, 10), T.tolist(), "mse")
    with pytest.raises(TypeError, match="needs an nnxp.Sequential"):
        nd.loss_and_gradient(object(), rows(X, 10), rows(T, 10), "mse")


def test_chunks_along_features_are_refused(rng):
    net = network("mse")
    X, T = data("mse", rng)
    feature_chunked = da.from_array(X, chunks=(20, 3))
    for call in (
        lambda: nd.loss_and_gradient(net, feature_chunked, rows(T, 20), "mse"),
        lambda: nd.evaluate(net, feature_chunked, rows(T, 20), "mse"),
        lambda: nd.predict(net, feature_chunked),
    ):
        with pytest.raises(
            ValueError, match=r"X is chunked along axis 1 .*X\.rechunk\(\{1: -1\}\)"
        ):
            call()
    with pytest.raises(ValueError, match="T is chunked along axis 1"):
        nd.loss_and_gradient(net, rows(X, 20), da.from_array(T, chunks=(20, 2)), "mse")


def test_shapes_and_losses_that_do_not_fit_are_refused_before_computing(rng):
    net = network("mse")
    X, T = data("mse", rng)
    with pytest.raises(ValueError, match="X has 5 features, the network's first layer expects 6"):
        nd.loss_and_gradient(net, rows(X[:, :5], 10), rows(T, 10), "mse")
    with pytest.raises(ValueError, match="X has 60 rows but T has 59"):
        nd.loss_and_gradient(net, rows(X, 10), rows(T[:59], 10), "mse")
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        nd.loss_and_gradient(net, rows(X, 10), rows(T, 10), "hinge")
    with pytest.raises(ValueError, match="activation='softmax'"):
        nd.loss_and_gradient(net, rows(X, 10), rows(T, 10), "cross_entropy")
    with pytest.raises(TypeError, match="real numbers"):
        nd.predict(net, rows(X.astype(complex), 10))


def test_chunk_errors_surface_as_the_network_raises_them(rng):
    net = network("mse")
    X, T = data("mse", rng)
    X[33, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        nd.loss_and_gradient(net, rows(X, 10), rows(T, 10), "mse", scheduler="sync")


# ------------------------------------------------------------------ one copy of the weights
def test_the_weights_enter_the_graph_once_whatever_the_number_of_chunks(rng):
    """The graph of 60 chunks is no bigger than that of 2 by anything like a copy of the
    weights (~0.5 MB here): every chunk task refers to one shared key."""
    net = nnxp.Sequential([nnxp.Dense(6, 250, "relu"), nnxp.Dense(250, 250, "softmax")])
    X = rng.standard_normal((60, 6))
    T = np.eye(250)[rng.integers(0, 250, 60)]
    spec = nd.NetworkSpec.of(net)
    payload = len(pickle.dumps(spec))
    assert payload > 250_000

    def size(chunks, build):
        graph = build(ndr._shared(spec), rows(X, chunks), rows(T, chunks))
        return len(pickle.dumps(dict(graph.__dask_graph__())))

    def lg(ref, Xd, Td):
        return ndr._graph_loss_and_gradient(ref, Xd, Td, None, "cross_entropy", True)

    assert size(1, lg) - size(30, lg) > 0  # sanity: more chunks, more tasks
    assert size(1, lg) - size(30, lg) < payload // 4
    Y = nd.predict(net, rows(X, 1))
    shared = [v for v in dict(Y.__dask_graph__()).values() if spec.__class__.__name__ in repr(v)]
    assert len(shared) == 1


# ---------------------------------------------------------------------------- distributed
@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",
        silence_logs=50,
    )
    client = Client(cluster, set_as_default=False, timeout=30)
    try:
        yield cluster, client
    finally:
        client.close(timeout=10)
        cluster.close(timeout=10)


class Recording:
    """A client that notes what is sent through it."""

    def __init__(self, client):
        self.client, self.calls = client, []

    def scatter(self, data, **options):
        self.calls.append(("scatter", type(data).__name__, options.get("broadcast")))
        return self.client.scatter(data, **options)

    def compute(self, *args, **options):
        self.calls.append("compute")
        return self.client.compute(*args, **options)

    def who_has(self, *args, **options):
        self.calls.append("who_has")
        return self.client.who_has(*args, **options)


def test_local_cluster_equals_in_memory_by_client_and_by_default_scheduler(cluster, rng):
    from distributed import Client

    local, client = cluster
    loss = "cross_entropy"
    net = network(loss)
    X, T = data(loss, rng, n=70)
    Xd, Td = rows(X, (30, 30, 10)), rows(T, (30, 30, 10))
    expected = net.loss_and_gradient(nnxp.asarray(X), nnxp.asarray(T), loss)
    got = nd.loss_and_gradient(net, Xd, Td, loss, client=client, timeout=30)
    assert_same_result(got, expected, "numpy")
    # by address, as a real cluster is reached; dask's default scheduler inside the block
    with Client(local.scheduler_address, timeout=30) as default:
        assert default.status == "running"
        assert_same_result(nd.loss_and_gradient(net, Xd, Td, loss), expected, "numpy")
        close(nd.predict(net, Xd).compute(), host(net.predict(nnxp.asarray(X))))
    recording = Recording(client)
    assert_same_result(nd.loss_and_gradient(net, Xd, Td, loss, client=recording), expected, "numpy")
    assert recording.calls == [("scatter", "NetworkSpec", True), "compute"]  # once, 3 chunks
    metrics = nd.evaluate(net, Xd, Td, loss, client=client, timeout=30)
    assert metrics == pytest.approx(net.evaluate(nnxp.asarray(X), nnxp.asarray(T), loss), 1e-12)
    deadline = time.monotonic() + 10  # the scattered weights are released (asynchronously)
    while any("NetworkSpec" in str(key) for key in client.who_has()):
        assert time.monotonic() < deadline, client.who_has()
        time.sleep(0.05)


def _fetched_since(start, dask_worker=None):
    """The keys this worker fetched from other workers since ``start`` (time.time())."""
    return [k for e in dask_worker.transfer_incoming_log if e["start"] >= start for k in e["keys"]]


def test_persisted_chunks_are_computed_where_they_are(cluster, rng):
    """With X persisted, each worker computes the chunks it holds in one task (nothing left
    for the scheduler to steal), no chunk of X travels between workers, and the result is
    the in-memory one; X not in memory keeps one task per chunk."""
    from distributed import get_task_stream

    local, client = cluster
    loss = "cross_entropy"
    net = network(loss)
    X, T = data(loss, rng, n=90)
    Xd, Td = client.persist([rows(X, 10), rows(T, 10)])
    client.compute([Xd.sum(), Td.sum()], sync=True)  # in memory now
    where = ndr._where(client, Xd)
    assert len(where) == 9 and None not in where
    expected = net.loss_and_gradient(nnxp.asarray(X), nnxp.asarray(T), loss)
    start = time.time()
    with get_task_stream(client=client) as stream:
        got = nd.loss_and_gradient(net, Xd, Td, loss, client=client, timeout=30)
    assert_same_result(got, expected, "numpy")
    keys = [str(t["key"]) for t in stream.data]
    assert not [k for k in keys if "_chunk_loss_and_gradient" in k], keys
    assert len([k for k in keys if "_in_turn" in k]) == len(set(where)), keys
    fetched = {str(k) for ks in client.run(_fetched_since, start).values() for k in ks}
    assert not fetched & {str(k) for k in Xd.__dask_keys__() for k in k}, fetched
    metrics = nd.evaluate(net, Xd, Td, loss, client=client, timeout=30)
    assert metrics == pytest.approx(net.evaluate(nnxp.asarray(X), nnxp.asarray(T), loss), 1e-12)
    assert ndr._where(client, rows(X, 10)) is None  # not in memory: a task per chunk


def test_where_picks_a_holder_per_chunk_and_spreads_replicas(cluster):
    """A chunk held by several workers goes to the one with the fewest chunks so far; a
    chunk not in memory, or a lazy array, gets no worker."""

    class Holders:
        def __init__(self, who):
            self.who = who

        def who_has(self, X):
            return self.who

    class Lazy:
        def who_has(self, X):
            raise AssertionError("asked the scheduler about a lazy array")

    Xd = rows(np.zeros((4, 2)), 1)
    assert ndr._where(None, Xd) is None
    assert ndr._where(Lazy(), Xd) is None  # no futures in its graph: nothing to ask
    Xd = cluster[1].persist(Xd)  # its graph holds futures now; their holders are faked
    k = [key for key in Xd.__dask_keys__() for key in key]
    assert ndr._where(Holders({}), Xd) is None
    who = {k[0]: ["b"], k[1]: ["a", "b"], k[2]: ["a", "b"], k[3]: []}
    assert ndr._where(Holders(who), Xd) == ["b", "a", "a", None]


def test_a_killed_worker_changes_nothing(cluster, rng):
    """Kill one worker's process while the chunks are computed: Dask reruns its tasks on the
    other worker (or the restarted one) and the result is unchanged. (Runs last on the
    module's cluster: its nanny restarts the killed worker.)"""
    local, client = cluster
    loss = "cross_entropy"
    net = network(loss)
    X, T = data(loss, rng, n=300)
    expected = net.loss_and_gradient(nnxp.asarray(X), nnxp.asarray(T), loss)
    # a slow data source (as reading from disk would be): 30 chunks of 0.1 s each
    Xd = rows(X, 10).map_blocks(lambda b: (time.sleep(0.1), b)[1], dtype=X.dtype)
    Td = rows(T, 10)
    result = {}

    def run():
        try:
            result["value"] = nd.loss_and_gradient(net, Xd, Td, loss, client=client, timeout=60)
        except BaseException as exc:  # reported by the assertion below
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            processing = client.processing()
            if len(processing) == 2 and all(processing.values()):
                break
            time.sleep(0.02)
        else:
            pytest.fail("the chunks never ran on both workers")
        time.sleep(0.2)  # let the victim finish a chunk or two: their results are lost
        victim = next(iter(local.workers.values()))
        address = victim.worker_address
        assert thread.is_alive(), "the computation ended before the kill"
        os.kill(victim.process.process.pid, signal.SIGKILL)
    finally:
        thread.join(timeout=60)
    assert not thread.is_alive(), "no result within 60 s of the kill"
    assert address not in client.scheduler_info()["workers"]  # that worker really died
    assert "error" not in result, result.get("error")
    assert_same_result(result["value"], expected, "numpy")


# ---------------------------------------------------------------------------- import and example
def test_import_nnxp_does_not_import_dask():
    code = "import sys, nnxp; print('dask' in sys.modules, 'distributed' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_example_trains_digits_on_a_local_cluster():
    """The example's own LocalCluster (workers as threads here, to start quickly; the
    process workers are covered above)."""
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "dask_full_batch.py"),
            *("--in-process", "--maxiter", "20", "--chunk-rows", "700"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    accuracy = float(out.stdout.split("test accuracy ")[-1].split()[0])
    assert accuracy >= 0.9, out.stdout
