"""Dropout: inverted scaling, inference identity, Keras noise_shape, the same mask backward."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import host, normal

import nnxp


def _dropout_net(rate, noise_shape=None, n=6):
    return nnxp.Sequential(
        [nnxp.Dense(n, n, "linear"), nnxp.Dropout(rate, noise_shape)], seed=0, dtype="float64"
    )


def test_statistics_and_scaling_in_training(backend, rng):
    layer = _dropout_net(0.3).layers[1]
    X = nnxp.asarray(np.ones((200, 500)), dtype="float64")
    Y = host(layer.forward(X, training=True))
    dropped = np.mean(Y == 0)
    assert abs(dropped - 0.3) < 0.01
    np.testing.assert_allclose(np.unique(Y), [0.0, 1 / 0.7])


def test_identity_in_inference(backend, rng):
    layer = _dropout_net(0.5).layers[1]
    X = normal(rng, (4, 6))
    assert layer.forward(X, training=False) is X
    assert layer.backward(X) is X


def test_noise_shape_shares_one_mask_over_time(backend, rng):
    layer = _dropout_net(0.5, (None, 1, None)).layers[1]
    X = nnxp.asarray(np.ones((8, 5, 6)), dtype="float64")
    Y = host(layer.forward(X, training=True))
    zero = Y == 0
    assert np.all(zero == zero[:, :1, :])  # same entries dropped at every timestep
    assert 0 < zero.mean() < 1
    dY = host(layer.backward(nnxp.asarray(np.ones((8, 5, 6)), dtype="float64")))
    np.testing.assert_array_equal(dY, Y)  # the backward pass uses the same mask


def test_gradient_through_a_dropout_mask(backend, rng):
    """The training-mode gradient, mask held fixed, matches central differences."""
    net = nnxp.Sequential(
        [nnxp.Dense(3, 6, "tanh"), nnxp.Dropout(0.4, (None, 1, None)), nnxp.Dense(6, 2, "linear")],
        seed=1,
        dtype="float64",
    )
    X, T = normal(rng, (4, 5, 3)), normal(rng, (4, 5, 2))
    _, T_ready, loss, _ = net.prepare(X, T, "mse")
    net._loss_and_delta(X, T_ready, loss, None, training=True)
    analytic = host(net.layers[0].grads["W"])
    mask = net.layers[1]._mask
    dropout = net.layers[1]
    dropout.forward = lambda X, training=False: X * mask  # freeze this mask
    W = host(net.layers[0].W)
    numeric = np.zeros_like(W)
    for idx in np.ndindex(*W.shape):
        for sign in (1, -1):
            Wp = W.copy()
            Wp[idx] += sign * 1e-6
            net.layers[0].W = nnxp.asarray(Wp)
            value = net.evaluate(X, T, "mse")["loss"]
            numeric[idx] += sign * value / 2e-6
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


def test_masks_are_reproducible_by_seed(backend):
    X = nnxp.asarray(np.ones((4, 6)), dtype="float64")
    a = host(_dropout_net(0.5).layers[1].forward(X, training=True))
    b = host(_dropout_net(0.5).layers[1].forward(X, training=True))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, "half", True])
def test_bad_rates_are_refused(rate):
    with pytest.raises(ValueError, match=r"Dropout rate must be a number in \[0, 1\)"):
        nnxp.Dropout(rate)


def test_bad_noise_shapes_are_refused(backend, rng):
    layer = _dropout_net(0.5, (None, 2)).layers[1]
    with pytest.raises(ValueError, match=r"noise_shape \(None, 2\) does not broadcast"):
        layer.forward(normal(rng, (4, 6)), training=True)
    layer = _dropout_net(0.5, (None, 1, None)).layers[1]
    with pytest.raises(ValueError, match="has 3 entries but the input has shape"):
        layer.forward(normal(rng, (4, 6)), training=True)
