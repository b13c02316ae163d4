"""LayerNormalization: central differences, equality with nn.LayerNorm, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from sequence_helpers import assert_gradients, build, host

import nnxp
from nnxp.layers.normalization import LayerNormalization
from nnxp.layers.registry import layer_from_config

D = 5


def _data(seed=1, shape=(3, 4, D)):
    return np.random.default_rng(seed).standard_normal(shape)


def _randomize(layer, seed=2):
    rng = np.random.default_rng(seed)
    for name in list(layer.params):
        layer.params[name] = nnxp.asarray(rng.standard_normal(D), dtype="float64")
    return layer


@pytest.mark.parametrize("shape", [(6, D), (3, 4, D)], ids=["2d", "3d"])
def test_central_differences(backend, shape):
    layer = _randomize(build(LayerNormalization(D)))
    assert_gradients(layer, nnxp.asarray(_data(1, shape), dtype="float64"))


@pytest.mark.parametrize("eps", [1e-5, 0.1])
def test_equals_torch(backend, eps):
    torch = pytest.importorskip("torch")
    ref = torch.nn.LayerNorm(D, eps=eps).double()
    with torch.no_grad():
        ref.weight.normal_()
        ref.bias.normal_()
    layer = build(LayerNormalization(D, eps=eps))
    layer.params["weight"] = nnxp.asarray(ref.weight.detach().numpy(), dtype="float64")
    layer.params["bias"] = nnxp.asarray(ref.bias.detach().numpy(), dtype="float64")
    X = _data(3)
    R = _data(4)
    Y = layer.forward(nnxp.asarray(X, dtype="float64"))
    dX = layer.backward(nnxp.asarray(R, dtype="float64"))
    Xt = torch.tensor(X, requires_grad=True)
    Yt = ref(Xt)
    (Yt * torch.tensor(R)).sum().backward()
    np.testing.assert_allclose(host(Y), Yt.detach().numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(host(dX), Xt.grad.numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(host(layer.grads["weight"]), ref.weight.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(host(layer.grads["bias"]), ref.bias.grad.numpy(), atol=1e-10)


def test_bad_input_names_layer_and_keeps_state(backend):
    layer = build(LayerNormalization(D))
    X = nnxp.asarray(_data(), dtype="float64")
    layer.forward(X)
    R = nnxp.asarray(_data(5), dtype="float64")
    layer.backward(R)
    before = {k: host(g) for k, g in layer.grads.items()}
    with pytest.raises(ValueError, match="LayerNormalization"):
        layer.forward(nnxp.asarray(_data(1, (3, D + 1)), dtype="float64"))
    with pytest.raises(TypeError, match="LayerNormalization"):
        layer.forward(nnxp.asarray(_data(), dtype="float32"))
    layer.backward(R)
    for k, g in layer.grads.items():
        np.testing.assert_array_equal(host(g), before[k])


def test_constructor_and_config():
    with pytest.raises(ValueError, match="LayerNormalization eps"):
        LayerNormalization(4, eps=0.0)
    with pytest.raises(ValueError, match="LayerNormalization dim"):
        LayerNormalization(-1)
    layer = LayerNormalization(4, eps=1e-3)
    assert layer_from_config(layer.get_config()).get_config() == layer.get_config()
    assert layer.output_shape((None, 7, 4)) == (None, 7, 4)
