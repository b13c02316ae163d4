"""The public layer protocol: standalone use, a custom layer written against it (trained,
gradchecked, saved and loaded), shapes, config and the checks that name the layer."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import host, normal
from layer_helpers import layer_gradcheck

import nnxp
from nnxp.layers.core import check_output

NEW_ACTIVATIONS = ["elu", "selu", "softplus", "softsign", "silu", "swish", "gelu"]
NEW_ACTIVATIONS += [{"name": "gelu", "approximate": "tanh"}, "hard_sigmoid", "log_sigmoid"]


@nnxp.register(name="TestScale")
class Scale(nnxp.Layer):
    """Y = X * s over the last axis: the smallest layer with a parameter."""

    def __init__(self, n, start=1.0):
        super().__init__()
        self.n, self.start = n, start

    def build(self, ctx):
        super().build(ctx)
        init = nnxp.initializers.constant(self.start)
        self.params = {"s": nnxp.initializers.draw(init, (self.n,), ctx)}

    def forward(self, X, *, training=False):
        self._X = X
        return X * self.params["s"]

    def backward(self, dEdY, *, need_dX=True):
        axes = tuple(range(dEdY.ndim - 1))
        self.grads = {"s": self.xp.sum(dEdY * self._X, axis=axes)}
        return dEdY * self.params["s"] if need_dX else None


def test_dense_builds_on_its_first_call(backend, rng):
    for dtype in ("float32", "float64"):
        layer = nnxp.Dense(3, 4, "tanh")
        assert not layer.built
        X = normal(rng, (5, 3), dtype=dtype)
        Y = layer(X)
        assert layer.built and layer.dtype == X.dtype and tuple(Y.shape) == (5, 4)
        dX = layer.backward(nnxp.asarray(np.ones((5, 4)), dtype=dtype))
        assert tuple(dX.shape) == (5, 3) and set(layer.grads) == {"W", "b"}
        assert layer.backward(Y, need_dX=False) is None
    # the same weights a network with seed 0 draws
    net = nnxp.Sequential([nnxp.Dense(3, 4, "tanh")], dtype="float64")
    np.testing.assert_array_equal(host(net.layers[0].W), host(layer.W))


@pytest.mark.parametrize("activation", NEW_ACTIVATIONS, ids=str)
def test_standalone_dense_gradients(backend, rng, activation):
    layer = nnxp.Dense(3, 4, activation)
    X = normal(rng, (5, 2, 3))
    layer(X)
    layer.b = nnxp.asarray(rng.uniform(-0.5, 0.5, 4))
    assert layer_gradcheck(layer, X) < 1e-7


def test_dropout_works_standalone(backend, rng):
    layer = nnxp.Dropout(0.5)
    X = nnxp.asarray(np.ones((40, 10)))
    Y = host(layer(X, training=True))
    assert set(np.unique(Y)) <= {0.0, 2.0} and 0.3 < (Y == 0).mean() < 0.7
    dX = host(layer.backward(nnxp.asarray(np.ones((40, 10)))))
    np.testing.assert_array_equal(dX, Y)
    np.testing.assert_array_equal(host(layer(X)), np.ones((40, 10)))


def test_a_layer_refuses_another_backends_array_on_its_first_call(backend):
    other = "torch" if backend.name == "numpy" else "numpy"
    with nnxp.use_backend(other):
        foreign = nnxp.asarray(np.ones((3, 2)))
    layer = nnxp.Dense(2, 2)
    with pytest.raises(TypeError, match=f"Dense.*input X: got an array of {other}"):
        layer(foreign)
    assert not layer.built


def test_backward_checks(backend, rng):
    layer = nnxp.Dense(3, 2)
    with pytest.raises(RuntimeError, match=r"Dense\(3 -> 2, linear\): backward called before"):
        layer.backward(normal(rng, (4, 2)))
    layer(normal(rng, (4, 3)))
    with pytest.raises(
        ValueError, match=r"dEdY must have the output's shape \(4, 2\), got \(1, 2\)"
    ):
        layer.backward(normal(rng, (1, 2)))


def test_a_custom_layer_trains_gradchecks_and_saves(backend, rng, tmp_path):
    net = nnxp.Sequential(
        [nnxp.Dense(3, 4, "tanh"), Scale(4, start=0.5), nnxp.Dense(4, 2)], dtype="float64"
    )
    assert net.layers[1].get_config() == {"type": "TestScale", "n": 4, "start": 0.5}
    X, T = normal(rng, (6, 3)), normal(rng, (6, 2))
    assert nnxp.gradcheck(net, X, T, "mse") < 1e-6
    before = net.evaluate(X, T, "mse")["loss"]
    net.fit(X, T, loss="mse", epochs=20, batch_size=3, optimizer="adam")
    assert net.evaluate(X, T, "mse")["loss"] < before
    assert not np.allclose(host(net.layers[1].params["s"]), 0.5)
    loaded = nnxp.load(net.save(tmp_path / "net.npz"))
    assert isinstance(loaded.layers[1], Scale)
    np.testing.assert_array_equal(host(loaded.predict(X)), host(net.predict(X)))
    # standalone, its own gradients against central differences
    assert layer_gradcheck(Scale(4, start=0.7), normal(rng, (3, 2, 4))) < 1e-8


def test_base_layer_defaults(backend, rng):
    layer = nnxp.Layer()
    X = normal(rng, (2, 3))
    assert layer(X) is X and layer.backward(X) is X
    assert layer.regularization() == (None, {})
    assert layer.output_shape((None, 3)) == (None, 3) and layer.output_width(None) is None
    assert not nnxp.Dense.takes_sequence_mask and nnxp.GlobalAveragePooling1D.takes_sequence_mask


def test_output_shapes_are_declared_with_the_batch_axis():
    dense = nnxp.Dense(3, 4)
    assert dense.output_shape((None, 7, 3)) == (None, 7, 4)
    with pytest.raises(ValueError, match=r"Dense\(3 -> 4, linear\) expects input of shape"):
        dense.output_shape((5, 2))
    assert nnxp.Dropout(0.1).output_shape((2, 3)) == (2, 3)
    assert dense.output_width(None) == 4


def test_check_output_names_a_layer_that_lies_about_its_shape(backend, rng):
    layer = nnxp.Dense(3, 4)
    Y = layer(normal(rng, (5, 3)))
    check_output(layer, (None, 4), Y)
    with pytest.raises(
        ValueError,
        match=r"Dense\(3 -> 4, linear\) declares output shape \(5, 3\) for input \(5, 3\) "
        r"but its forward returned \(5, 4\): fix the layer's output_shape or forward",
    ):
        check_output(layer, (5, 3), Y, (5, 3))
    with pytest.raises(ValueError, match="declares output shape"):
        check_output(layer, (5, 4, 1), Y)


def test_constructor_arguments_are_the_default_config():
    assert Scale(3).get_config() == {"type": "TestScale", "n": 3}
    assert Scale(np.int64(3), start=np.float32(2.0)).get_config() == {
        "type": "TestScale",
        "n": 3,
        "start": 2.0,
    }
    again = nnxp.layers.layer_from_config(Scale(3, 0.25).get_config())
    assert isinstance(again, Scale) and (again.n, again.start) == (3, 0.25)


def _example_layer():
    import importlib.util
    import sys
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "examples"
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location("custom_layer", folder / "custom_layer.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return module.AttentionPool


@pytest.mark.parametrize("masked", [False, True], ids=["full", "masked"])
def test_the_example_attention_pooling_gradients(backend, rng, masked):
    AttentionPool = _example_layer()
    layer = AttentionPool(3)
    X = normal(rng, (4, 5, 3))
    mask = nnxp.asarray(np.arange(5)[None, :] < np.array([5, 3, 1, 4])[:, None]) if masked else None
    assert tuple(layer(X, sequence_mask=mask).shape) == (4, 3) == layer.output_shape((4, 5, 3))
    assert layer_gradcheck(layer, X, sequence_mask=mask) < 1e-7
    nnxp.layers.check_rebuildable(layer)
