"""Masked softmax: exact zeros, renormalised rows, no NaN anywhere, gradients checked."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import host, normal

import nnxp
from nnxp import functional as F

MASK = np.array(
    [[1, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1], [1, 0, 0, 1]], dtype=bool
)  # ordinary, one allowed entry, all masked, none masked, two allowed


def test_masked_softmax_zeros_and_renormalises(backend, rng):
    A = normal(rng, (5, 4), scale=3)
    Y = host(F.masked_softmax(A, nnxp.asarray(MASK)))
    assert np.all(Y[~MASK] == 0.0)
    np.testing.assert_allclose(Y.sum(axis=1), [1, 1, 0, 1, 1], rtol=1e-12)
    a = host(A)
    for row in (0, 4):
        allowed = MASK[row]
        e = np.exp(a[row, allowed] - a[row, allowed].max())
        np.testing.assert_allclose(Y[row, allowed], e / e.sum(), rtol=1e-12)
    assert Y[1, 2] == 1.0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_extreme_logits_on_masked_entries_change_nothing(backend, dtype):
    """Masked logits are excluded before the max-subtraction: even +1e30 there is harmless."""
    A = nnxp.asarray(np.array([[1e30, 0.0, 1.0, -1e4], [-1e4, 1e4, 3.0, 1e30]]), dtype=dtype)
    mask = nnxp.asarray(np.array([[0, 1, 1, 1], [1, 1, 1, 0]], dtype=bool))
    Y = host(F.masked_softmax(A, mask))
    assert np.all(np.isfinite(Y)) and Y[0, 0] == 0 and Y[1, 3] == 0
    np.testing.assert_allclose(
        Y[0, 1:3], np.exp([-1.0, 0.0]) / np.exp([-1.0, 0.0]).sum(), rtol=1e-6
    )
    np.testing.assert_allclose(Y[1], [0, 1, 0, 0], atol=1e-6)
    L = host(F.masked_log_softmax(A, mask))
    assert np.all(np.isfinite(L[mask_host := host(mask).astype(bool)])) and np.all(
        L[~mask_host] == -np.inf
    )


def _masked_net(output="softmax"):
    return nnxp.Sequential([nnxp.Dense(3, 5, "tanh"), nnxp.Dense(5, 4, output)], dtype="float64")


def test_masked_loss_and_gradient_are_finite_and_checked(backend, rng):
    net = _masked_net()
    X = normal(rng, (5, 3))
    T = nnxp.asarray(
        np.array([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0.0]])
    )
    mask = nnxp.asarray(MASK)
    value, grads = net.loss_and_gradient(X, T, "cross_entropy", mask=mask)
    assert np.isfinite(value)
    for g in grads:
        assert all(np.all(np.isfinite(host(v))) for v in g.values())
    assert nnxp.gradcheck(net, X, T, "cross_entropy", mask=mask) < 1e-6
    assert nnxp.gradcheck(net, X, normal(rng, (5, 4)), "mse", mask=mask) < 1e-6


def test_output_delta_is_y_minus_t_on_allowed_entries_and_zero_on_masked(backend, rng):
    net = nnxp.Sequential([nnxp.Dense(3, 4, "softmax")], dtype="float64")
    X = normal(rng, (5, 3))
    T = nnxp.asarray(
        np.array([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0.0]])
    )
    mask = nnxp.asarray(MASK)
    _, grads = net.loss_and_gradient(X, T, "cross_entropy", mask=mask)
    Y = host(net.predict(X, mask=mask))
    # rows of T sum to 1, except the all-masked row (T = Y = 0), which N does not count
    expected = (Y - host(T)) / 4
    assert np.all(expected[~MASK] == 0)
    np.testing.assert_allclose(host(grads[0]["b"]), expected.sum(axis=0), atol=1e-15)


def test_fully_masked_rows_contribute_nothing(backend, rng):
    net = _masked_net()
    X = normal(rng, (2, 3))
    T = nnxp.asarray(np.array([[1.0, 0, 0, 0], [0, 0, 0, 0]]))
    mask = nnxp.asarray(np.array([[1, 1, 0, 0], [0, 0, 0, 0]], dtype=bool))
    full, _ = net.loss_and_gradient(X, T, "cross_entropy", mask=mask)
    first, _ = net.loss_and_gradient(X[0:1, ...], T[0:1, ...], "cross_entropy", mask=mask[0:1, ...])
    assert full == pytest.approx(first, rel=1e-12)  # the fully masked row is not counted


def test_bad_masks_and_targets_are_refused(backend, rng):
    net = _masked_net()
    X, T = normal(rng, (5, 3)), nnxp.asarray(np.eye(4)[[0, 2, 2, 3, 0]])
    with pytest.raises(
        ValueError, match=r"mask must have the shape of the network output \(5, 4\), got \(5, 3\)"
    ):
        net.forward(X, mask=nnxp.asarray(np.ones((5, 3), dtype=bool)))
    with pytest.raises(ValueError, match="mask must hold only 0 and 1"):
        net.forward(X, mask=nnxp.asarray(np.full((5, 4), 2.0)))
    with pytest.raises(ValueError, match="targets put probability on outputs the mask forbids"):
        net.loss_and_gradient(X, T, "cross_entropy", mask=nnxp.asarray(MASK))
    with pytest.raises(ValueError, match="a mask applies to a softmax output layer"):
        _masked_net("sigmoid").forward(X, mask=nnxp.asarray(MASK))


def test_fit_with_a_mask_never_puts_probability_on_forbidden_outputs(backend, rng):
    n = 64
    X = normal(rng, (n, 3), dtype="float32")
    allowed = rng.random((n, 4)) < 0.6
    allowed[:, 0] = True
    labels = np.array([rng.choice(np.flatnonzero(row)) for row in allowed])
    T = nnxp.asarray(np.eye(4)[labels], dtype="float32")
    mask = nnxp.asarray(allowed.astype(np.float32))  # 0/1 numbers work as well as booleans
    net = nnxp.Sequential([nnxp.Dense(3, 8, "relu"), nnxp.Dense(8, 4, "softmax")])
    history = net.fit(
        X, T, loss="cross_entropy", epochs=5, batch_size=16, mask=mask, progress=False
    )
    assert all(np.isfinite(history.history["loss"]))
    P = host(net.predict(X, mask=mask, batch_size=10))
    assert np.all(P[~allowed] == 0.0)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-6)
