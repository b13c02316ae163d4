"""The backend switch, data movement and seeded randomness."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from helpers import host

import nnxp
from nnxp.backend import backend_status
from nnxp.random import Generator


def test_numpy_is_the_default_and_always_available():
    assert nnxp.get_backend().name == "numpy"
    assert "numpy" in nnxp.available_backends()


def test_use_backend_restores_even_when_the_body_raises_and_nests():
    with pytest.raises(RuntimeError):
        with nnxp.use_backend("array_api_strict"):
            assert nnxp.get_backend().name == "array_api_strict"
            with nnxp.use_backend("numpy"):
                assert nnxp.get_backend().name == "numpy"
            assert nnxp.get_backend().name == "array_api_strict"
            raise RuntimeError("boom")
    assert nnxp.get_backend().name == "numpy"


def test_set_backend_switches_and_unknown_names_list_the_valid_ones():
    try:
        assert nnxp.set_backend("array_api_strict").name == "array_api_strict"
        assert nnxp.get_backend().name == "array_api_strict"
    finally:
        nnxp.set_backend("numpy")
    with pytest.raises(
        ValueError, match="valid names are numpy, array_api_strict, torch, cupy, jax"
    ):
        nnxp.set_backend("tensorflow")


def test_an_unavailable_backend_says_why():
    reason = backend_status("cupy")
    if reason is None:
        pytest.skip("cupy works here: nothing unavailable to report")
    with pytest.raises(ValueError, match="backend 'cupy' is not available: cupy") as info:
        nnxp.set_backend("cupy")
    assert "Available here: numpy" in str(info.value)


def test_import_does_not_import_heavy_libraries():
    code = (
        "import sys, nnxp; print(sorted(m for m in ('torch', 'cupy', 'jax') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_asarray_dtypes_and_round_trip(backend):
    x = nnxp.asarray([[1, 2], [3, 4]], dtype="float64")
    assert x.dtype == backend.xp.float64
    assert nnxp.asarray(x, dtype=backend.xp.float32).dtype == backend.xp.float32
    np.testing.assert_array_equal(nnxp.to_numpy(x), [[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(ValueError, match="float32"):
        nnxp.asarray(x, dtype="float16")


def test_asarray_moves_arrays_between_backends(backend):
    with nnxp.use_backend("array_api_strict"):
        strict = nnxp.asarray(np.arange(6.0).reshape(2, 3))
    moved = nnxp.asarray(strict)
    assert nnxp.backend.array_library(moved) == backend.name
    np.testing.assert_array_equal(host(moved), np.arange(6.0).reshape(2, 3))


def test_same_seed_same_initial_weights_on_every_backend():
    weights = {}
    for name in nnxp.available_backends():
        with nnxp.use_backend(name):
            net = nnxp.Sequential([nnxp.Dense(5, 4, "relu"), nnxp.Dense(4, 2, "tanh")], seed=7)
            weights[name] = [host(layer.W) for layer in net.layers]
    reference = weights.pop("numpy")
    for name, ws in weights.items():
        for a, b in zip(reference, ws):
            np.testing.assert_array_equal(a, b, err_msg=name)


def test_device_generator_is_reproducible_per_seed(backend):
    a, b, c = Generator(backend, 3), Generator(backend, 3), Generator(backend, 4)
    pa, pb, pc = (host(g.permutation(50)) for g in (a, b, c))
    np.testing.assert_array_equal(pa, pb)
    assert not np.array_equal(pa, pc)
    assert sorted(pa) == list(range(50))
    u = host(a.uniform((1000,), backend.xp.float32))
    assert 0.0 <= u.min() and u.max() < 1.0 and abs(u.mean() - 0.5) < 0.05
    state = a.get_state()
    first = host(a.uniform((5,), backend.xp.float64))
    a.set_state(state)
    np.testing.assert_array_equal(host(a.uniform((5,), backend.xp.float64)), first)


def test_a_missing_device_says_the_library_works_without_calling_it_available():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device answers here")
    with pytest.raises(ValueError) as info:
        nnxp.set_backend("torch", device="cuda")
    message = str(info.value)
    assert "backend 'torch' works here but not on device 'cuda'" in message
    assert "no CUDA device" in message and "Available here" not in message
    assert nnxp.get_backend().name == "numpy"  # nothing changed


def test_an_uninstalled_or_broken_backend_still_lists_what_is_available():
    if backend_status("cupy") is None:
        pytest.skip("cupy works here")
    with pytest.raises(ValueError, match="Available here: numpy"):
        nnxp.set_backend("cupy", device=0)
