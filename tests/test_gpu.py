"""CuPy (and jax) on a CUDA GPU: the same gradients and training as on the CPU backends.

Skipped with the reason where no CUDA device answers (the whole suite also runs on cupy
with NNXP_TEST_BACKENDS=cupy, or ``nox -s tests_gpu``).
"""

from __future__ import annotations

import numpy as np
import pytest

import nnxp
from nnxp.backend import backend_status

REASON = backend_status("cupy")
pytestmark = pytest.mark.gpu
needs_cupy = pytest.mark.skipif(REASON is not None, reason=f"no GPU for cupy: {REASON}")


@needs_cupy
def test_cupy_gradients_match_numpy_in_float64():
    rng = np.random.default_rng(0)
    X, labels = rng.standard_normal((16, 8)), rng.integers(0, 4, 16)
    results = {}
    for name in ("numpy", "cupy"):
        with nnxp.use_backend(name):
            net = nnxp.Sequential(
                [nnxp.Dense(8, 16, "relu"), nnxp.Dense(16, 4, "softmax")], seed=3, dtype="float64"
            )
            Xb, Tb = nnxp.asarray(X, dtype="float64"), nnxp.asarray(labels)
            loss, grads = net.loss_and_gradient(Xb, Tb, "cross_entropy")
            results[name] = (loss, [nnxp.to_numpy(g["W"]) for g in grads])
            if name == "cupy":
                assert nnxp.gradcheck(net, Xb, Tb, "cross_entropy") < 1e-6
    assert results["cupy"][0] == pytest.approx(results["numpy"][0], rel=1e-12)
    for a, b in zip(results["cupy"][1], results["numpy"][1]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@needs_cupy
def test_cupy_trains_digits():
    pytest.importorskip("sklearn")
    from nnxp import datasets

    with nnxp.use_backend("cupy"):
        X_train, X_test, T_train, T_test = datasets.digits()
        net = nnxp.Sequential([nnxp.Dense(64, 64, "relu"), nnxp.Dense(64, 10, "softmax")], seed=0)
        net.fit(
            X_train,
            T_train,
            loss="cross_entropy",
            optimizer=nnxp.Adam(3e-3),
            epochs=20,
            progress=False,
        )
        assert net.evaluate(X_test, T_test, "cross_entropy")["accuracy"] >= 0.95


def _jax_gpu_reason() -> str | None:
    if backend_status("jax") is not None:
        return f"jax unavailable: {backend_status('jax')}"
    import jax

    try:
        jax.devices("gpu")
    except RuntimeError as exc:
        return f"jax has no GPU here: {exc}"
    return None


def test_jax_gpu_compiled_step_equals_cpu():
    reason = _jax_gpu_reason()
    if reason is not None:
        pytest.skip(reason)
    from nnxp.step import build_step

    rng = np.random.default_rng(0)
    X, T = rng.standard_normal((64, 8)), np.eye(4)[rng.integers(0, 4, 64)]
    results = {}
    for device in ("cpu", "gpu"):
        with nnxp.use_backend("jax", device=device):
            net = nnxp.Sequential([nnxp.Dense(8, 16, "relu"), nnxp.Dense(16, 4, "softmax")], seed=3)
            opt = nnxp.Adam(0.01)
            step = build_step(net, "cross_entropy", opt, compile=True)
            p, s, k = net.parameters(), opt.init_state(net.parameters()), net.rng.get_state()
            Xd, Td = nnxp.asarray(X, dtype="float32"), nnxp.asarray(T, dtype="float32")
            for _ in range(5):
                p, s, k, _ = step(p, s, k, Xd, Td)
            results[device] = nnxp.to_numpy(p[0]["W"])
    np.testing.assert_allclose(results["gpu"], results["cpu"], rtol=1e-4, atol=1e-5)
