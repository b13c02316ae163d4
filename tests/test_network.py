"""Sequential: construction, the same output on every backend, and bad input refused."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import host, normal

import nnxp


def small_net(dtype="float64", seed=0):
    return nnxp.Sequential(
        [nnxp.Dense(4, 6, "relu"), nnxp.Dense(6, 5, "tanh"), nnxp.Dense(5, 3, "softmax")],
        seed=seed,
        dtype=dtype,
    )


def test_same_seeded_net_same_output_on_every_backend():
    X = np.random.default_rng(0).standard_normal((9, 4))
    outputs = {}
    for name in nnxp.available_backends():
        with nnxp.use_backend(name):
            outputs[name] = host(small_net().forward(nnxp.asarray(X, dtype="float64")))
    reference = outputs.pop("numpy")
    for name, Y in outputs.items():
        np.testing.assert_allclose(Y, reference, rtol=0, atol=1e-12, err_msg=name)


def test_parameters_shapes_dtype_and_initialisation(backend):
    net = small_net(dtype="float32")
    assert net.dtype == backend.xp.float32
    W0, W2 = host(net.layers[0].W), host(net.layers[2].W)
    assert W0.shape == (6, 4) and host(net.layers[0].b).shape == (6,)
    assert np.all(host(net.layers[0].b) == 0)
    assert np.abs(W0).max() <= np.sqrt(6 / 4)  # He-uniform for relu
    assert np.abs(W2).max() <= np.sqrt(6 / (5 + 3))  # Glorot-uniform for softmax
    params = net.parameters()
    assert [sorted(p) for p in params] == [["W", "b"]] * 3


def test_loss_and_gradient_shapes_and_empty_dicts_for_parameterless_layers(backend, rng):
    net = nnxp.Sequential(
        [
            nnxp.Dense(4, 5, "tanh"),
            nnxp.Dropout(0.5),
            nnxp.Dense(5, 3, "linear"),
            nnxp.Activation("softmax"),
        ],
        dtype="float64",
    )
    X = normal(rng, (8, 4))
    labels = nnxp.asarray(rng.integers(0, 3, size=8))
    value, grads = net.loss_and_gradient(X, labels, "cross_entropy")
    assert isinstance(value, float) and value > 0
    assert grads[1] == {} and grads[3] == {}
    assert tuple(grads[0]["W"].shape) == (5, 4) and tuple(grads[2]["b"].shape) == (3,)
    assert nnxp.gradcheck(net, X, labels, "cross_entropy") < 1e-6


def test_backward_returns_dEdX_matching_central_differences(backend, rng):
    net = small_net()
    X = normal(rng, (3, 4))
    Y = net.forward(X)
    V = normal(rng, tuple(Y.shape))  # E = sum(Y * V), so dE/dY = V
    dEdX = host(net.backward(V))
    x, v, eps = host(X), host(V), 1e-6
    numeric = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        for sign in (1, -1):
            xs = x.copy()
            xs[idx] += sign * eps
            numeric[idx] += sign * (host(net.forward(nnxp.asarray(xs))) * v).sum() / (2 * eps)
    np.testing.assert_allclose(dEdX, numeric, rtol=1e-6, atol=1e-9)


def test_predict_in_chunks_equals_predict_at_once(backend, rng):
    net = small_net()
    X = normal(rng, (10, 4))
    np.testing.assert_allclose(host(net.predict(X, batch_size=3)), host(net.predict(X)), atol=1e-14)


def test_integer_inputs_are_cast_to_the_network_dtype(backend):
    net = small_net(dtype="float32")
    X = nnxp.asarray(np.arange(8).reshape(2, 4))
    assert net.predict(X).dtype == backend.xp.float32


def test_weights_are_assignable_and_checked(backend):
    net = small_net()
    net.layers[0].W = nnxp.asarray(np.ones((6, 4)))
    assert np.all(host(net.layers[0].W) == 1)
    with pytest.raises(
        ValueError, match=r"layers\[0\] Dense\(4 -> 6, relu\).W must have shape \(6, 4\)"
    ):
        net.layers[0].W = nnxp.asarray(np.ones((4, 6)))


# ----------------------------------------------------------------- bad input, named errors


def test_mismatched_layer_sizes_are_refused_at_construction():
    with pytest.raises(
        ValueError,
        match=r"Dense\(5 -> 3, linear\) expects 5 inputs but the layer before it gives 6",
    ):
        nnxp.Sequential([nnxp.Dense(4, 6), nnxp.Dense(5, 3)])
    with pytest.raises(ValueError, match="positive integer"):
        nnxp.Dense(0, 3)
    with pytest.raises(TypeError, match="non-empty list"):
        nnxp.Sequential([])


@pytest.mark.parametrize(
    "shape,message",
    [
        ((5, 3), r"expects input of shape \(n_samples, \.\.\., 4\), got shape \(5, 3\)"),
        ((4,), r"expects input of shape .*, got shape \(4,\)"),
    ],
)
def test_wrong_feature_count_or_rank_names_the_layer(backend, rng, shape, message):
    net = small_net()
    with pytest.raises(ValueError, match=r"layers\[0\] Dense\(4 -> 6, relu\) " + message):
        net.forward(normal(rng, shape))


def test_arrays_of_another_backend_are_refused_with_the_fix(backend):
    net = small_net()
    other = "array_api_strict" if backend.name != "array_api_strict" else "numpy"
    with nnxp.use_backend(other):
        X = nnxp.asarray(np.ones((2, 4)))
    with pytest.raises(
        TypeError,
        match=rf"got an array of {other} but the network computes with {backend.name}.*asarray",
    ):
        net.forward(X)


def test_complex_inputs_are_refused(backend):
    if backend.name == "array_api_strict":
        X = backend.xp.asarray(np.ones((2, 4), dtype=complex))
    else:
        X = nnxp.asarray(np.ones((2, 4)))
        X = backend.xp.astype(X, backend.xp.complex128)
    with pytest.raises(TypeError, match="must hold real numbers, got dtype"):
        small_net().forward(X)


def test_targets_are_checked(backend, rng):
    net = small_net()
    X = normal(rng, (5, 4))
    with pytest.raises(ValueError, match="X has 5 rows but T has 4"):
        net.loss_and_gradient(X, normal(rng, (4, 3)), "mse")
    with pytest.raises(ValueError, match=r"targets T must have shape \(5, 3\)"):
        net.loss_and_gradient(X, normal(rng, (5, 2)), "cross_entropy")
    with pytest.raises(ValueError, match=r"class labels must lie in \[0, 3\)"):
        net.loss_and_gradient(X, nnxp.asarray(np.array([0, 1, 2, 3, 0])), "cross_entropy")
    with pytest.raises(
        ValueError, match="unknown loss 'hinge'; valid names are mse, cross_entropy"
    ):
        net.loss_and_gradient(X, normal(rng, (5, 3)), "hinge")


def test_a_cross_entropy_on_the_wrong_output_is_refused(backend, rng):
    net = nnxp.Sequential([nnxp.Dense(4, 3, "sigmoid")], dtype="float64")
    X, T = normal(rng, (2, 4)), normal(rng, (2, 3))
    with pytest.raises(ValueError, match="needs|computed from the logits of a softmax output"):
        net.loss_and_gradient(X, T, "cross_entropy")
    net = nnxp.Sequential([nnxp.Dense(4, 3, "softmax")], dtype="float64")
    with pytest.raises(ValueError, match="sigmoid output layer.*'softmax'"):
        net.loss_and_gradient(X, T, "binary_cross_entropy")


def test_errors_leave_the_network_unchanged(backend, rng):
    net = small_net()
    before = [host(layer.W).copy() for layer in net.layers]
    with pytest.raises(ValueError):
        net.fit(normal(rng, (5, 4)), normal(rng, (4, 3)), loss="mse", progress=False)
    for layer, W in zip(net.layers, before):
        np.testing.assert_array_equal(host(layer.W), W)
