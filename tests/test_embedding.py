"""Embedding: lookup, the scatter-add gradient (both formulations), PyTorch equality,
bad tokens."""

from __future__ import annotations

import numpy as np
import pytest
from sequence_helpers import assert_gradients, build, host

import nnxp
from nnxp.functional.embedding import embedding_backward
from nnxp.layers.embedding import Embedding, PositionEmbedding
from nnxp.layers.registry import layer_from_config

V, DIM = 11, 4


def _ids(seed=0, shape=(6, 9), high=V):
    return np.random.default_rng(seed).integers(0, high, size=shape)


def _reference(ids, dY, n_tokens):
    out = np.zeros((n_tokens, dY.shape[-1]))
    np.add.at(out, ids.reshape(-1), dY.reshape(-1, dY.shape[-1]))
    return out


@pytest.mark.parametrize("method", ["sorted", "onehot"])
@pytest.mark.parametrize("shape", [(6, 9), (1, 1), (40, 3), (0, 5)], ids=str)
def test_gradient_is_the_scatter_add(backend, method, shape):
    ids = _ids(1, shape, high=V - 3)  # some ids never occur: their rows must be zero
    dY = np.random.default_rng(2).standard_normal((*shape, DIM))
    dW = embedding_backward(
        nnxp.asarray(ids), nnxp.asarray(dY, dtype="float64"), V, method=method, block=7
    )
    np.testing.assert_allclose(host(dW), _reference(ids, dY, V), rtol=1e-13, atol=1e-13)
    assert np.all(host(dW)[V - 3 :] == 0.0)


def test_sorted_gradient_many_repeats_float32(backend):
    """Long runs of one id: the segmented scan adds only that id's rows."""
    ids = np.zeros((64, 50), dtype=np.int64)
    ids[:, ::7] = 3
    dY = np.random.default_rng(3).standard_normal((64, 50, DIM))
    dW = embedding_backward(nnxp.asarray(ids), nnxp.asarray(dY, dtype="float32"), V)
    ref = _reference(ids, dY, V)
    np.testing.assert_allclose(host(dW), ref, rtol=1e-5, atol=1e-4)


def test_central_differences(backend):
    layer = build(Embedding(V, DIM))
    assert_gradients(layer, nnxp.asarray(_ids()), check_input=False)


def test_equals_torch(backend):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    ref = torch.nn.Embedding(V, DIM).double()
    layer = build(Embedding(V, DIM))
    layer.params["W"] = nnxp.asarray(ref.weight.detach().numpy(), dtype="float64")
    ids = _ids(4)
    Y = layer.forward(nnxp.asarray(ids))
    R = np.random.default_rng(5).standard_normal((*ids.shape, DIM))
    assert layer.backward(nnxp.asarray(R, dtype="float64")) is None
    Yt = ref(torch.tensor(ids))
    (Yt * torch.tensor(R)).sum().backward()
    np.testing.assert_allclose(host(Y), Yt.detach().numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(host(layer.grads["W"]), ref.weight.grad.numpy(), atol=1e-10)


def test_bad_tokens_name_the_layer_and_keep_state(backend):
    layer = build(Embedding(V, DIM))
    ids = nnxp.asarray(_ids())
    layer.forward(ids)
    R = nnxp.asarray(np.ones((6, 9, DIM)), dtype="float64")
    layer.backward(R)
    before = host(layer.grads["W"])
    with pytest.raises(ValueError, match=r"Embedding.*\[0, 11\).*11"):
        layer.forward(nnxp.asarray(_ids(high=V + 1) * 0 + V))
    with pytest.raises(ValueError, match="Embedding"):
        layer.forward(nnxp.asarray(-_ids() - 1))
    with pytest.raises(TypeError, match="Embedding.*expects integer token ids"):
        layer.forward(nnxp.asarray(_ids().astype(float), dtype="float64"))
    with pytest.raises(TypeError, match="Embedding.*expects integer token ids"):
        layer.forward(nnxp.asarray(_ids().astype(float), dtype="float64"), training=True)
    layer.backward(R)
    np.testing.assert_array_equal(host(layer.grads["W"]), before)


def test_mask_zero_and_config(backend):
    layer = Embedding(V, DIM, mask_zero=True)
    ids = _ids(6)
    mask = layer.compute_mask(nnxp.asarray(ids))
    np.testing.assert_array_equal(nnxp.to_numpy(mask), ids != 0)
    assert Embedding(V, DIM).compute_mask(nnxp.asarray(ids)) is None
    again = layer_from_config(layer.get_config())
    assert again.get_config() == layer.get_config()
    assert layer.output_shape((None, 7)) == (None, 7, DIM)
    with pytest.raises(ValueError, match="Embedding grad_method"):
        Embedding(V, DIM, grad_method="scatter")
    with pytest.raises(ValueError, match="Embedding n_tokens"):
        Embedding(0, DIM)


def test_position_embedding_gradients_and_errors(backend):
    layer = build(PositionEmbedding(7, DIM))
    X = nnxp.asarray(np.random.default_rng(8).standard_normal((3, 5, DIM)), dtype="float64")
    assert_gradients(layer, X)
    Y = host(layer.forward(X))
    np.testing.assert_allclose(Y - host(X), np.broadcast_to(host(layer.params["P"])[:5], Y.shape))
    with pytest.raises(ValueError, match="PositionEmbedding"):
        layer.forward(nnxp.asarray(np.zeros((3, 8, DIM)), dtype="float64"))
    with pytest.raises(ValueError, match="PositionEmbedding"):
        layer.forward(nnxp.asarray(np.zeros((3, 5, DIM + 1)), dtype="float64"))
    assert layer_from_config(layer.get_config()).get_config() == layer.get_config()
