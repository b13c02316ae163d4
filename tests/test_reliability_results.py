"""Issue 10, silent wrong results: copies, labels under a mask, fully masked rows, one layer
in one place, no autograd leak, exact dEdY shapes, backward_from_delta."""

from __future__ import annotations

import gc

import numpy as np
import pytest
from helpers import host, normal

import nnxp


def _net(dtype="float64", seed=0):
    return nnxp.Sequential(
        [nnxp.Dense(3, 5, "tanh"), nnxp.Dense(5, 4, "softmax")], seed=seed, dtype=dtype
    )


def _data(rng, n=12, dtype="float64"):
    X = normal(rng, (n, 3), dtype=dtype)
    T = nnxp.asarray(np.eye(4)[rng.integers(0, 4, n)], dtype=dtype)
    return X, T


# ---------------------------------------------------------------- 1. copies are copies
def test_training_a_clone_leaves_the_original_bit_identical(backend, rng):
    net = _net(dtype="float32")
    before = [{k: host(v).copy() for k, v in p.items()} for p in net.parameters()]
    twin = net.clone()
    X, T = _data(rng, dtype="float32")
    twin.fit(X, T, loss="cross_entropy", optimizer=nnxp.SGD(0.5), epochs=2, progress=False)
    for p, b in zip(net.parameters(), before):
        for k in p:
            np.testing.assert_array_equal(host(p[k]), b[k])
    assert not np.array_equal(host(twin.layers[0].W), before[0]["W"])  # the twin did train


def test_from_config_never_changes_the_users_arrays(backend, rng):
    net = _net(dtype="float32")
    weights = [{k: nnxp.to_numpy(v).copy() for k, v in p.items()} for p in net.parameters()]
    kept = [{k: v.copy() for k, v in p.items()} for p in weights]
    built = nnxp.Sequential.from_config(net.get_config(), weights, dtype="float32")
    X, T = _data(rng, dtype="float32")
    built.fit(X, T, loss="cross_entropy", optimizer=nnxp.SGD(0.5), epochs=2, progress=False)
    for w, k in zip(weights, kept):
        for name in w:
            np.testing.assert_array_equal(w[name], k[name])


# ---------------------------------------------------------------- 2. labels under a mask
def test_class_labels_on_a_masked_output_are_refused_like_one_hot_targets(backend, rng):
    net = _net()
    X = normal(rng, (3, 3))
    mask = nnxp.asarray(np.array([[1, 1, 0, 0], [0, 1, 1, 1], [1, 1, 1, 1]], dtype=bool))
    labels = nnxp.asarray(np.array([2, 1, 3]))  # row 0 points at a masked output
    one_hot = nnxp.asarray(np.eye(4)[[2, 1, 3]])
    for T in (one_hot, labels):
        with pytest.raises(ValueError, match="targets put probability on outputs the mask forbids"):
            net.loss_and_gradient(X, T, "cross_entropy", mask=mask)
    good = nnxp.asarray(np.array([1, 1, 3]))
    assert nnxp.gradcheck(net, X, good, "cross_entropy", mask=mask) < 1e-6


# ---------------------------------------------------------------- 3. fully masked rows
def _padded_tagging(rng):
    """8 real timesteps over 2 sequences of 6 steps (4 padded): 3 real ones predicted right."""
    net = nnxp.Sequential([nnxp.Dense(3, 4, "softmax")], dtype="float64")
    X = normal(rng, (2, 6, 3))
    Y = host(net.predict(X))
    real = np.zeros((2, 6), dtype=bool)
    real[0, :5] = True
    real[1, :3] = True
    guess = Y.argmax(axis=-1)
    labels = (guess + 1) % 4  # wrong everywhere ...
    right = np.argwhere(real)[[0, 4, 7]]
    for i, t in right:
        labels[i, t] = guess[i, t]  # ... except at 3 real timesteps
    mask = np.repeat(real[..., None], 4, axis=-1)
    T = np.eye(4)[labels] * mask
    return net, X, nnxp.asarray(T), nnxp.asarray(mask), real


def test_fully_masked_rows_count_in_neither_accuracy_nor_the_loss_mean(backend, rng):
    net, X, T, mask, real = _padded_tagging(rng)
    logs = net.evaluate(X, T, "cross_entropy", mask=mask)
    assert logs["accuracy"] == pytest.approx(3 / 8, abs=1e-12)
    Y = host(net.predict(X, mask=mask))
    per_step = -np.sum(host(T) * np.log(np.where(host(mask) > 0, Y, 1.0)), axis=-1)
    expected = per_step[real].mean()  # N = 8 real timesteps, not 12
    assert logs["loss"] == pytest.approx(expected, rel=1e-12)
    value, _ = net.loss_and_gradient(X, T, "cross_entropy", mask=mask)
    assert value == pytest.approx(expected, rel=1e-12)
    assert nnxp.gradcheck(net, X, T, "cross_entropy", mask=mask) < 1e-6
    assert nnxp.gradcheck(net, X, normal(rng, (2, 6, 4)), "mse", mask=mask) < 1e-6


# ---------------------------------------------------------------- 4. one layer, one place
def test_a_layer_used_twice_is_refused(backend):
    shared = nnxp.Dense(4, 4, "tanh")
    with pytest.raises(ValueError, match=r"layers\[2\] .* same layer instance as layers\[0\]"):
        nnxp.Sequential([shared, nnxp.Dense(4, 4), shared])


def test_a_layer_of_another_network_is_refused_and_that_network_is_untouched(backend):
    layers = [nnxp.Dense(4, 6, "relu"), nnxp.Dense(6, 3, "softmax")]
    first = nnxp.Sequential(layers, seed=0)
    W = host(first.layers[0].W).copy()
    with pytest.raises(ValueError, match="already part of another network"):
        nnxp.Sequential(layers, seed=1)
    np.testing.assert_array_equal(host(first.layers[0].W), W)
    del first
    gc.collect()
    nnxp.Sequential(layers, seed=1)  # free again once its network is gone


# ---------------------------------------------------------------- 5. no autograd leak
def test_inputs_that_require_grad_never_reach_the_parameters(backend, rng):
    if backend.name != "torch":
        pytest.skip("autograd (requires_grad) exists only in torch")
    import torch

    X, T = _data(rng, n=32, dtype="float32")
    X = X.clone().requires_grad_(True) * 1.0  # a non-leaf feature tensor with a graph
    T = T.clone().requires_grad_(True)
    net = _net(dtype="float32")
    net.fit(X, T, loss="cross_entropy", epochs=2, batch_size=8, progress=False)
    for p in net.parameters():
        for value in p.values():
            assert isinstance(value, torch.Tensor)
            assert value.is_leaf and not value.requires_grad and value.grad_fn is None
    value, grads = net.loss_and_gradient(X, T, "cross_entropy")
    assert all(not g.requires_grad for layer in grads for g in layer.values())
    assert not net.predict(X).requires_grad


# ---------------------------------------------------------------- 12. exact dEdY shapes
def test_backward_refuses_a_dEdY_that_would_broadcast(backend, rng):
    net = _net()
    X = normal(rng, (6, 3))
    net.forward(X)
    with pytest.raises(ValueError, match=r"exactly the shape .* \(6, 4\), got \(1, 4\)"):
        net.backward(normal(rng, (1, 4)))
    with pytest.raises(ValueError, match=r"got \(4,\)"):
        net.backward(normal(rng, (4,)))
    assert tuple(net.backward(normal(rng, (6, 4))).shape) == (6, 3)


# ---------------------------------------------------------------- 23. backward_from_delta
def test_backward_from_delta_takes_the_classic_y_minus_t(backend, rng):
    net = _net()
    X, T = _data(rng, n=7)
    _, reference = net.loss_and_gradient(X, T, "cross_entropy")
    reference = [{k: host(v) for k, v in g.items()} for g in reference]
    Y = net.forward(X)
    dEdX = net.backward_from_delta((Y - T) / 7)  # dE/dA of the softmax layer
    assert tuple(dEdX.shape) == (7, 3)
    for layer, ref in zip(net.layers, reference):
        for k in ref:
            np.testing.assert_allclose(host(layer.grads[k]), ref[k], rtol=1e-12, atol=1e-15)
    # the trap: Y - T handed to backward goes through the softmax Jacobian a second time
    net.forward(X)
    net.backward((Y - T) / 7)
    assert not np.allclose(host(net.layers[-1].grads["W"]), reference[-1]["W"], atol=1e-6)
    with pytest.raises(ValueError, match="exactly the shape"):
        net.backward_from_delta(normal(rng, (1, 4)))
