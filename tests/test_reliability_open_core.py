"""Issue 11, the network side: output shapes from the layers, any layers (no Dense needed),
regularization in the reported loss and gradient, save refusing what load cannot rebuild,
gradcheck on unregistered layers without in-place writes."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import host, normal

import nnxp


class _Scale(nnxp.Layer):
    """An unregistered custom layer: ``Y = X * s`` with one learnable scale per feature."""

    def __init__(self, n):
        super().__init__()
        self.n = n

    def build(self, ctx):
        super().build(ctx)
        host_rng = ctx.host_rng
        values = np.ones(self.n) if host_rng is None else host_rng.uniform(0.5, 1.5, self.n)
        self.params = {"s": nnxp.asarray(values, dtype=ctx.dtype, backend=ctx.backend)}

    def forward(self, X, *, training=False):
        self._X = X
        return X * self.params["s"]

    def backward(self, dEdY, *, need_dX=True):
        xp = self.xp
        axes = tuple(range(dEdY.ndim - 1))
        self.grads = {"s": xp.sum(dEdY * self._X, axis=axes)}
        return dEdY * self.params["s"]


def test_targets_follow_a_rank_changing_output(backend, rng):
    net = nnxp.Sequential(
        [nnxp.Dense(3, 5, "tanh"), nnxp.GlobalAveragePooling1D(), nnxp.Dense(5, 4, "softmax")],
        dtype="float64",
    )
    X = normal(rng, (6, 7, 3))  # (N, T, F) -> (N, K)
    assert net.output_shape(X) == (6, 4)
    labels = nnxp.asarray(rng.integers(0, 4, 6))
    history = net.fit(X, labels, loss="cross_entropy", epochs=2, batch_size=3, progress=False)
    assert np.isfinite(history.history["loss"]).all()
    logs = net.evaluate(X, labels, "cross_entropy")
    assert 0.0 <= logs["accuracy"] <= 1.0
    mask = nnxp.asarray(np.ones((6, 4), dtype=bool))
    assert nnxp.gradcheck(net, X, labels, "cross_entropy", mask=mask) < 1e-6
    assert tuple(net.predict(X[0:0, ...]).shape) == (0, 4)


def test_a_network_needs_no_dense_layer(backend, rng):
    net = nnxp.Sequential([_Scale(4), nnxp.Activation("softmax")], dtype="float64")
    X = normal(rng, (5, 4))
    T = nnxp.asarray(np.eye(4)[[0, 1, 2, 3, 0]])
    value, grads = net.loss_and_gradient(X, T, "cross_entropy")
    assert np.isfinite(value) and tuple(grads[0]["s"].shape) == (4,)
    assert nnxp.gradcheck(net, X, T, "cross_entropy") < 1e-6
    with pytest.raises(ValueError, match="expects 4 inputs but the layer before it gives 5"):
        nnxp.Sequential([nnxp.Dense(3, 5), nnxp.Activation("tanh"), nnxp.Dense(4, 2)])


def test_gradcheck_takes_unregistered_layers_and_leaves_the_network_alone(backend, rng):
    net = nnxp.Sequential([_Scale(3), nnxp.Dense(3, 2, "sigmoid")], dtype="float32")
    X = normal(rng, (4, 3), dtype="float32")
    T = nnxp.asarray(np.array([[0, 1], [1, 0], [1, 1], [0, 0.0]]), dtype="float32")
    before = [{k: host(v).copy() for k, v in p.items()} for p in net.parameters()]
    assert nnxp.gradcheck(net, X, T, "binary_cross_entropy") < 1e-6
    for p, b in zip(net.parameters(), before):
        for k in p:
            np.testing.assert_array_equal(host(p[k]), b[k])
            assert p[k].dtype == net.dtype


def test_gradcheck_never_writes_into_the_parameters(rng):
    with nnxp.use_backend("numpy"):
        net = nnxp.Sequential([nnxp.Dense(3, 4, "tanh"), nnxp.Dense(4, 2)], dtype="float64")
        for p in net.parameters():
            for value in p.values():
                value.flags.writeable = False  # as immutable as a JAX array
        X, T = normal(rng, (5, 3)), normal(rng, (5, 2))
        assert nnxp.gradcheck(net, X, T, "mse") < 1e-6


def test_regularization_is_part_of_the_reported_loss_and_gradient(backend, rng):
    def build(reg):
        return nnxp.Sequential(
            [
                nnxp.Dense(3, 5, "tanh", kernel_regularizer=reg),
                nnxp.Dense(5, 2, kernel_regularizer=reg, bias_regularizer=reg),
            ],
            seed=0,
            dtype="float64",
        )

    plain, penalised = build(None), build(nnxp.regularizers.l2(0.1))
    X, T = normal(rng, (6, 3)), normal(rng, (6, 2))
    base, base_grads = plain.loss_and_gradient(X, T, "mse")
    value, grads = penalised.loss_and_gradient(X, T, "mse")
    params = [{k: host(v) for k, v in p.items()} for p in plain.parameters()]
    penalty = 0.1 * (
        (params[0]["W"] ** 2).sum() + (params[1]["W"] ** 2).sum() + (params[1]["b"] ** 2).sum()
    )
    assert value == pytest.approx(base + penalty, rel=1e-12)
    np.testing.assert_allclose(
        host(grads[1]["b"]), host(base_grads[1]["b"]) + 0.2 * params[1]["b"], atol=1e-14
    )
    assert penalised.evaluate(X, T, "mse")["loss"] == pytest.approx(value, rel=1e-12)
    assert nnxp.gradcheck(penalised, X, T, "mse") < 1e-6
    history = penalised.fit(
        X, T, loss="mse", optimizer=nnxp.SGD(0.0), epochs=1, batch_size=6, progress=False
    )
    assert history.history["loss"][0] == pytest.approx(value, rel=1e-10)


def test_save_refuses_what_load_could_not_rebuild_before_writing(backend, tmp_path):
    net = nnxp.Sequential([_Scale(3), nnxp.Dense(3, 2)])
    path = tmp_path / "m.npz"
    with pytest.raises(ValueError, match=r"@nnxp.register"):
        net.save(path)
    assert list(tmp_path.iterdir()) == []


class _Liar(nnxp.Layer):
    """Declares that it keeps the shape, but drops the last feature."""

    def forward(self, X, *, training=False):
        return X[..., 1:]


def test_a_layer_whose_output_disagrees_with_its_declared_shape_is_named(backend, rng):
    net = nnxp.Sequential([nnxp.Dense(3, 4), _Liar(), nnxp.Dense(4, 2)])
    X = normal(rng, (5, 3), dtype="float32")
    for call in (
        lambda: net.predict(X),
        lambda: net.forward(X),
        lambda: net.loss_and_gradient(X, normal(rng, (5, 2), dtype="float32"), "mse"),
    ):
        with pytest.raises(ValueError, match=r"layers\[1\] _Liar declares output shape"):
            call()
