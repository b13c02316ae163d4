"""GlobalAveragePooling1D, GlobalMaxPooling1D, Flatten, Reshape: values against PyTorch,
gradients by central differences (standalone and through a network), masks, shapes, errors."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import host, normal
from layer_helpers import layer_gradcheck

import nnxp

torch = pytest.importorskip("torch")
TOLERANCE = 1e-7


def lengths_mask(lengths, T):
    return nnxp.asarray(np.arange(T)[None, :] < np.asarray(lengths)[:, None])


def torch_pool(kind, x, m=None):
    """The reference in torch float64: values and dE/dX for dE/dY = R."""
    if m is None:
        return x.mean(1) if kind == "avg" else x.max(1).values
    mf = m[:, :, None].double()
    if kind == "avg":
        return (x * mf).sum(1) / mf.sum(1).clamp(min=1)
    filled = torch.where(m[:, :, None], x, torch.tensor(-torch.inf, dtype=x.dtype))
    y = filled.max(1).values
    return torch.where(m.any(1)[:, None], y, torch.zeros_like(y))


@pytest.mark.parametrize("kind", ["avg", "max"])
@pytest.mark.parametrize("masked", [False, True], ids=["full", "masked"])
def test_pooling_matches_torch_values_and_gradients(backend, rng, kind, masked):
    layer = nnxp.GlobalAveragePooling1D() if kind == "avg" else nnxp.GlobalMaxPooling1D()
    X = normal(rng, (4, 5, 3))
    mask = lengths_mask([5, 2, 1, 3], 5) if masked else None
    Y = layer(X, sequence_mask=mask)
    assert tuple(Y.shape) == (4, 3) == layer.output_shape((4, 5, 3))
    R = normal(rng, (4, 3))
    dX = layer.backward(R)
    x = torch.tensor(host(X), requires_grad=True)
    m = None if mask is None else torch.tensor(np.asarray(nnxp.to_numpy(mask)))
    y = torch_pool(kind, x, m)
    y.backward(torch.tensor(host(R)))
    np.testing.assert_allclose(host(Y), y.detach().numpy(), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(host(dX), x.grad.numpy(), rtol=1e-14, atol=1e-15)
    assert layer_gradcheck(layer, X, sequence_mask=mask) < TOLERANCE


@pytest.mark.parametrize("cls", [nnxp.GlobalAveragePooling1D, nnxp.GlobalMaxPooling1D])
def test_pooling_ignores_padding_and_empty_sequences(backend, rng, cls):
    """Padded steps may hold anything (even NaN): they change neither values nor gradients;
    a sequence with no real step gives zeros and no gradient."""
    layer = cls()
    x = rng.standard_normal((3, 4, 2))
    padded = x.copy()
    padded[0, 2:] = np.nan
    padded[1, 1:] = 1e6
    padded[2] = np.inf
    mask = lengths_mask([2, 1, 0], 4)
    Y = host(layer(nnxp.asarray(padded), sequence_mask=mask))
    reduce = np.mean if cls is nnxp.GlobalAveragePooling1D else np.max
    np.testing.assert_allclose(Y[0], reduce(x[0, :2], axis=0), rtol=1e-14)
    np.testing.assert_allclose(Y[1], x[1, 0], rtol=1e-14)
    np.testing.assert_array_equal(Y[2], [0.0, 0.0])
    dX = host(layer.backward(nnxp.asarray(np.ones((3, 2)))))
    assert np.all(dX[0, 2:] == 0) and np.all(dX[1, 1:] == 0) and np.all(dX[2] == 0)
    assert np.all(np.isfinite(dX))


def test_pooling_takes_a_numeric_mask_and_refuses_bad_ones(backend, rng):
    layer = nnxp.GlobalAveragePooling1D()
    X = normal(rng, (2, 3, 4))
    as_bool = host(layer(X, sequence_mask=lengths_mask([3, 1], 3)))
    as_int = host(layer(X, sequence_mask=nnxp.asarray(np.array([[1, 1, 1], [1, 0, 0]]))))
    np.testing.assert_array_equal(as_bool, as_int)
    with pytest.raises(
        ValueError, match=r"GlobalAveragePooling1D: sequence_mask must have shape \(2, 3\)"
    ):
        layer(X, sequence_mask=lengths_mask([3, 1, 2], 3))
    with pytest.raises(ValueError, match="GlobalAveragePooling1D expects input of shape"):
        layer(normal(rng, (2, 4)))
    with pytest.raises(ValueError, match="n_steps > 0"):
        nnxp.GlobalMaxPooling1D()(normal(rng, (2, 0, 4)))
    with pytest.raises(ValueError, match="expects input of shape"):
        layer.output_shape((2, 4))


@pytest.mark.parametrize(
    "layer,in_shape,out_shape",
    [
        (lambda: nnxp.Flatten(), (3, 2, 4), (3, 8)),
        (lambda: nnxp.Flatten(), (3, 2, 2, 2), (3, 8)),
        (lambda: nnxp.Reshape((4, 2)), (3, 8), (3, 4, 2)),
        (lambda: nnxp.Reshape((2, -1)), (3, 2, 4), (3, 2, 4)),
        (lambda: nnxp.Reshape((-1,)), (3, 2, 4), (3, 8)),
    ],
    ids=["flatten3d", "flatten4d", "reshape", "reshape-infer", "reshape-flat"],
)
def test_flatten_and_reshape(backend, rng, layer, in_shape, out_shape):
    layer = layer()
    X = normal(rng, in_shape)
    Y = layer(X)
    assert tuple(Y.shape) == out_shape == layer.output_shape(in_shape)
    np.testing.assert_array_equal(host(Y), host(X).reshape(out_shape))
    assert tuple(layer.backward(Y).shape) == in_shape
    assert layer_gradcheck(layer, X) < TOLERANCE
    assert layer.output_shape((None, *in_shape[1:]))[0] is None


def test_reshape_refuses_what_cannot_fit():
    with pytest.raises(ValueError, match="at most one -1"):
        nnxp.Reshape((-1, -1))
    with pytest.raises(ValueError, match="positive integers"):
        nnxp.Reshape((0, 2))
    with pytest.raises(TypeError, match="tuple of integers"):
        nnxp.Reshape(None)
    assert nnxp.Reshape((np.int64(2), 3)).target_shape == (2, 3)
    with pytest.raises(
        ValueError, match=r"Reshape\(\(3, 3\)\) cannot reshape samples of shape \(8,\)"
    ):
        nnxp.Reshape((3, 3)).output_shape((5, 8))
    with pytest.raises(ValueError, match="cannot reshape"):
        nnxp.Reshape((3, -1)).output_shape((5, 8))
    assert nnxp.Reshape((3, -1)).output_shape((5, None)) == (5, 3, None)


@pytest.mark.parametrize(
    "middle",
    [
        lambda: nnxp.GlobalAveragePooling1D(),
        lambda: nnxp.GlobalMaxPooling1D(),
        lambda: nnxp.Flatten(),
    ],
    ids=["avg", "max", "flatten"],
)
def test_shape_layers_in_a_network_gradcheck_and_fit(backend, rng, middle):
    """(N, T, F) -> (N, K): targets follow the real output shape."""
    layer = middle()
    width = 4 * 6 if isinstance(layer, nnxp.Flatten) else 4
    net = nnxp.Sequential(
        [nnxp.Dense(3, 4, "tanh"), layer, nnxp.Dense(width, 3, "softmax")], dtype="float64"
    )
    X = normal(rng, (5, 6, 3))
    labels = nnxp.asarray(rng.integers(0, 3, size=5))
    assert nnxp.gradcheck(net, X, labels, "cross_entropy") < 1e-6
    history = net.fit(X, labels, loss="cross_entropy", epochs=3, batch_size=2)
    assert len(history.history["loss"]) == 3
    assert tuple(net.predict(X).shape) == (5, 3)


def test_shape_layers_round_trip_through_their_config():
    for layer in (
        nnxp.GlobalAveragePooling1D(),
        nnxp.GlobalMaxPooling1D(),
        nnxp.Flatten(),
        nnxp.Reshape((2, -1)),
    ):
        config = layer.get_config()
        again = nnxp.layers.layer_from_config(config)
        assert type(again) is type(layer) and again.get_config() == config
        nnxp.layers.check_rebuildable(layer)
