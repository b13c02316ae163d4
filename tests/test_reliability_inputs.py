"""Issue 10, inputs people really pass: NumPy scalars, narrow label dtypes, float32-made
probability rows, empty axes, numeric softmax masks."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import host, normal

import nnxp
from nnxp import datasets
from nnxp import functional as F


# ---------------------------------------------------------------- 13. NumPy scalars
def test_numpy_integers_are_integers_for_every_training_setting(backend):
    X, T = datasets.spirals(n_per_class=8)
    net = nnxp.Sequential([nnxp.Dense(2, 8, "tanh"), nnxp.Dense(8, 3, "softmax")], seed=np.int64(3))
    assert net.seed == 3 and type(net.seed) is int
    history = net.fit(
        X,
        T,
        loss="cross_entropy",
        epochs=np.int64(3),
        batch_size=np.int32(8),
        seed=np.uint8(1),
        early_stopping=nnxp.EarlyStopping(patience=np.int64(5), min_delta=np.float32(0.0)),
        progress=False,
    )
    assert history.epoch == [0, 1, 2]
    Y = net.predict(X, batch_size=np.int16(5))
    np.testing.assert_allclose(host(Y), host(net.predict(X)), atol=1e-6)
    assert net.get_config()["seed"] == 3  # JSON-able


# ---------------------------------------------------------------- 14. narrow label dtypes
@pytest.mark.parametrize("dtype,n_classes", [("int8", 200), ("uint8", 300)])
def test_narrow_integer_labels_with_many_classes(backend, rng, dtype, n_classes):
    net = nnxp.Sequential([nnxp.Dense(3, n_classes, "softmax")], dtype="float64")
    X = normal(rng, (6, 3))
    labels = np.array([0, 5, 100, 127, 3, 90])
    wide, _ = net.loss_and_gradient(X, nnxp.asarray(labels.astype(np.int64)), "cross_entropy")
    narrow, _ = net.loss_and_gradient(X, nnxp.asarray(labels.astype(dtype)), "cross_entropy")
    assert narrow == pytest.approx(wide, rel=1e-14)
    bad = labels.copy()
    bad[0] = 250 if dtype == "uint8" and n_classes < 250 else -1
    if dtype == "int8":
        with pytest.raises(ValueError, match=rf"class labels must lie in \[0, {n_classes}\)"):
            net.loss_and_gradient(X, nnxp.asarray(bad.astype(dtype)), "cross_entropy")


# ---------------------------------------------------------------- 15. float32-made targets
def test_probability_rows_made_in_float32_fit_a_float64_network(backend, rng):
    K = 1000
    net = nnxp.Sequential([nnxp.Dense(3, K, "softmax")], dtype="float64")
    logits = rng.standard_normal((4, K)).astype(np.float32)
    P = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)  # float32 rows
    assert np.abs(P.astype(np.float64).sum(axis=1) - 1).max() > 1e-8  # float32 rounding
    value, _ = net.loss_and_gradient(normal(rng, (4, 3)), nnxp.asarray(P), "cross_entropy")
    assert np.isfinite(value)


def test_row_sum_messages_show_enough_digits(backend, rng):
    net = nnxp.Sequential([nnxp.Dense(3, 4, "softmax")], dtype="float64")
    T = np.eye(4)[[0, 1, 2]]
    T[1, 1] = 1.0000001  # off by 1e-7, beyond float64 targets' tolerance
    with pytest.raises(ValueError, match=r"1\.0000001"):
        net.loss_and_gradient(normal(rng, (3, 3)), nnxp.asarray(T), "cross_entropy")


# ---------------------------------------------------------------- 16. empty axes, empty rows
def test_an_empty_inner_axis_is_refused_and_zero_rows_predict_empty(backend, rng):
    net = nnxp.Sequential([nnxp.Dense(4, 6, "relu"), nnxp.Dense(6, 3, "softmax")])
    with pytest.raises(ValueError, match=r"shape \(5, 0, 4\): axis 1 is empty"):
        net.predict(nnxp.asarray(np.zeros((5, 0, 4)), dtype="float32"))
    with pytest.raises(ValueError, match="axis 1 is empty"):
        net.fit(
            nnxp.asarray(np.zeros((5, 0, 4)), dtype="float32"),
            nnxp.asarray(np.zeros((5, 0, 3)), dtype="float32"),
            loss="mse",
            progress=False,
        )
    for shape, out in (((0, 4), (0, 3)), ((0, 7, 4), (0, 7, 3))):
        Y = net.predict(nnxp.asarray(np.zeros(shape), dtype="float32"))
        assert tuple(Y.shape) == out and Y.dtype == net.dtype


# ---------------------------------------------------------------- 17. numeric softmax masks
@pytest.mark.parametrize("kind", ["float64", "float32", "int64", "int8", "uint8"])
def test_masked_softmax_takes_numeric_zero_one_masks(backend, rng, kind):
    A = normal(rng, (5, 4), scale=3)
    allowed = np.array(
        [[1, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1], [1, 0, 0, 1]], dtype=bool
    )
    expected = host(F.masked_softmax(A, nnxp.asarray(allowed)))
    mask = nnxp.asarray(allowed.astype(kind))
    np.testing.assert_array_equal(host(F.masked_softmax(A, mask)), expected)
    np.testing.assert_array_equal(
        host(F.masked_log_softmax(A, mask)), host(F.masked_log_softmax(A, nnxp.asarray(allowed)))
    )
    row = nnxp.asarray(allowed[0].astype(kind))  # (4,) broadcasts over the rows
    np.testing.assert_array_equal(
        host(F.masked_softmax(A, row)), host(F.masked_softmax(A, nnxp.asarray(allowed[[0] * 5])))
    )


def test_masked_softmax_refuses_masks_that_do_not_fit(backend, rng):
    A = normal(rng, (5, 4))
    with pytest.raises(ValueError, match="more dimensions than the logits"):
        F.masked_softmax(A, nnxp.asarray(np.ones((2, 5, 4), dtype=bool)))
    with pytest.raises(ValueError, match=r"does not broadcast to the logits' shape \(5, 4\)"):
        F.masked_softmax(A, nnxp.asarray(np.ones((5, 3), dtype=bool)))
    with pytest.raises(ValueError, match="does not broadcast"):
        F.masked_softmax(A, nnxp.asarray(np.ones((4, 4))))
