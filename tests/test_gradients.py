"""Central-difference checks of every activation x loss x depth x batch x rank, per backend."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import host, normal, targets_for

import nnxp

HIDDEN = ["linear", "sigmoid", "tanh", "relu", "leaky_relu", "softmax"]
OUTPUTS = [  # (output activation, loss)
    ("linear", "mse"),
    ("sigmoid", "mse"),
    ("tanh", "mse"),
    ("leaky_relu", "mse"),
    ("softmax", "mse"),
    ("softmax", "cross_entropy"),
    ("sigmoid", "binary_cross_entropy"),
]
TOLERANCE = 1e-6


def build(depth, hidden, output, n_in=3, width=4, n_out=3, seed=0, dtype="float64"):
    sizes = [n_in] + [width] * (depth - 1) + [n_out]
    layers = [nnxp.Dense(a, b, hidden) for a, b in zip(sizes[:-2], sizes[1:-1])]
    layers.append(nnxp.Dense(sizes[-2], sizes[-1], output))
    net = nnxp.Sequential(layers, seed=seed, dtype=dtype)
    # non-zero biases, as after training: with zero ones a layer of dead relus puts the next
    # pre-activation exactly on a kink, where no derivative exists to check
    bias_rng = np.random.default_rng(seed + 1)
    for layer in net.layers:
        layer.b = nnxp.asarray(bias_rng.uniform(-0.5, 0.5, layer.n_outputs), dtype=dtype)
    return net


def _cases():
    for depth in (1, 2, 3, 4):
        for hidden in HIDDEN if depth > 1 else ["-"]:
            for output, loss in OUTPUTS:
                yield pytest.param(
                    depth, hidden, output, loss, id=f"d{depth}-{hidden}-{output}-{loss}"
                )


@pytest.mark.parametrize("shape", [(1,), (5,), (2, 3)], ids=["batch1", "batch5", "seq2x3"])
@pytest.mark.parametrize("depth,hidden,output,loss", list(_cases()))
def test_gradcheck_matrix(backend, rng, depth, hidden, output, loss, shape):
    net = build(depth, hidden if depth > 1 else "linear", output)
    X = normal(rng, (*shape, 3))
    T = targets_for(loss, rng, (*shape, 3))
    error = nnxp.gradcheck(net, X, T, loss)
    assert error < TOLERANCE, f"max relative error {error:.2e}"


def test_gradcheck_detects_a_wrong_gradient(backend, rng, monkeypatch):
    """The check itself can fail: a derivative off by 10% is caught."""
    net = build(2, "tanh", "linear")
    X, T = normal(rng, (4, 3)), normal(rng, (4, 3))
    assert nnxp.gradcheck(net, X, T, "mse") < TOLERANCE
    original = nnxp.functional.Tanh.derivative
    monkeypatch.setattr(
        nnxp.functional.Tanh, "derivative", lambda self, Y, xp=None: 1.1 * original(self, Y, xp)
    )
    assert nnxp.gradcheck(net, X, T, "mse") > 1e-3


def test_gradcheck_leaky_relu_alpha(backend, rng):
    net = nnxp.Sequential(
        [nnxp.Dense(3, 6, {"name": "leaky_relu", "alpha": 0.3}), nnxp.Dense(6, 2, "linear")],
        dtype="float64",
    )
    X, T = normal(rng, (7, 3)), normal(rng, (7, 2))
    assert nnxp.gradcheck(net, X, T, "mse") < TOLERANCE


def test_gradcheck_with_integer_labels(backend, rng):
    net = build(3, "tanh", "softmax")
    X = normal(rng, (6, 3))
    labels = nnxp.asarray(rng.integers(0, 3, size=6))
    assert nnxp.gradcheck(net, X, labels, "cross_entropy") < TOLERANCE


def test_gradcheck_with_probability_targets(backend, rng):
    """Soft targets (label smoothing, distillation): the fused delta holds for any rows
    that sum to one; rows that do not are refused."""
    net = build(2, "sigmoid", "softmax")
    X = normal(rng, (5, 3))
    P = rng.uniform(0, 1, size=(5, 3))
    T = nnxp.asarray(P / P.sum(axis=1, keepdims=True))
    assert nnxp.gradcheck(net, X, T, "cross_entropy") < TOLERANCE
    with pytest.raises(ValueError, match="targets must be probability rows: .* row sums lie in"):
        net.loss_and_gradient(X, nnxp.asarray(P), "cross_entropy")


def test_float32_network_is_checked_in_float64(backend, rng):
    net = build(3, "tanh", "softmax", dtype="float32")
    assert net.dtype == backend.xp.float32
    X = normal(rng, (4, 3), dtype="float32")
    T = targets_for("cross_entropy", rng, (4, 3), dtype="float32")
    assert nnxp.gradcheck(net, X, T, "cross_entropy") < TOLERANCE


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "output,loss", [("softmax", "cross_entropy"), ("sigmoid", "binary_cross_entropy")]
)
def test_extreme_logits_stay_finite(backend, dtype, output, loss):
    """Logits of +-1e4 and beyond: finite loss, gradient (Y - T)/N, no NaN."""
    net = nnxp.Sequential([nnxp.Dense(2, 3, output)], dtype=dtype)
    net.layers[0].W = nnxp.asarray(np.array([[1e4, 0], [-1e4, 0], [0, 1e5]]), dtype=dtype)
    X = nnxp.asarray(np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]), dtype=dtype)
    if loss == "cross_entropy":
        T = nnxp.asarray(np.eye(3)[[1, 0, 0, 2]], dtype=dtype)  # confidently wrong rows too
    else:
        T = nnxp.asarray(np.array([[0, 1, 0], [1, 0, 1], [0, 0, 0], [1, 1, 1.0]]), dtype=dtype)
    value, grads = net.loss_and_gradient(X, T, loss)
    assert np.isfinite(value) and value > 1e3  # the wrong rows cost about 1e4 each
    for g in grads[0].values():
        assert np.all(np.isfinite(host(g)))
    Y = host(net.predict(X))
    n = 4 if loss == "cross_entropy" else 12
    expected_db = (Y - host(T)).sum(axis=0) / n
    np.testing.assert_allclose(host(grads[0]["b"]), expected_db, atol=1e-6)


def test_values_and_gradients_match_torch_autograd(backend, rng):
    """micrograd's test: the same net in PyTorch float64, values and gradients compared."""
    torch = pytest.importorskip("torch")
    acts = {
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "relu": torch.relu,
        "leaky_relu": lambda a: torch.nn.functional.leaky_relu(a, 0.01),
        "linear": lambda a: a,
    }
    for hidden in acts:
        for output, loss in OUTPUTS:
            if output not in acts and output != "softmax":
                continue
            net = build(3, hidden, output, n_in=4, width=5, n_out=3, seed=3)
            X = normal(rng, (6, 4))
            T = targets_for(loss, rng, (6, 3))
            value, grads = net.loss_and_gradient(X, T, loss)
            Ws = [torch.tensor(host(layer.W), requires_grad=True) for layer in net.layers]
            bs = [torch.tensor(host(layer.b), requires_grad=True) for layer in net.layers]
            h = torch.tensor(host(X))
            for W, b in zip(Ws[:-1], bs[:-1]):
                h = acts[hidden](h @ W.T + b)
            A = h @ Ws[-1].T + bs[-1]
            t = torch.tensor(host(T))
            if loss == "cross_entropy":
                E = torch.nn.functional.cross_entropy(A, t)
            elif loss == "binary_cross_entropy":
                E = torch.nn.functional.binary_cross_entropy_with_logits(A, t)
            else:
                Y = torch.softmax(A, -1) if output == "softmax" else acts[output](A)
                E = torch.nn.functional.mse_loss(Y, t)
            E.backward()
            assert value == pytest.approx(E.item(), rel=1e-12, abs=1e-14)
            for i, layer_grads in enumerate(grads):
                np.testing.assert_allclose(
                    host(layer_grads["W"]), Ws[i].grad.numpy(), rtol=1e-10, atol=1e-13
                )
                np.testing.assert_allclose(
                    host(layer_grads["b"]), bs[i].grad.numpy(), rtol=1e-10, atol=1e-13
                )


# ----------------------------------------------------------------- the newer activations
NEW_ACTIVATIONS = {  # id -> (config, torch function)
    "elu": ("elu", "elu"),
    "elu0.5": ({"name": "elu", "alpha": 0.5}, "elu0.5"),
    "selu": ("selu", "selu"),
    "softplus": ("softplus", "softplus"),
    "softsign": ("softsign", "softsign"),
    "silu": ("silu", "silu"),
    "swish": ("swish", "silu"),
    "gelu": ("gelu", "gelu"),
    "gelu_tanh": ({"name": "gelu", "approximate": "tanh"}, "gelu_tanh"),
    "hard_sigmoid": ("hard_sigmoid", "hardsigmoid"),
    "log_sigmoid": ("log_sigmoid", "logsigmoid"),
}


def _torch_activation(key):
    import torch

    TF = torch.nn.functional
    return {
        "elu": TF.elu,
        "elu0.5": lambda a: TF.elu(a, alpha=0.5),
        "selu": TF.selu,
        "softplus": TF.softplus,
        "softsign": TF.softsign,
        "silu": TF.silu,
        "gelu": TF.gelu,
        "gelu_tanh": lambda a: TF.gelu(a, approximate="tanh"),
        "hardsigmoid": TF.hardsigmoid,
        "logsigmoid": TF.logsigmoid,
    }[key]


@pytest.mark.parametrize(
    "output,loss",
    [("linear", "mse"), ("softmax", "cross_entropy"), ("sigmoid", "binary_cross_entropy")],
)
@pytest.mark.parametrize("hidden", list(NEW_ACTIVATIONS))
def test_gradcheck_new_hidden_activations(backend, rng, hidden, output, loss):
    shape = (2, 3)  # a batch of sequences: the leading axes fold as a plain batch does
    net = build(3, NEW_ACTIVATIONS[hidden][0], output)
    X = normal(rng, (*shape, 3))
    T = targets_for(loss, rng, (*shape, 3))
    error = nnxp.gradcheck(net, X, T, loss)
    assert error < TOLERANCE, f"max relative error {error:.2e}"


@pytest.mark.parametrize("output", list(NEW_ACTIVATIONS))
def test_gradcheck_new_output_activations(backend, rng, output):
    """As the output of an mse network the loss takes the activation's backward with A."""
    net = build(2, "tanh", NEW_ACTIVATIONS[output][0])
    X, T = normal(rng, (6, 3)), normal(rng, (6, 3))
    error = nnxp.gradcheck(net, X, T, "mse")
    assert error < TOLERANCE, f"max relative error {error:.2e}"


@pytest.mark.parametrize("hidden", list(NEW_ACTIVATIONS))
def test_new_activations_in_a_network_match_torch_autograd(backend, rng, hidden):
    torch = pytest.importorskip("torch")
    config, key = NEW_ACTIVATIONS[hidden]
    g = _torch_activation(key)
    net = build(3, config, "softmax", n_in=4, width=5, n_out=3, seed=5)
    X = normal(rng, (6, 4), scale=2)
    labels = rng.integers(0, 3, size=6)
    value, grads = net.loss_and_gradient(X, nnxp.asarray(labels), "cross_entropy")
    Ws = [torch.tensor(host(layer.W), requires_grad=True) for layer in net.layers]
    bs = [torch.tensor(host(layer.b), requires_grad=True) for layer in net.layers]
    h = torch.tensor(host(X))
    for W, b in zip(Ws[:-1], bs[:-1]):
        h = g(h @ W.T + b)
    E = torch.nn.functional.cross_entropy(h @ Ws[-1].T + bs[-1], torch.tensor(labels))
    E.backward()
    assert value == pytest.approx(E.item(), rel=1e-12)
    # torch's float64 hardsigmoid backward uses 1/6 rounded to float32
    rtol = 1e-7 if key == "hardsigmoid" else 1e-10
    for i, layer_grads in enumerate(grads):
        np.testing.assert_allclose(
            host(layer_grads["W"]), Ws[i].grad.numpy(), rtol=rtol, atol=1e-13
        )
        np.testing.assert_allclose(
            host(layer_grads["b"]), bs[i].grad.numpy(), rtol=rtol, atol=1e-13
        )
