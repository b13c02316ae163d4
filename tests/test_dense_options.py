"""Dense's options: use_bias, initializers, regularizers; each against PyTorch where it has
the same thing, gradchecked, and round-tripped through config, save/load and pickling."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from helpers import host, normal

import nnxp
from nnxp import initializers, regularizers

torch = pytest.importorskip("torch")


def test_dense_without_bias_matches_torch(backend, rng):
    net = nnxp.Sequential(
        [nnxp.Dense(4, 5, "tanh", use_bias=False), nnxp.Dense(5, 3, "linear", use_bias=False)],
        dtype="float64",
    )
    assert all(set(layer.params) == {"W"} for layer in net.layers)
    X, T = normal(rng, (6, 4)), normal(rng, (6, 3))
    value, grads = net.loss_and_gradient(X, T, "mse")
    assert all(set(g) == {"W"} for g in grads)
    W1, W2 = (torch.tensor(host(layer.W), requires_grad=True) for layer in net.layers)
    E = torch.nn.functional.mse_loss(
        torch.tanh(torch.tensor(host(X)) @ W1.T) @ W2.T, torch.tensor(host(T))
    )
    E.backward()
    assert value == pytest.approx(E.item(), rel=1e-12)
    np.testing.assert_allclose(host(grads[0]["W"]), W1.grad.numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(host(grads[1]["W"]), W2.grad.numpy(), rtol=1e-10, atol=1e-14)
    assert nnxp.gradcheck(net, X, T, "mse") < 1e-6
    with pytest.raises(AttributeError, match="use_bias=False"):
        _ = net.layers[0].b


NAMES = ["glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_normal"]
VARIANCE = {  # of W (fan_out=300, fan_in=200)
    "glorot_uniform": 2 / 500,
    "glorot_normal": 2 / 500,
    "he_uniform": 2 / 200,
    "he_normal": 2 / 200,
    "lecun_normal": 1 / 200,
}


@pytest.mark.parametrize("name", NAMES)
def test_initializer_variance_and_same_weights_on_every_backend(backend, name):
    layer = nnxp.Dense(200, 300, kernel_initializer=name)
    nnxp.Sequential([layer], seed=3)
    W = host(layer.W)
    assert W.shape == (300, 200)
    assert abs(W.var() / VARIANCE[name] - 1) < 0.05
    with nnxp.use_backend("numpy"):
        again = nnxp.Dense(200, 300, kernel_initializer=name)
        nnxp.Sequential([again], seed=3)
    np.testing.assert_array_equal(W, host(again.W).astype(W.dtype))


def test_default_initializer_is_unchanged(backend):
    """The same seed gives the weights it gave before the options existed."""
    layer = nnxp.Dense(5, 4, "relu")
    nnxp.Sequential([layer], seed=7, dtype="float64")
    limit = math.sqrt(6 / 5)
    np.testing.assert_array_equal(
        host(layer.W), np.random.default_rng(7).uniform(-limit, limit, size=(4, 5))
    )
    assert layer.kernel_initializer.name == "he_uniform" and layer.init == "he_uniform"


@pytest.mark.parametrize("shape", [(3, 7), (7, 3), (5, 5)])
def test_orthogonal_is_orthogonal(backend, shape):
    layer = nnxp.Dense(shape[1], shape[0], kernel_initializer={"name": "orthogonal", "gain": 2.0})
    nnxp.Sequential([layer], dtype="float64")
    W = host(layer.W) / 2.0
    small = W @ W.T if shape[0] <= shape[1] else W.T @ W
    np.testing.assert_allclose(small, np.eye(min(shape)), atol=1e-12)


def test_constant_zeros_ones_and_callables(backend):
    seen = {}

    def fill(shape, rng):
        seen["rng"] = rng
        return np.arange(math.prod(shape), dtype=float).reshape(shape)

    a = nnxp.Dense(3, 2, kernel_initializer=fill, bias_initializer=initializers.constant(0.5))
    b = nnxp.Dense(2, 2, kernel_initializer="ones", bias_initializer="ones")
    c = nnxp.Dense(2, 2, kernel_initializer="zeros")
    nnxp.Sequential([a, b, c], dtype="float64")
    assert isinstance(seen["rng"], np.random.Generator)
    np.testing.assert_array_equal(host(a.W), np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(host(a.b), [0.5, 0.5])
    np.testing.assert_array_equal(host(b.W), np.ones((2, 2)))
    np.testing.assert_array_equal(host(b.b), np.ones(2))
    np.testing.assert_array_equal(host(c.W), np.zeros((2, 2)))
    bad = nnxp.Dense(3, 2, kernel_initializer=lambda shape, rng: np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"returned shape \(3, 3\), expected \(2, 3\)"):
        nnxp.Sequential([bad])


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(
        ValueError,
        match="Dense kernel_initializer: unknown initializer 'xavier'; valid names are "
        "glorot_uniform, .*orthogonal",
    ):
        nnxp.Dense(2, 2, kernel_initializer="xavier")
    with pytest.raises(ValueError, match="Dense bias_initializer: unknown initializer"):
        nnxp.Dense(2, 2, bias_initializer="random")
    with pytest.raises(
        ValueError,
        match="Dense kernel_regularizer: unknown regularizer 'l3'; valid names are l1, l2, l1_l2",
    ):
        nnxp.Dense(2, 2, kernel_regularizer="l3")
    with pytest.raises(ValueError, match="factor l2 must be a finite number >= 0"):
        regularizers.l2(-1.0)
    with pytest.raises(ValueError, match="give kernel_initializer or its older name init"):
        nnxp.Dense(2, 2, kernel_initializer="zeros", init="ones")
    with pytest.raises(ValueError, match="bias_regularizer needs use_bias=True"):
        nnxp.Dense(2, 2, use_bias=False, bias_regularizer="l2")
    with pytest.raises(TypeError, match="use_bias must be True or False"):
        nnxp.Dense(2, 2, use_bias=1)


def test_numpy_scalars_are_numbers_and_bools_are_not():
    layer = nnxp.Dense(
        np.int64(3), np.int32(8), kernel_regularizer=regularizers.l2(np.float32(0.5))
    )
    assert (layer.n_inputs, layer.n_outputs) == (3, 8) and type(layer.n_outputs) is int
    assert layer.get_config()["kernel_regularizer"] == {"name": "l2", "factor": 0.5}
    assert nnxp.Dropout(np.float64(0.25)).rate == 0.25
    assert nnxp.Dropout(0.1, noise_shape=(None, np.int64(1))).noise_shape == (None, 1)
    for bad in (True, 0, -2, 2.0, "3"):
        with pytest.raises(ValueError, match="Dense n_outputs must be a positive integer"):
            nnxp.Dense(3, bad)
    with pytest.raises(ValueError, match="Dropout rate"):
        nnxp.Dropout(True)


@pytest.mark.parametrize(
    "reg,torch_penalty",
    [
        ("l1", lambda w: 0.01 * w.abs().sum()),
        ("l2", lambda w: 0.01 * (w * w).sum()),
        (
            {"name": "l1_l2", "l1": 0.02, "l2": 0.03},
            lambda w: 0.02 * w.abs().sum() + 0.03 * (w * w).sum(),
        ),
    ],
    ids=["l1", "l2", "l1_l2"],
)
def test_regularizers_match_torch_and_enter_loss_and_gradient(backend, rng, reg, torch_penalty):
    net = nnxp.Sequential(
        [
            nnxp.Dense(4, 5, "tanh", kernel_regularizer=reg, bias_regularizer=reg),
            nnxp.Dense(5, 3, "softmax", kernel_regularizer=reg),
        ],
        dtype="float64",
    )
    for layer in net.layers:
        layer.b = nnxp.asarray(rng.uniform(-0.5, 0.5, layer.n_outputs))
    penalty, grads = net.layers[0].regularization()
    W1 = torch.tensor(host(net.layers[0].W), requires_grad=True)
    b1 = torch.tensor(host(net.layers[0].b), requires_grad=True)
    p = torch_penalty(W1) + torch_penalty(b1)
    p.backward()
    assert float(penalty) == pytest.approx(p.item(), rel=1e-13)
    np.testing.assert_allclose(host(grads["W"]), W1.grad.numpy(), rtol=1e-13)
    np.testing.assert_allclose(host(grads["b"]), b1.grad.numpy(), rtol=1e-13)
    # the whole loss: cross-entropy (mean) + every penalty written out, as in torch
    X = normal(rng, (6, 4))
    labels = rng.integers(0, 3, size=6)
    value, net_grads = net.loss_and_gradient(X, nnxp.asarray(labels), "cross_entropy")
    Ws = [torch.tensor(host(layer.W), requires_grad=True) for layer in net.layers]
    bs = [torch.tensor(host(layer.b), requires_grad=True) for layer in net.layers]
    A = torch.tanh(torch.tensor(host(X)) @ Ws[0].T + bs[0]) @ Ws[1].T + bs[1]
    E = torch.nn.functional.cross_entropy(A, torch.tensor(labels))
    E = E + torch_penalty(Ws[0]) + torch_penalty(bs[0]) + torch_penalty(Ws[1])
    E.backward()
    assert value == pytest.approx(E.item(), rel=1e-12)
    for i, g in enumerate(net_grads):
        np.testing.assert_allclose(host(g["W"]), Ws[i].grad.numpy(), rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(host(g["b"]), bs[i].grad.numpy(), rtol=1e-10, atol=1e-14)
    assert nnxp.gradcheck(net, X, nnxp.asarray(labels), "cross_entropy") < 1e-6


def _all_options():
    return nnxp.Dense(
        3,
        4,
        {"name": "gelu", "approximate": "tanh"},
        use_bias=True,
        kernel_initializer={"name": "orthogonal", "gain": 0.5},
        bias_initializer=initializers.constant(0.1),
        kernel_regularizer=regularizers.l1_l2(0.001, 0.002),
        bias_regularizer="l2",
    )


def test_every_option_round_trips_through_config_save_load_and_pickle(backend, rng, tmp_path):
    layer = _all_options()
    config = layer.get_config()
    again = nnxp.layers.layer_from_config(config)
    assert again.get_config() == config
    nnxp.layers.check_rebuildable(layer)
    net = nnxp.Sequential([layer, nnxp.Dense(4, 2, use_bias=False)], dtype="float64")
    X, T = normal(rng, (5, 3)), normal(rng, (5, 2))
    before = net.evaluate(X, T, "mse")["loss"]
    for copy in (
        pickle.loads(pickle.dumps(net)),
        net.clone(),
        nnxp.load(net.save(tmp_path / "net.npz")),
    ):
        assert [c.get_config() for c in copy.layers] == [c.get_config() for c in net.layers]
        assert copy.evaluate(X, T, "mse")["loss"] == pytest.approx(before, rel=1e-14)
        np.testing.assert_array_equal(host(copy.predict(X)), host(net.predict(X)))


def test_a_callable_initializer_saves_and_loads_but_cannot_redraw(backend, tmp_path):
    layer = nnxp.Dense(2, 2, kernel_initializer=lambda shape, rng: np.full(shape, 0.3))
    net = nnxp.Sequential([layer])
    loaded = nnxp.load(net.save(tmp_path / "net.npz"))
    np.testing.assert_allclose(host(loaded.layers[0].W), 0.3, rtol=1e-7)
    rebuilt = nnxp.layers.layer_from_config(loaded.layers[0].get_config())
    with pytest.raises(ValueError, match="pass the function again"):
        nnxp.Sequential([rebuilt])


def test_old_configs_with_init_still_load():
    layer = nnxp.layers.layer_from_config(
        {
            "type": "Dense",
            "n_inputs": 2,
            "n_outputs": 3,
            "activation": {"name": "relu"},
            "init": "he_normal",
        }
    )
    assert layer.kernel_initializer.name == "he_normal" and layer.use_bias


def test_dense_without_bias_over_time_axes(backend, rng):
    from layer_helpers import layer_gradcheck

    layer = nnxp.Dense(3, 2, "softsign", use_bias=False)
    X = normal(rng, (2, 4, 3))
    Y = layer(X)
    np.testing.assert_allclose(
        host(Y), (lambda a: a / (1 + np.abs(a)))(host(X) @ host(layer.W).T), rtol=1e-13
    )
    assert layer_gradcheck(layer, X) < 1e-7
