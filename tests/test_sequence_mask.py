"""The timestep mask of variable-length sequences, through a whole network.

A padded batch must give the loss and gradient of its sequences run one by one, unpadded:
the mask reaches the layers (recurrent state carried over padding) and the loss (an output
with the time axis is averaged over real steps only).
"""

from __future__ import annotations

import numpy as np
import pytest

import nnxp
from nnxp.layers.embedding import Embedding
from nnxp.layers.recurrent import GRU, LSTM

V, D, U, K = 7, 4, 5, 3
LENGTHS = [5, 3, 1, 4]
T_MAX = max(LENGTHS)


def _tokens(rng, lengths=LENGTHS, pad=0):
    """Token ids (N, T_MAX): 1..V-1 on real steps, ``pad`` after; and the bool mask."""
    X = np.full((len(lengths), T_MAX), pad, dtype=np.int64)
    for i, n in enumerate(lengths):
        X[i, :n] = rng.integers(1, V, n)
    M = np.arange(T_MAX)[None, :] < np.asarray(lengths)[:, None]
    return X, M


def _host_grads(grads):
    return [{k: nnxp.to_numpy(v).astype(np.float64) for k, v in g.items()} for g in grads]


def _weighted(parts, weights):
    """``sum_i w_i parts_i / sum_i w_i`` of per-layer gradient dicts."""
    total = float(np.sum(weights))
    out = [{k: np.zeros_like(v) for k, v in g.items()} for g in parts[0]]
    for grads, w in zip(parts, weights):
        for acc, g in zip(out, grads):
            for k in acc:
                acc[k] = acc[k] + w * g[k] / total
    return out


def _assert_same(a, b, tol=1e-10):
    assert len(a) == len(b)
    for ga, gb in zip(a, b):
        assert set(ga) == set(gb)
        for k in ga:
            scale = max(1.0, float(np.max(np.abs(gb[k]))))
            assert np.max(np.abs(ga[k] - gb[k])) <= tol * scale, k


def _one_by_one(net, X, T, loss, lengths, time_axis):
    """Loss and gradient of each sequence alone (cut to its length), combined as the
    padded batch's mean: over sequences, or over real steps for a time-axis output."""
    losses, grads = [], []
    for i, n in enumerate(lengths):
        Xi = nnxp.asarray(X[i : i + 1, :n])
        Ti = T[i : i + 1, :n] if time_axis else T[i : i + 1]
        value, g = net.loss_and_gradient(Xi, nnxp.asarray(Ti), loss)
        losses.append(value)
        grads.append(_host_grads(g))
    weights = np.asarray(lengths if time_axis else [1] * len(lengths), dtype=np.float64)
    return float(np.sum(weights * losses) / np.sum(weights)), _weighted(grads, weights)


@pytest.mark.parametrize("cell", [LSTM, GRU], ids=["lstm", "gru"])
def test_padded_classification_equals_one_by_one(backend, cell):
    rng = np.random.default_rng(0)
    X, M = _tokens(rng)
    labels = rng.integers(0, K, len(LENGTHS))
    net = nnxp.Sequential(
        [Embedding(V, D, mask_zero=True), cell(D, U), nnxp.Dense(U, K, "softmax")],
        seed=3,
        dtype="float64",
    )
    expected_loss, expected = _one_by_one(net, X, labels, "cross_entropy", LENGTHS, False)
    # the mask from Embedding(mask_zero=True) ...
    loss, grads = net.loss_and_gradient(nnxp.asarray(X), nnxp.asarray(labels), "cross_entropy")
    assert abs(loss - expected_loss) <= 1e-12 * max(1.0, abs(expected_loss))
    _assert_same(_host_grads(grads), expected)
    # ... equals an explicit one, whatever the padded tokens are
    X_junk, _ = _tokens(np.random.default_rng(0), pad=V - 1)
    loss2, grads2 = net.loss_and_gradient(
        nnxp.asarray(X_junk), nnxp.asarray(labels), "cross_entropy", sequence_mask=nnxp.asarray(M)
    )
    assert abs(loss2 - expected_loss) <= 1e-12 * max(1.0, abs(expected_loss))
    _assert_same(_host_grads(grads2), expected)
    # without the mask the padding changes the answer (the test can fail)
    net_nomask = nnxp.Sequential(
        [Embedding(V, D), cell(D, U), nnxp.Dense(U, K, "softmax")], seed=3, dtype="float64"
    )
    loss3, _ = net_nomask.loss_and_gradient(
        nnxp.asarray(X_junk), nnxp.asarray(labels), "cross_entropy"
    )
    assert abs(loss3 - expected_loss) > 1e-6


TAGGING = {
    "cross_entropy": "softmax",
    "mse": "linear",
    "binary_cross_entropy": "sigmoid",
}


def _tagging_targets(rng, loss, lengths=LENGTHS):
    """Targets (N, T_MAX[, K]) with junk on padded steps (labels -1, values 1e3)."""
    if loss == "cross_entropy":
        T = rng.integers(0, K, (len(lengths), T_MAX))
        junk = -1
    else:
        T = rng.uniform(0.0, 1.0, (len(lengths), T_MAX, K))
        junk = 1e3
    for i, n in enumerate(lengths):
        T[i, n:] = junk
    return T


@pytest.mark.parametrize("loss", list(TAGGING))
@pytest.mark.parametrize("middle", ["dense", "lstm"])
def test_padded_tagging_loss_over_real_steps(backend, loss, middle):
    rng = np.random.default_rng(1)
    X, M = _tokens(rng)
    T = _tagging_targets(rng, loss)
    hidden = (
        [nnxp.Dense(D, U, "tanh")] if middle == "dense" else [LSTM(D, U, return_sequences=True)]
    )
    net = nnxp.Sequential(
        [Embedding(V, D, mask_zero=True), *hidden, nnxp.Dense(U, K, TAGGING[loss])],
        seed=5,
        dtype="float64",
    )
    expected_loss, expected = _one_by_one(net, X, T, loss, LENGTHS, True)
    value, grads = net.loss_and_gradient(nnxp.asarray(X), nnxp.asarray(T), loss)
    assert abs(value - expected_loss) <= 1e-12 * max(1.0, abs(expected_loss))
    _assert_same(_host_grads(grads), expected)


def test_gradcheck_with_sequence_mask(backend):
    rng = np.random.default_rng(2)
    X, M = _tokens(rng, [4, 2, 3], pad=0)
    X = X[:, :4]
    M = M[:, :4]
    labels = rng.integers(0, 2, 3)
    net = nnxp.Sequential(
        [Embedding(5, 3, mask_zero=True), GRU(3, 3), nnxp.Dense(3, 2, "softmax")], seed=1
    )
    error = nnxp.gradcheck(net, nnxp.asarray(X % 5), nnxp.asarray(labels), "cross_entropy")
    assert error <= 1e-6
    # float inputs, an explicit mask, a tagging output with junk at padded steps
    F = 3
    Xf = rng.standard_normal((3, 4, F))
    Tf = rng.integers(0, 2, (3, 4))
    Tf[~M] = 7
    tagger = nnxp.Sequential(
        [LSTM(F, 2, return_sequences=True), nnxp.Dense(2, 2, "softmax")], seed=2
    )
    error = nnxp.gradcheck(
        tagger,
        nnxp.asarray(Xf),
        nnxp.asarray(Tf),
        "cross_entropy",
        sequence_mask=nnxp.asarray(M),
    )
    assert error <= 1e-6


def _pattern_data(rng, n, t_max=8):
    """Sequences labelled 1 when they hold token 1 (tokens 2..5 otherwise), padded with 0."""
    X = np.zeros((n, t_max), dtype=np.int64)
    labels = rng.integers(0, 2, n)
    for i in range(n):
        length = int(rng.integers(2, t_max + 1))
        X[i, :length] = rng.integers(2, 6, length)
        if labels[i]:
            X[i, rng.integers(0, length)] = 1
    return X, labels, X != 0


def test_fit_with_sequence_mask_trains(backend):
    rng = np.random.default_rng(3)
    X, labels, M = _pattern_data(rng, 96)
    Xv, labels_v, Mv = _pattern_data(rng, 32)
    net = nnxp.Sequential(
        [Embedding(6, 4), LSTM(4, 8), nnxp.Dense(8, 2, "softmax")], seed=0, dtype="float64"
    )
    history = net.fit(
        nnxp.asarray(X),
        nnxp.asarray(labels),
        loss="cross_entropy",
        optimizer=nnxp.Adam(lr=0.03),
        epochs=12,
        batch_size=16,
        sequence_mask=nnxp.asarray(M),
        validation_data=(nnxp.asarray(Xv), nnxp.asarray(labels_v), None, nnxp.asarray(Mv)),
        progress=False,
    )
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    scores = net.evaluate(
        nnxp.asarray(Xv), nnxp.asarray(labels_v), "cross_entropy", sequence_mask=nnxp.asarray(Mv)
    )
    assert history.history["val_loss"][-1] == pytest.approx(scores["loss"], rel=1e-12)
    assert history.history["val_accuracy"][-1] == pytest.approx(scores["accuracy"])
    # the dict form of validation_data is the same thing
    val = {"X": nnxp.asarray(Xv), "T": nnxp.asarray(labels_v), "sequence_mask": nnxp.asarray(Mv)}
    again = net.fit(
        nnxp.asarray(X),
        nnxp.asarray(labels),
        loss="cross_entropy",
        epochs=0,
        validation_data=val,
        progress=False,
    )
    assert again.history == {}


def test_fit_derived_mask_equals_explicit_mask(backend):
    rng = np.random.default_rng(4)
    X, labels, M = _pattern_data(rng, 40)
    weights = []
    for explicit in (False, True):
        net = nnxp.Sequential(
            [Embedding(6, 4, mask_zero=True), GRU(4, 4), nnxp.Dense(4, 2, "softmax")],
            seed=0,
            dtype="float64",
        )
        net.fit(
            nnxp.asarray(X),
            nnxp.asarray(labels),
            loss="cross_entropy",
            epochs=2,
            batch_size=8,
            sequence_mask=nnxp.asarray(M) if explicit else None,
            progress=False,
        )
        weights.append(_host_grads(net.parameters()))
    _assert_same(weights[0], weights[1], tol=1e-12)


def test_evaluate_accuracy_counts_real_steps_only(backend):
    rng = np.random.default_rng(5)
    X, M = _tokens(rng)
    net = nnxp.Sequential(
        [Embedding(V, D, mask_zero=True), nnxp.Dense(D, K, "softmax")], seed=0, dtype="float64"
    )
    predicted = np.argmax(nnxp.to_numpy(net.predict(nnxp.asarray(X))), axis=-1)
    # right on every other real step, wrong on the rest and on every padded step
    labels = (predicted + 1) % K
    real = np.argwhere(M)
    right = real[::2]
    labels[right[:, 0], right[:, 1]] = predicted[right[:, 0], right[:, 1]]
    scores = net.evaluate(nnxp.asarray(X), nnxp.asarray(labels), "cross_entropy")
    assert scores["accuracy"] == pytest.approx(len(right) / M.sum())
    assert M.sum() < M.size  # counting the (all wrong) padded steps would lower it
    # labels at padded steps are ignored by the loss too
    junk = labels.copy()
    junk[~M] = 0
    again = net.evaluate(nnxp.asarray(X), nnxp.asarray(junk), "cross_entropy")
    assert again["loss"] == pytest.approx(scores["loss"], rel=1e-12)
    assert again["accuracy"] == scores["accuracy"]


def _small_net():
    return nnxp.Sequential(
        [Embedding(6, 4), LSTM(4, 3), nnxp.Dense(3, 2, "softmax")], seed=0, dtype="float64"
    )


def _bad_masks(backend, M):
    """(mask, exception type, text the message must hold)."""
    other = "host data"
    cases = [
        (nnxp.asarray(M[:, :-1]), ValueError, "shape"),
        (nnxp.asarray(M[:-1]), ValueError, "shape"),
        (nnxp.asarray(M.astype(np.float64) * 0.5), ValueError, "0 and 1"),
        (nnxp.asarray(M.astype(np.int64) * 2), ValueError, "0 and 1"),
        (M.tolist(), TypeError, other),
    ]
    if backend.name != "numpy":
        cases.append((M, TypeError, "numpy"))
    return cases


def test_bad_sequence_masks_are_refused_before_any_change(backend):
    rng = np.random.default_rng(6)
    X, labels, M = _pattern_data(rng, 12)
    net = _small_net()
    before = _host_grads(net.parameters())
    optimizer = nnxp.Adam()
    Xa, Ta = nnxp.asarray(X), nnxp.asarray(labels)
    for mask, kind, text in _bad_masks(backend, M):
        calls = [
            lambda m=mask: net.fit(
                Xa, Ta, loss="cross_entropy", optimizer=optimizer, sequence_mask=m, progress=False
            ),
            lambda m=mask: net.evaluate(Xa, Ta, "cross_entropy", sequence_mask=m),
            lambda m=mask: net.predict(Xa, sequence_mask=m),
            lambda m=mask: net.loss_and_gradient(Xa, Ta, "cross_entropy", sequence_mask=m),
            lambda m=mask: nnxp.gradcheck(net, Xa, Ta, "cross_entropy", sequence_mask=m),
            lambda m=mask: net.fit(
                Xa,
                Ta,
                loss="cross_entropy",
                optimizer=optimizer,
                validation_data=(Xa, Ta, None, m),
                progress=False,
            ),
        ]
        for call in calls:
            with pytest.raises(kind, match=text):
                call()
    _assert_same(_host_grads(net.parameters()), before, tol=0.0)
    assert optimizer.steps == 0 and net.history is None
    # 0/1 numbers are a mask: the same as the bool one
    a = net.evaluate(Xa, Ta, "cross_entropy", sequence_mask=nnxp.asarray(M.astype(np.int32)))
    b = net.evaluate(Xa, Ta, "cross_entropy", sequence_mask=nnxp.asarray(M))
    assert a == b
    with pytest.raises(ValueError, match="validation_data"):
        net.fit(Xa, Ta, loss="cross_entropy", validation_data={"X": Xa}, progress=False)


def test_predict_with_sequence_mask_in_chunks(backend):
    rng = np.random.default_rng(7)
    X, labels, M = _pattern_data(rng, 10)
    net = _small_net()
    whole = nnxp.to_numpy(net.predict(nnxp.asarray(X), sequence_mask=nnxp.asarray(M)))
    chunks = nnxp.to_numpy(
        net.predict(nnxp.asarray(X), batch_size=3, sequence_mask=nnxp.asarray(M))
    )
    np.testing.assert_allclose(chunks, whole, rtol=1e-12, atol=1e-14)
    unmasked = nnxp.to_numpy(net.predict(nnxp.asarray(X)))
    assert np.max(np.abs(unmasked - whole)) > 1e-6  # the mask matters here


SYNCS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__")


def _count_syncs(monkeypatch, torch, run):
    """Calls of torch.Tensor's host-reading methods while ``run()`` runs, by name."""
    counts = dict.fromkeys(SYNCS, 0)
    for name in SYNCS:
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _name=name, _original=original, **kwargs):
            counts[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    try:
        run()
    finally:
        monkeypatch.undo()
    return counts


def test_fit_reads_nothing_back_per_step_on_torch(monkeypatch):
    """Zero host synchronisations per step: a fit of an LSTM network with a sequence mask
    reads the device back a bounded number of times per epoch, whatever the step count."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    X, labels, M = _pattern_data(rng, 96)
    results = {}
    with nnxp.use_backend("torch"):
        Xa, Ta, Ma = nnxp.asarray(X), nnxp.asarray(labels), nnxp.asarray(M)
        for batch_size in (32, 4):  # 3 and 24 steps per epoch
            for epochs in (1, 3):
                net = nnxp.Sequential(
                    [Embedding(6, 4), LSTM(4, 5), nnxp.Dense(5, 2, "softmax")], seed=0
                )
                counts = _count_syncs(
                    monkeypatch,
                    torch,
                    lambda net=net, b=batch_size, e=epochs: net.fit(
                        Xa,
                        Ta,
                        loss="cross_entropy",
                        epochs=e,
                        batch_size=b,
                        sequence_mask=Ma,
                        progress=False,
                    ),
                )
                results[batch_size, epochs] = sum(counts.values())
    # the same reads for 3 or 24 steps per epoch: none is per step
    assert results[32, 1] == results[4, 1], results
    assert results[32, 3] == results[4, 3], results
    per_epoch = (results[4, 3] - results[4, 1]) / 2
    assert per_epoch <= 4, results  # the epoch's loss read back, about once per epoch
    assert results[4, 1] > 0  # the counting works (the epoch loss is read)


def test_output_mask_and_sequence_mask_together(backend):
    """Rows count when they are real steps with an allowed output: the padded batch equals
    its sequences one by one."""
    rng = np.random.default_rng(9)
    X, M = _tokens(rng)
    allowed = rng.random((len(LENGTHS), T_MAX, K)) < 0.6
    allowed[0, 1] = False  # a fully masked real step: counts for nothing
    labels = np.zeros((len(LENGTHS), T_MAX, K))  # one-hot, all zero where all masked
    for i, t in np.argwhere(allowed.any(axis=-1)):
        labels[i, t, rng.choice(np.flatnonzero(allowed[i, t]))] = 1.0
    labels[~M] = 5.0  # padded steps: junk
    net = nnxp.Sequential(
        [Embedding(V, D, mask_zero=True), nnxp.Dense(D, K, "softmax")], seed=2, dtype="float64"
    )
    losses, parts, counts = [], [], []
    for i, n in enumerate(LENGTHS):
        value, g = net.loss_and_gradient(
            nnxp.asarray(X[i : i + 1, :n]),
            nnxp.asarray(labels[i : i + 1, :n]),
            "cross_entropy",
            mask=nnxp.asarray(allowed[i : i + 1, :n]),
        )
        losses.append(value)
        parts.append(_host_grads(g))
        counts.append(int(allowed[i, :n].any(axis=-1).sum()))
    counts = np.asarray(counts, dtype=np.float64)
    expected_loss = float(np.sum(counts * losses) / np.sum(counts))
    value, grads = net.loss_and_gradient(
        nnxp.asarray(X), nnxp.asarray(labels), "cross_entropy", mask=nnxp.asarray(allowed)
    )
    assert abs(value - expected_loss) <= 1e-12 * max(1.0, abs(expected_loss))
    _assert_same(_host_grads(grads), _weighted(parts, counts))
