"""Residual and Bidirectional: central differences, PyTorch equality (bidirectional LSTM),
padding, parameter views, config."""

from __future__ import annotations

import numpy as np
import pytest
from sequence_helpers import assert_gradients, build, host, lengths_mask

import nnxp
from nnxp.layers.attention import MultiHeadAttention
from nnxp.layers.core import Dense
from nnxp.layers.normalization import LayerNormalization
from nnxp.layers.recurrent import GRU, LSTM, SimpleRNN
from nnxp.layers.registry import layer_from_config
from nnxp.layers.wrappers import Bidirectional, Residual

torch = pytest.importorskip("torch")

N, T, F, U = 3, 5, 4, 3
LENGTHS = [5, 2, 4]


def _data(seed=1, shape=(N, T, F)):
    return np.random.default_rng(seed).standard_normal(shape)


def _blocks():
    return {
        "attention": lambda: Residual([LayerNormalization(F), MultiHeadAttention(F, 2)]),
        "feedforward": lambda: Residual([LayerNormalization(F), Dense(F, 8, "relu"), Dense(8, F)]),
    }


@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "padded"])
@pytest.mark.parametrize("block", list(_blocks()))
def test_residual_central_differences(backend, block, masked):
    layer = build(_blocks()[block]())
    rng = np.random.default_rng(3)
    for name in list(layer.params):  # non-trivial LayerNorm weights and biases too
        shape = tuple(layer.params[name].shape)
        layer.params[name] = nnxp.asarray(0.5 * rng.standard_normal(shape), dtype="float64")
    mask = lengths_mask(LENGTHS, T) if masked else None
    errors = assert_gradients(layer, nnxp.asarray(_data(), dtype="float64"), mask)
    assert set(errors) == {*layer.params, "X"}


def test_residual_is_x_plus_f_of_x(backend):
    layer = build(Residual([LayerNormalization(F), Dense(F, F, "tanh")]))
    X = nnxp.asarray(_data(), dtype="float64")
    ln, dense = layer.layers
    expected = host(X) + host(dense.forward(ln.forward(X)))
    np.testing.assert_allclose(host(layer.forward(X)), expected, atol=1e-14)


def test_params_view_writes_through(backend):
    layer = build(Residual([LayerNormalization(F), Dense(F, F)]))
    assert sorted(layer.params) == ["0.bias", "0.weight", "1.W", "1.b"]
    X = nnxp.asarray(_data(), dtype="float64")
    layer.forward(X)
    layer.backward(nnxp.asarray(_data(2), dtype="float64"))
    assert sorted(layer.grads) == sorted(layer.params)
    params = layer.params
    params["1.W"] = params["1.W"] - 1.0  # what an optimizer does
    np.testing.assert_array_equal(host(layer.layers[1].params["W"]), host(params["1.W"]))


def _torch_bilstm(layer):
    torch.manual_seed(0)
    ref = torch.nn.LSTM(F, U, batch_first=True, bidirectional=True).double()
    for part, suffix in (("forward", ""), ("backward", "_reverse")):
        for name, tname in (("W_ih", "weight_ih_l0"), ("W_hh", "weight_hh_l0")):
            value = getattr(ref, tname + suffix).detach().numpy()
            layer.params[f"{part}.{name}"] = nnxp.asarray(value, dtype="float64")
        for name, tname in (("b_ih", "bias_ih_l0"), ("b_hh", "bias_hh_l0")):
            value = getattr(ref, tname + suffix).detach().numpy()
            layer.params[f"{part}.{name}"] = nnxp.asarray(value, dtype="float64")
    return ref


@pytest.mark.parametrize("masked", [False, True], ids=["full", "packed"])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "seq"])
def test_bidirectional_equals_torch(backend, return_sequences, masked):
    layer = build(Bidirectional(LSTM(F, U, return_sequences=return_sequences)))
    ref = _torch_bilstm(layer)
    X = _data(4)
    mask = lengths_mask(LENGTHS, T) if masked else None
    Y = layer.forward(nnxp.asarray(X, dtype="float64"), sequence_mask=mask)
    R = np.random.default_rng(5).standard_normal(tuple(Y.shape))
    dX = layer.backward(nnxp.asarray(R, dtype="float64"))
    Xt = torch.tensor(X, requires_grad=True)
    if masked:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            Xt, torch.tensor(LENGTHS), batch_first=True, enforce_sorted=False
        )
        out, (h, _) = ref(packed)
        out = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)[0]
    else:
        out, (h, _) = ref(Xt)
    Yt = out if return_sequences else torch.cat([h[0], h[1]], dim=1)
    (Yt * torch.tensor(R)).sum().backward()
    np.testing.assert_allclose(host(Y), Yt.detach().numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(host(dX), Xt.grad.numpy(), rtol=0, atol=1e-10)
    for part, suffix in (("forward", ""), ("backward", "_reverse")):
        for name, tname in (("W_ih", "weight_ih_l0"), ("W_hh", "weight_hh_l0")):
            grad = getattr(ref, tname + suffix).grad.numpy()
            np.testing.assert_allclose(host(layer.grads[f"{part}.{name}"]), grad, atol=1e-10)
        for name, tname in (("b_ih", "bias_ih_l0"), ("b_hh", "bias_hh_l0")):
            grad = getattr(ref, tname + suffix).grad.numpy()
            np.testing.assert_allclose(host(layer.grads[f"{part}.{name}"]), grad, atol=1e-10)


@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "seq"])
@pytest.mark.parametrize("cls", [SimpleRNN, GRU])
def test_bidirectional_central_differences(backend, cls, return_sequences):
    layer = build(Bidirectional(cls(F, U, return_sequences=return_sequences)))
    X = nnxp.asarray(_data(), dtype="float64")
    assert_gradients(layer, X, lengths_mask(LENGTHS, T), count=6)


def test_bidirectional_general_mask_reverses_real_steps(backend):
    """A mask with holes: the backward direction sees the real steps in reverse order."""
    mask_np = np.array([[True, False, True, True, False]] * N)
    layer = build(Bidirectional(GRU(F, U)))
    X = _data(6)
    Y = host(layer.forward(nnxp.asarray(X, dtype="float64"), sequence_mask=nnxp.asarray(mask_np)))
    backward_only = layer.layer.__class__(F, U)
    build(backward_only)
    for name in ("W_ih", "W_hh", "b_ih", "b_hh"):
        backward_only.params[name] = layer.params[f"backward.{name}"]
    expected = backward_only.forward(nnxp.asarray(X[:, [3, 2, 0], :], dtype="float64"))
    np.testing.assert_allclose(Y[:, U:], host(expected), atol=1e-12)


def test_wrapper_errors_and_config(backend):
    with pytest.raises(TypeError, match="Bidirectional wraps a recurrent layer"):
        Bidirectional(Dense(3, 3))
    with pytest.raises(TypeError, match="Residual takes"):
        Residual([])
    with pytest.raises(ValueError, match="residual connection"):
        Residual([Dense(F, F + 1)]).output_width(F)
    for layer in (
        Bidirectional(LSTM(F, U, return_sequences=True)),
        Residual([LayerNormalization(F), MultiHeadAttention(F, 2, causal=True)]),
    ):
        again = layer_from_config(layer.get_config())
        assert again.get_config() == layer.get_config()
    assert Bidirectional(GRU(F, U)).output_shape((None, T, F)) == (None, 2 * U)
    assert Bidirectional(GRU(F, U)).output_width(F) == 2 * U
    bad = build(Bidirectional(GRU(F, U)))
    with pytest.raises(ValueError, match="GRU"):
        bad.forward(nnxp.asarray(_data()[:, 0, :], dtype="float64"))


def test_in_a_network_gradcheck_save_and_twins(backend, tmp_path):
    """Inside a Sequential: the network's inference twins, gradients and save/load."""
    net = nnxp.Sequential(
        [
            Residual([LayerNormalization(F), MultiHeadAttention(F, 2)]),
            Bidirectional(GRU(F, U)),
            Dense(2 * U, 2, "softmax"),
        ],
        dtype="float64",
    )
    X = nnxp.asarray(_data(7), dtype="float64")
    T = nnxp.asarray(np.eye(2)[np.random.default_rng(8).integers(0, 2, N)], dtype="float64")
    if backend.name != "array_api_strict":  # every entry: slow there; layers checked above
        assert nnxp.gradcheck(net, X, T, loss="cross_entropy") <= 1e-6
    _, grads = net.loss_and_gradient(X, T, loss="cross_entropy")
    assert sorted(grads[0]) == sorted(net.layers[0].params)
    assert sorted(grads[1]) == sorted(net.layers[1].params)
    P = host(net.predict(X))
    path = tmp_path / "seq.npz"
    net.save(path)
    np.testing.assert_array_equal(host(nnxp.load(path).predict(X)), P)
