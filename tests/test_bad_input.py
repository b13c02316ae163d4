"""Every mistake a user can make ends in an error that says what to fix (one table, run on
every backend). ``python tests/test_bad_input.py`` prints the table."""

from __future__ import annotations

import numpy as np
import pytest

import nnxp
from nnxp import datasets


def _net():
    return nnxp.Sequential([nnxp.Dense(4, 6, "relu"), nnxp.Dense(6, 3, "softmax")], seed=0)


def _X(n=5, d=4, dtype="float32"):
    return nnxp.asarray(np.random.default_rng(0).standard_normal((n, d)), dtype=dtype)


def _T(n=5, k=3):
    return nnxp.asarray(np.eye(k)[np.arange(n) % k], dtype="float32")


def _with_nan(x):
    host = nnxp.to_numpy(x).copy()
    host[0, 0] = np.nan
    return nnxp.asarray(host)


def _other_backend_X():
    current = nnxp.get_backend().name
    other = "array_api_strict" if current != "array_api_strict" else "numpy"
    with nnxp.use_backend(other):
        return nnxp.asarray(np.ones((5, 4)), dtype="float32")


def _strict_device1_X():
    import array_api_strict as xp

    return xp.asarray(np.ones((5, 4), dtype=np.float32), device=xp.Device("device1"))


CASES = [
    # (what the user did, call, exception, message pattern)
    (
        "X with 3 features for a 4-input net",
        lambda: _net().forward(_X(d=3)),
        ValueError,
        r"layers\[0\] Dense\(4 -> 6, relu\) expects input of shape "
        r"\(n_samples, \.\.\., 4\), got shape \(5, 3\)",
    ),
    (
        "1-D X (no batch axis)",
        lambda: _net().forward(_X()[0, ...]),
        ValueError,
        r"expects input of shape .* got shape \(4,\)",
    ),
    (
        "complex X",
        lambda: _net().forward(nnxp.get_backend().xp.astype(_X(), nnxp.get_backend().xp.complex64)),
        TypeError,
        "input X must hold real numbers, got dtype",
    ),
    (
        "a Python list as X",
        lambda: _net().forward([[1.0, 2.0, 3.0, 4.0]]),
        TypeError,
        r"got host data .* move the data with nnxp.asarray",
    ),
    (
        "an array of another backend",
        lambda: _net().forward(_other_backend_X()),
        TypeError,
        r"got an array of \w+ but the network computes with .* nnxp.asarray",
    ),
    (
        "X and T with different row counts",
        lambda: _net().loss_and_gradient(_X(5), _T(4), "cross_entropy"),
        ValueError,
        "X has 5 rows but T has 4",
    ),
    (
        "T of the wrong width",
        lambda: _net().loss_and_gradient(_X(), _T(k=2), "cross_entropy"),
        ValueError,
        r"targets T must have shape \(5, 3\) .* or class labels of shape \(5,\), got \(5, 2\)",
    ),
    (
        "class labels out of range",
        lambda: _net().loss_and_gradient(
            _X(), nnxp.asarray(np.array([0, 1, 2, 3, 1])), "cross_entropy"
        ),
        ValueError,
        r"class labels must lie in \[0, 3\)",
    ),
    (
        "float class labels",
        lambda: _net().loss_and_gradient(
            _X(), nnxp.asarray(np.array([0.0, 1, 2, 1, 1])), "cross_entropy"
        ),
        TypeError,
        "class labels of shape .* must be integers",
    ),
    (
        "NaN in X",
        lambda: _net().fit(_with_nan(_X()), _T(), loss="cross_entropy", progress=False),
        ValueError,
        "X holds NaN or inf values; .* check_finite=False",
    ),
    (
        "inf in T",
        lambda: _net().loss_and_gradient(_X(), _with_nan(_T()) * 0 + np.inf, "mse"),
        ValueError,
        "T holds NaN or inf values",
    ),
    ("empty X", lambda: _net().forward(_X(n=0)), ValueError, r"input X is empty \(0 samples\)"),
    (
        "batch_size 0",
        lambda: _net().fit(_X(), _T(), loss="cross_entropy", batch_size=0),
        ValueError,
        "batch_size must be a positive integer, got 0",
    ),
    (
        "epochs -1",
        lambda: _net().fit(_X(), _T(), loss="cross_entropy", epochs=-1),
        ValueError,
        "epochs must be a non-negative integer, got -1",
    ),
    (
        "unknown activation",
        lambda: nnxp.Dense(4, 3, "swoosh"),
        ValueError,
        "unknown activation 'swoosh'; valid names are .*linear, .*sigmoid.*softmax",
    ),
    (
        "unknown loss",
        lambda: _net().loss_and_gradient(_X(), _T(), "hinge"),
        ValueError,
        "unknown loss 'hinge'; valid names are mse, cross_entropy, binary_cross_entropy",
    ),
    (
        "unknown optimizer",
        lambda: _net().fit(_X(), _T(), loss="mse", optimizer="rmsprop"),
        ValueError,
        "unknown optimizer 'rmsprop'; valid names are sgd, adam, adamw",
    ),
    (
        "cross_entropy on a sigmoid output",
        lambda: nnxp.Sequential([nnxp.Dense(4, 3, "sigmoid")]).loss_and_gradient(
            _X(), _T(), "cross_entropy"
        ),
        ValueError,
        "computed from the logits of a softmax output layer.*'sigmoid'",
    ),
    (
        "layer sizes that do not chain",
        lambda: nnxp.Sequential([nnxp.Dense(4, 6), nnxp.Dense(5, 3)]),
        ValueError,
        r"layers\[1\] Dense\(5 -> 3, linear\) expects 5 inputs but the layer before it gives 6",
    ),
    (
        "unknown backend",
        lambda: nnxp.set_backend("mxnet"),
        ValueError,
        "unknown backend 'mxnet'; valid names are numpy, array_api_strict, torch, cupy",
    ),
    (
        "dtype float16",
        lambda: nnxp.Sequential([nnxp.Dense(4, 3)], dtype="float16"),
        ValueError,
        "dtype must be 'float32' or 'float64'",
    ),
    (
        "negative learning rate",
        lambda: nnxp.SGD(lr=-0.1),
        ValueError,
        r"lr must lie in \[0.0, inf\)",
    ),
    (
        "Dropout rate 1",
        lambda: nnxp.Dropout(1.0),
        ValueError,
        r"Dropout rate must be a number in \[0, 1\)",
    ),
    (
        "mask of the wrong shape",
        lambda: _net().forward(_X(), mask=nnxp.asarray(np.ones((5, 2), dtype=bool))),
        ValueError,
        r"mask must have the shape of the network output \(5, 3\)",
    ),
    (
        "mask with a 2 in it",
        lambda: _net().forward(_X(), mask=nnxp.asarray(np.full((5, 3), 2.0))),
        ValueError,
        "mask must hold only 0 and 1",
    ),
    (
        "validation_data of one array",
        lambda: _net().fit(_X(), _T(), loss="mse", validation_data=(_X(),)),
        ValueError,
        r"validation_data must be \(X_val, T_val\)",
    ),
]


@pytest.mark.parametrize("what,call,error,message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_error(backend, what, call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_another_device_is_refused():
    """array-api-strict's device1 stands in for a second device (a GPU) here."""
    with nnxp.use_backend("array_api_strict"):
        with pytest.raises(
            TypeError, match="is on device .*device1.* but the network is on .*CPU_DEVICE"
        ):
            _net().forward(_strict_device1_X())


def test_integer_X_is_cast_and_check_finite_can_be_turned_off(backend):
    net = _net()
    X_int = nnxp.asarray(np.arange(20).reshape(5, 4))
    assert net.predict(X_int).dtype == net.dtype
    X = _with_nan(_X())
    value, _ = net.loss_and_gradient(X, _T(), "cross_entropy", check_finite=False)
    assert np.isnan(value)
    with pytest.raises(FloatingPointError, match="epoch 0 .* batch 0"):
        net.fit(X, _T(), loss="cross_entropy", epochs=1, progress=False, check_finite=False)


def test_a_missing_scikit_learn_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(ImportError, match=r"pip install 'nnxp\[examples\]'"):
        datasets.digits()


if __name__ == "__main__":  # print the table for the issue note
    print("| bad input | exception | message |\n| --- | --- | --- |")
    for what, call, _, _ in CASES:
        try:
            call()
            print(f"| {what} | (none) | |")
        except Exception as exc:  # noqa: BLE001 - reporting every case
            print(f"| {what} | {type(exc).__name__} | {str(exc).replace('|', '/')} |")
