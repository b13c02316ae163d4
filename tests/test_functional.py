"""Kernels against a plain NumPy float64 transcription of the classic answer."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import host, normal

import nnxp
from nnxp import functional as F

REFERENCE = {  # g(A) and g'(A), written the obvious way
    "linear": (lambda A: A, lambda A: np.ones_like(A)),
    "sigmoid": (lambda A: 1 / (1 + np.exp(-A)), lambda A: np.exp(-A) / (1 + np.exp(-A)) ** 2),
    "tanh": (np.tanh, lambda A: 1 / np.cosh(A) ** 2),
    "relu": (lambda A: np.maximum(A, 0), lambda A: (A > 0).astype(float)),
    "leaky_relu": (lambda A: np.where(A > 0, A, 0.01 * A), lambda A: np.where(A > 0, 1, 0.01)),
}


@pytest.mark.parametrize("name", list(REFERENCE))
def test_activation_and_derivative_from_output(backend, rng, name):
    A = normal(rng, (6, 5), scale=3)
    g, gd = REFERENCE[name]
    act = F.get_activation(name)
    Y = act(A)
    np.testing.assert_allclose(host(Y), g(host(A)), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(host(act.derivative(Y)), gd(host(A)), rtol=1e-10, atol=1e-15)


def test_softmax_rows_sum_to_one_over_the_last_axis(backend, rng):
    A = normal(rng, (4, 3, 5), scale=50)
    Y = host(F.softmax(A))
    np.testing.assert_allclose(Y.sum(axis=-1), 1.0, rtol=1e-12)
    E = np.exp(host(A) - host(A).max(axis=-1, keepdims=True))
    np.testing.assert_allclose(Y, E / E.sum(axis=-1, keepdims=True), rtol=1e-12)


def test_softmax_backward_is_the_jacobian_vector_product(backend, rng):
    A, dEdY = normal(rng, (3, 4)), normal(rng, (3, 4))
    Y = F.get_activation("softmax")(A)
    got = host(F.get_activation("softmax").backward(Y, dEdY))
    y, v = host(Y), host(dEdY)
    expected = np.stack([(np.diag(r) - np.outer(r, r)) @ w for r, w in zip(y, v)])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_no_overflow_at_extreme_logits(backend, dtype):
    A = nnxp.asarray(np.array([[-1e4, 0.0, 1e4], [-1e30, 1e30, 0.0]]), dtype=dtype)
    for values in (F.softmax(A), F.log_softmax(A), F.softplus(A), F.get_activation("sigmoid")(A)):
        assert np.all(np.isfinite(host(values)))
    # the negative tail ends in a subnormal (exp(-A) is clipped before it overflows)
    np.testing.assert_allclose(host(F.get_activation("sigmoid")(A))[0], [0.0, 0.5, 1.0], atol=1e-37)
    np.testing.assert_allclose(host(F.log_softmax(A))[0], [-2e4, -1e4, 0.0], rtol=1e-6)
    np.testing.assert_allclose(host(F.softplus(A))[0], [0.0, np.log(2), 1e4], rtol=1e-6)


def test_dense_forward_and_backward_match_the_classic_answer(backend, rng):
    X, W, b, dEdY = normal(rng, (7, 4)), normal(rng, (3, 4)), normal(rng, (3,)), normal(rng, (7, 3))
    act = F.get_activation("tanh")
    Y = F.dense_forward(X, W, b, act)
    x, w, bb, d = host(X), host(W), host(b), host(dEdY)
    y = np.tanh(x @ w.T + bb)
    np.testing.assert_allclose(host(Y), y, rtol=1e-12)
    # gd as a plain callable of Y, the classic way
    dX, dW, db = F.dense_backward(dEdY, W, Y, X, lambda Y: 1 - Y * Y)
    deltas = (1 - y**2) * d
    np.testing.assert_allclose(host(dX), deltas @ w, rtol=1e-12)
    np.testing.assert_allclose(host(dW), deltas.T @ x, rtol=1e-12)
    np.testing.assert_allclose(host(db), deltas.sum(axis=0), rtol=1e-12)
    # and with the activation object
    dX2, dW2, db2 = F.dense_backward(dEdY, W, Y, X, act)
    np.testing.assert_allclose(host(dW2), host(dW), rtol=1e-14)
    assert F.dense_backward(dEdY, W, Y, X, act, need_dX=False)[0] is None


def test_dense_over_time_folds_leading_axes(backend, rng):
    X, W, b = normal(rng, (2, 5, 4)), normal(rng, (3, 4)), normal(rng, (3,))
    dEdY = normal(rng, (2, 5, 3))
    act = F.get_activation("linear")
    Y = F.dense_forward(X, W, b, act)
    assert tuple(Y.shape) == (2, 5, 3)
    x, w, d = host(X), host(W), host(dEdY)
    np.testing.assert_allclose(host(Y), x @ w.T + host(b), rtol=1e-12)
    dX, dW, db = F.dense_backward(dEdY, W, Y, X, act)
    assert tuple(dX.shape) == (2, 5, 4)
    np.testing.assert_allclose(host(dW), np.einsum("ntk,nti->ki", d, x), rtol=1e-12)
    np.testing.assert_allclose(host(db), d.sum(axis=(0, 1)), rtol=1e-12)
    np.testing.assert_allclose(host(dX), d @ w, rtol=1e-12)


def test_kernels_never_mutate_their_inputs(backend, rng):
    X, W, b, dEdY = normal(rng, (5, 4)), normal(rng, (3, 4)), normal(rng, (3,)), normal(rng, (5, 3))
    before = [host(a).copy() for a in (X, W, b, dEdY)]
    for name in F.ACTIVATIONS:
        act = F.get_activation(name)
        Y = F.dense_forward(X, W, b, act)
        y = host(Y).copy()
        if act.needs_A:  # dense_backward works from Y; these need A
            A = F.affine_forward(X, W, b)
            a = host(A).copy()
            act.backward(Y, dEdY, None, A)
            np.testing.assert_array_equal(host(A), a)
        else:
            F.dense_backward(dEdY, W, Y, X, act)
        np.testing.assert_array_equal(host(Y), y)
    for a, copy in zip((X, W, b, dEdY), before):
        np.testing.assert_array_equal(host(a), copy)


def test_unknown_activation_lists_the_valid_names():
    with pytest.raises(ValueError, match="valid names are linear, sigmoid, tanh, relu"):
        F.get_activation("mish")
    with pytest.raises(ValueError, match="alpha"):
        F.get_activation({"name": "leaky_relu", "alpha": -1})
