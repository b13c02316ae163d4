"""One registry for layers and activations: names, refusals, and the save-time check."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import normal

import nnxp
from nnxp import functional as F
from nnxp.layers import LAYERS, check_rebuildable, layer_from_config


@pytest.fixture
def clean_registry():
    layers, activations = dict(LAYERS), dict(F.ACTIVATIONS)
    yield
    LAYERS.clear()
    LAYERS.update(layers)
    F.ACTIVATIONS.clear()
    F.ACTIVATIONS.update(activations)


def test_register_bare_and_named(clean_registry):
    @nnxp.register
    class Twice(nnxp.Layer):
        pass

    @nnxp.register(name="thrice")
    class Thrice(nnxp.Layer):
        pass

    assert LAYERS["Twice"] is Twice and LAYERS["thrice"] is Thrice
    assert Twice().get_config() == {"type": "Twice"}
    assert Thrice().get_config() == {"type": "thrice"}
    assert isinstance(layer_from_config({"type": "thrice"}), Thrice)


def test_a_subclass_does_not_inherit_its_parents_name(clean_registry):
    class MyDense(nnxp.Dense):
        pass

    layer = MyDense(2, 3)
    assert layer.get_config()["type"] == "MyDense"
    with pytest.raises(ValueError, match="is not registered under 'MyDense'.*@nnxp.register"):
        check_rebuildable(layer)
    nnxp.register(MyDense)
    check_rebuildable(layer)
    assert type(layer_from_config(layer.get_config())) is MyDense


def test_names_cannot_be_taken_twice(clean_registry):
    class Dense(nnxp.Layer):  # another class of the same name
        pass

    with pytest.raises(ValueError, match="layer name 'Dense' is taken by nnxp.layers.dense.Dense"):
        nnxp.register(Dense)
    with pytest.raises(ValueError, match="activation name 'relu' is taken"):
        nnxp.register(name="relu")(type("R", (F.ActivationFunction,), {}))
    with pytest.raises(TypeError, match="neither an nnxp.Layer nor"):
        nnxp.register(int)
    with pytest.raises(TypeError, match="decorates a class"):
        nnxp.register(lambda x: x)


def test_unknown_layer_types_list_the_valid_ones():
    with pytest.raises(
        ValueError, match="unknown layer type 'Conv2D'; valid types are .*Dense.*register"
    ):
        layer_from_config({"type": "Conv2D"})
    with pytest.raises(ValueError, match="must be a dict"):
        layer_from_config(["Dense"])


def test_check_rebuildable_names_the_problem(clean_registry):
    class Unregistered(nnxp.Layer):
        pass

    with pytest.raises(
        ValueError,
        match="Unregistered.*not registered.*decorate it with @nnxp.register and give it "
        "get_config",
    ):
        check_rebuildable(Unregistered())

    @nnxp.register
    class Opaque(nnxp.Layer):
        def __init__(self, table):
            super().__init__()
            self.table = table

    with pytest.raises(ValueError, match="not JSON-able"):
        check_rebuildable(Opaque(object()))

    @nnxp.register
    class Lossy(nnxp.Layer):
        def __init__(self, n=1):
            super().__init__()
            self.n = n

        def get_config(self):
            return {"type": "Lossy", "n": self.n, "extra": True}  # from_config refuses extra

    with pytest.raises(ValueError, match="rebuilding it from its config .* failed"):
        check_rebuildable(Lossy())

    class Odd(F.ActivationFunction):
        name = "test_odd"

        def forward(self, A, xp=None):
            return A

    with pytest.raises(ValueError, match="its activation .*Odd is not registered under 'test_odd'"):
        check_rebuildable(nnxp.Dense(2, 2, Odd()))


def test_save_refuses_what_load_could_not_rebuild(backend, rng, tmp_path, clean_registry):
    class Plain(nnxp.Layer):
        pass

    net = nnxp.Sequential([nnxp.Dense(2, 3), Plain(), nnxp.Dense(3, 1)])
    path = tmp_path / "net.npz"
    with pytest.raises(ValueError, match="decorate it with @nnxp.register"):
        net.save(path)
    assert not path.exists()
    nnxp.register(Plain)
    nnxp.load(net.save(path))

    # gradcheck never needed the registration
    class Other(nnxp.Layer):
        pass

    net = nnxp.Sequential([nnxp.Dense(2, 3, "tanh"), Other(), nnxp.Dense(3, 1)], dtype="float64")
    X, T = normal(rng, (4, 2)), normal(rng, (4, 1))
    assert nnxp.gradcheck(net, X, T, "mse") < 1e-6
    assert np.isfinite(net.evaluate(X, T, "mse")["loss"])
