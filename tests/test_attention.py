"""MultiHeadAttention and AdditiveAttentionPooling: central differences, PyTorch equality,
padding, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from sequence_helpers import assert_gradients, build, host, lengths_mask

import nnxp
from nnxp.layers.attention import AdditiveAttentionPooling, MultiHeadAttention
from nnxp.layers.registry import layer_from_config

torch = pytest.importorskip("torch")

N, T, D, H = 3, 5, 6, 2
LENGTHS = [5, 3, 2]


def _data(seed=1, shape=(N, T, D)):
    return np.random.default_rng(seed).standard_normal(shape)


def _randomize(layer, seed=7):
    """Non-zero biases too, so their gradients are checked against something."""
    rng = np.random.default_rng(seed)
    for name, value in list(layer.params.items()):
        layer.params[name] = nnxp.asarray(
            0.5 * rng.standard_normal(tuple(value.shape)), dtype="float64"
        )
    return layer


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "padded"])
def test_mha_central_differences(backend, masked, causal):
    layer = _randomize(build(MultiHeadAttention(D, H, causal=causal)))
    mask = lengths_mask(LENGTHS, T) if masked else None
    assert_gradients(layer, nnxp.asarray(_data(), dtype="float64"), mask)


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "padded"])
def test_mha_equals_torch(backend, masked, causal):
    torch.manual_seed(0)
    ref = torch.nn.MultiheadAttention(D, H, batch_first=True).double()
    with torch.no_grad():
        ref.in_proj_bias.normal_()
        ref.out_proj.bias.normal_()
    layer = build(MultiHeadAttention(D, H, causal=causal))
    copies = {
        "in_proj_weight": ref.in_proj_weight,
        "in_proj_bias": ref.in_proj_bias,
        "out_proj_weight": ref.out_proj.weight,
        "out_proj_bias": ref.out_proj.bias,
    }
    for name, p in copies.items():
        layer.params[name] = nnxp.asarray(p.detach().numpy(), dtype="float64")
    X = _data(2)
    mask_np = np.arange(T)[None, :] < np.array(LENGTHS)[:, None]
    mask = nnxp.asarray(mask_np) if masked else None
    Y = layer.forward(nnxp.asarray(X, dtype="float64"), sequence_mask=mask)
    R = np.random.default_rng(3).standard_normal((N, T, D))
    dX = layer.backward(nnxp.asarray(R, dtype="float64"))
    Xt = torch.tensor(X, requires_grad=True)
    kwargs = {"need_weights": False}
    if masked:
        kwargs["key_padding_mask"] = torch.tensor(~mask_np)
    if causal:
        kwargs["attn_mask"] = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    Yt = ref(Xt, Xt, Xt, **kwargs)[0]
    (Yt * torch.tensor(R)).sum().backward()
    np.testing.assert_allclose(host(Y), Yt.detach().numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(host(dX), Xt.grad.numpy(), rtol=0, atol=1e-10)
    for name, p in copies.items():
        np.testing.assert_allclose(host(layer.grads[name]), p.grad.numpy(), rtol=0, atol=1e-10)


def _one_by_one(layer, X, R, lengths, pooled):
    """Gradients of the padded batch (loss on real steps only) and the sum of those of each
    sequence alone."""
    T_ = X.shape[1]
    mask_np = np.arange(T_)[None, :] < np.array(lengths)[:, None]
    Rm = R if pooled else R * mask_np[:, :, None]
    layer.forward(nnxp.asarray(X, dtype="float64"), sequence_mask=nnxp.asarray(mask_np))
    dX = host(layer.backward(nnxp.asarray(Rm, dtype="float64")))
    batch = {k: host(g) for k, g in layer.grads.items()}
    sums = {k: 0.0 for k in batch}
    for n, L in enumerate(lengths):
        layer.forward(nnxp.asarray(X[n : n + 1, :L], dtype="float64"))
        Rn = R[n : n + 1] if pooled else R[n : n + 1, :L]
        dXn = host(layer.backward(nnxp.asarray(Rn, dtype="float64")))
        for k, g in layer.grads.items():
            sums[k] = sums[k] + host(g)
        np.testing.assert_allclose(dX[n, :L], dXn[0], atol=1e-12)
        assert np.all(dX[n, L:] == 0.0)
    for k in batch:
        np.testing.assert_allclose(batch[k], sums[k], atol=1e-12)


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_mha_padding_equals_one_by_one(backend, causal):
    layer = _randomize(build(MultiHeadAttention(D, H, causal=causal)))
    _one_by_one(layer, _data(4), _data(5), LENGTHS, pooled=False)


def test_pooling_padding_equals_one_by_one(backend):
    layer = _randomize(build(AdditiveAttentionPooling(D, units=4)))
    _one_by_one(layer, _data(4), _data(5, (N, D)), LENGTHS, pooled=True)


@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "padded"])
def test_pooling_central_differences(backend, masked):
    layer = _randomize(build(AdditiveAttentionPooling(D, units=4)))
    mask = lengths_mask(LENGTHS, T) if masked else None
    assert_gradients(layer, nnxp.asarray(_data(), dtype="float64"), mask)


def test_pooling_equals_torch_autograd(backend):
    """The same formula in PyTorch (there is no module for it): outputs and gradients."""
    layer = _randomize(build(AdditiveAttentionPooling(D, units=4)))
    P = {k: torch.tensor(host(v), requires_grad=True) for k, v in layer.params.items()}
    X = _data(6)
    mask_np = np.arange(T)[None, :] < np.array(LENGTHS)[:, None]
    Y = layer.forward(nnxp.asarray(X, dtype="float64"), sequence_mask=nnxp.asarray(mask_np))
    R = _data(7, (N, D))
    dX = layer.backward(nnxp.asarray(R, dtype="float64"))
    Xt = torch.tensor(X, requires_grad=True)
    s = torch.tanh(Xt @ P["W"].T + P["b"]) @ P["v"]
    a = torch.softmax(s.masked_fill(torch.tensor(~mask_np), -torch.inf), dim=1)
    Yt = (a[:, :, None] * Xt).sum(1)
    (Yt * torch.tensor(R)).sum().backward()
    np.testing.assert_allclose(host(Y), Yt.detach().numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(host(dX), Xt.grad.numpy(), rtol=0, atol=1e-10)
    for k, p in P.items():
        np.testing.assert_allclose(host(layer.grads[k]), p.grad.numpy(), rtol=0, atol=1e-10)
    assert np.all(host(layer.attention_weights)[~mask_np] == 0.0)


@pytest.mark.parametrize(
    "make", [lambda: MultiHeadAttention(D, H), lambda: AdditiveAttentionPooling(D)]
)
def test_bad_input_names_layer_and_keeps_state(backend, make):
    layer = build(make())
    name = type(layer).__name__
    X = nnxp.asarray(_data(), dtype="float64")
    Y = layer.forward(X)
    R = nnxp.asarray(np.ones(tuple(Y.shape)), dtype="float64")
    layer.backward(R)
    before = {k: host(g) for k, g in layer.grads.items()}
    bad = [
        (nnxp.asarray(_data()[:, 0, :], dtype="float64"), None, ValueError),
        (nnxp.asarray(np.zeros((N, T, D + 1)), dtype="float64"), None, ValueError),
        (nnxp.asarray(_data(), dtype="float32"), None, TypeError),
        (X, lengths_mask([2, 2, 2], T + 1), ValueError),
        (X, nnxp.asarray(np.ones((N, T))), TypeError),
    ]
    for data, mask, error in bad:
        with pytest.raises(error, match=name):
            layer.forward(data, sequence_mask=mask)
    layer.backward(R)
    for k, g in layer.grads.items():
        np.testing.assert_array_equal(host(g), before[k])


def test_constructor_errors_and_config():
    with pytest.raises(ValueError, match="MultiHeadAttention dim must be divisible"):
        MultiHeadAttention(6, 4)
    with pytest.raises(ValueError, match="AdditiveAttentionPooling dim"):
        AdditiveAttentionPooling(0)
    for layer in (MultiHeadAttention(8, 2, causal=True), AdditiveAttentionPooling(8, units=3)):
        again = layer_from_config(layer.get_config())
        assert again.get_config() == layer.get_config()
    assert MultiHeadAttention(8, 2).output_shape((None, 4, 8)) == (None, 4, 8)
    assert AdditiveAttentionPooling(8).output_shape((None, 4, 8)) == (None, 8)


def test_causal_weights_are_lower_triangular(backend):
    layer = build(MultiHeadAttention(D, H, causal=True))
    layer.forward(nnxp.asarray(_data(), dtype="float64"))
    P = host(layer.attention_weights)
    assert P.shape == (N, H, T, T)
    assert np.all(P[..., np.triu_indices(T, 1)[0], np.triu_indices(T, 1)[1]] == 0.0)
    np.testing.assert_allclose(P.sum(-1), 1.0, atol=1e-12)
