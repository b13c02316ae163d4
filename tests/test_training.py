"""fit: loss goes down, shuffling by seed, partial batches, early stopping, non-finite loss."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import host, normal, one_hot

import nnxp
from nnxp import datasets


def classifier(seed=0, dtype="float32"):
    return nnxp.Sequential(
        [nnxp.Dense(2, 16, "tanh"), nnxp.Dense(16, 3, "softmax")], seed=seed, dtype=dtype
    )


def test_fit_reduces_the_loss_and_records_history(backend):
    X, T = datasets.spirals(n_per_class=40)
    net = classifier()
    before = net.evaluate(X, T, "cross_entropy")["loss"]
    history = net.fit(
        X,
        T,
        loss="cross_entropy",
        optimizer=nnxp.Adam(0.05),
        epochs=60,
        batch_size=16,
        validation_data=(X, T),
        progress=False,
    )
    assert history.history["loss"][-1] < 0.3 * before
    assert len(history.history["loss"]) == 60 == len(history.history["val_accuracy"])
    assert history.history["val_accuracy"][-1] > 0.9
    assert net.history is history


def test_shuffling_is_reproducible_by_seed_and_differs_across_seeds(backend):
    X, T = datasets.spirals(n_per_class=20)
    runs = []
    for seed in (1, 1, 2):
        net = classifier()
        net.fit(
            X,
            T,
            loss="cross_entropy",
            optimizer="sgd",
            epochs=2,
            batch_size=8,
            seed=seed,
            progress=False,
        )
        runs.append(host(net.layers[0].W))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_every_row_is_used_including_the_last_partial_batch(backend, rng):
    """With lr=1 plain SGD and no shuffle, one epoch equals the hand-made batch updates."""
    X, T = normal(rng, (7, 2)), one_hot(rng, (7,), 3)
    net, ref = classifier(dtype="float64"), classifier(dtype="float64")
    net.fit(
        X,
        T,
        loss="cross_entropy",
        optimizer=nnxp.SGD(1.0),
        epochs=1,
        batch_size=3,
        shuffle=False,
        progress=False,
    )
    for start, stop in ((0, 3), (3, 6), (6, 7)):
        _, grads = ref.loss_and_gradient(X[start:stop, ...], T[start:stop, ...], "cross_entropy")
        for layer, g in zip(ref.layers, grads):
            layer.W = layer.W - g["W"]
            layer.b = layer.b - g["b"]
    for a, b in zip(net.layers, ref.layers):
        np.testing.assert_allclose(host(a.W), host(b.W), rtol=1e-12, atol=1e-14)


def test_early_stopping_restores_the_best_weights(backend):
    X, T = datasets.spirals(n_per_class=20)
    Xv, Tv = datasets.spirals(n_per_class=20, seed=5)
    net = classifier()
    snapshots = []
    history = net.fit(
        X,
        T,
        loss="cross_entropy",
        optimizer=nnxp.SGD(3.0),
        epochs=40,
        batch_size=4,
        validation_data=(Xv, Tv),
        early_stopping=nnxp.EarlyStopping(patience=2),
        progress=False,
        callbacks=[lambda epoch, logs: snapshots.append(net.get_weights())],
    )
    losses = history.history["val_loss"]
    best = int(np.argmin(losses))
    assert history.stopped_epoch == len(losses) - 1
    assert len(losses) - 1 - best == 3  # stopped after patience + 1 epochs without improvement
    for layer, saved in zip(net.layers, snapshots[best]):
        np.testing.assert_array_equal(host(layer.W), host(saved["W"]))


def test_a_callback_returning_true_stops_training(backend):
    X, T = datasets.spirals(n_per_class=5)
    history = classifier().fit(
        X,
        T,
        loss="cross_entropy",
        epochs=10,
        progress=False,
        callbacks=[lambda epoch, logs: epoch == 2],
    )
    assert history.epoch == [0, 1, 2] and history.stopped_epoch == 2


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_a_non_finite_loss_stops_with_the_last_finite_weights(backend, rng):
    """A learning rate that blows up: FloatingPointError naming epoch and batch; the weights
    left in place are those of the last step whose loss was finite."""
    X = normal(rng, (40, 2), dtype="float32", scale=100.0)
    T = normal(rng, (40, 1), dtype="float32", scale=100.0)
    net = nnxp.Sequential([nnxp.Dense(2, 8, "relu"), nnxp.Dense(8, 1)], dtype="float32")
    with pytest.raises(
        FloatingPointError, match=r"non-finite at epoch \d+ \(0-based\), batch \d+"
    ) as info:
        net.fit(
            X,
            T,
            loss="mse",
            optimizer=nnxp.SGD(1.0),
            epochs=50,
            batch_size=5,
            shuffle=False,
            progress=False,
        )
    for params in net.parameters():
        for p in params.values():
            assert np.all(np.isfinite(host(p)))
    value, _ = net.loss_and_gradient(X[0:5, ...], T[0:5, ...], "mse")
    assert np.isfinite(value)
    assert "epoch" in str(info.value)


def test_bad_training_options_are_refused(backend):
    X, T = datasets.spirals(n_per_class=5)
    net = classifier()
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        net.fit(X, T, loss="cross_entropy", batch_size=0, progress=False)
    with pytest.raises(ValueError, match="epochs must be a non-negative integer, got -1"):
        net.fit(X, T, loss="cross_entropy", epochs=-1, progress=False)
    assert net.fit(X, T, loss="cross_entropy", epochs=0, progress=False).history == {}


def test_digits_reaches_95_percent(backend):
    X_train, X_test, T_train, T_test = datasets.digits()
    net = nnxp.Sequential([nnxp.Dense(64, 64, "relu"), nnxp.Dense(64, 10, "softmax")], seed=0)
    net.fit(
        X_train, T_train, loss="cross_entropy", optimizer=nnxp.Adam(3e-3), epochs=20, progress=False
    )
    assert net.evaluate(X_test, T_test, "cross_entropy")["accuracy"] >= 0.95


class _InterruptedAdam(nnxp.Adam):
    """Adam that is interrupted in the middle of its ``at``-th step (some parameters
    already updated), as a Ctrl-C would."""

    def __init__(self, at, **options):
        super().__init__(**options)
        self.at = at

    def step(self, params, grads):
        if self.steps + 1 == self.at:
            params[0]["W"] -= 1.0  # half an update...
            raise KeyboardInterrupt  # ...then the interrupt
        super().step(params, grads)


class _InterruptedUpdateAdam(nnxp.Adam):
    """The same through the functional form that the pure step calls (``update``)."""

    def __init__(self, at, **options):
        super().__init__(**options)
        self.at = at

    def update(self, params, grads, state, *, inplace=False):
        if state["step"] + 1 == self.at:
            params[0]["W"] -= 1.0  # half an update (in place where the library allows)...
            raise KeyboardInterrupt  # ...then the interrupt
        return super().update(params, grads, state, inplace=inplace)


@pytest.mark.parametrize("make", [_InterruptedAdam, _InterruptedUpdateAdam])
def test_keyboard_interrupt_leaves_the_last_completed_step(backend, make):
    X, T = datasets.spirals(n_per_class=20)  # 60 rows: 6 batches of 10 per epoch
    interrupted, reference = classifier(), classifier()
    optimizer = make(at=9, lr=0.01)
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(
            X,
            T,
            loss="cross_entropy",
            optimizer=optimizer,
            epochs=5,
            batch_size=10,
            shuffle=False,
            progress=False,
        )
    # 8 completed steps: one epoch of 6, then 2 batches of the second
    opt = nnxp.Adam(lr=0.01)
    reference.fit(
        X,
        T,
        loss="cross_entropy",
        optimizer=opt,
        epochs=1,
        batch_size=10,
        shuffle=False,
        progress=False,
    )
    reference.fit(
        X[0:20, ...],
        T[0:20, ...],
        loss="cross_entropy",
        optimizer=opt,
        epochs=1,
        batch_size=10,
        shuffle=False,
        progress=False,
    )
    for a, b in zip(interrupted.layers, reference.layers):
        np.testing.assert_array_equal(host(a.W), host(b.W))
    assert interrupted.history.history["loss"] and interrupted.history.epoch == [0]
    assert optimizer.steps == opt.steps == 8


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_same_seed_same_data_bit_identical_weights(backend, optimizer):
    X, T = datasets.spirals(n_per_class=20)
    runs = []
    for _ in range(2):
        net = nnxp.Sequential(
            [nnxp.Dense(2, 16, "relu"), nnxp.Dropout(0.3), nnxp.Dense(16, 3, "softmax")], seed=4
        )
        net.fit(
            X, T, loss="cross_entropy", optimizer=optimizer, epochs=3, batch_size=7, progress=False
        )
        runs.append([host(p["W"]) for p in net.parameters() if p])
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
