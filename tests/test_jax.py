"""The jax backend: float64 only under the user's x64, immutable arrays, and the compiled step
(jax.jit, lax.scan) equal to the eager one, with dropout masks drawn fresh at every step."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from helpers import host, normal, one_hot

import nnxp
from nnxp.backend import backend_status
from nnxp.step import build_step

jax = pytest.importorskip("jax")
pytestmark = pytest.mark.skipif(
    backend_status("jax") is not None, reason=f"jax unavailable: {backend_status('jax')}"
)


@pytest.fixture
def on_jax():
    with jax.enable_x64(False), nnxp.use_backend("jax") as backend:
        yield backend


def _net(dtype="float32", dropout=0.0):
    layers = [nnxp.Dense(6, 16, "relu")]
    if dropout:
        layers.append(nnxp.Dropout(dropout))
    layers += [nnxp.Dense(16, 3, "softmax")]
    return nnxp.Sequential(layers, seed=2, dtype=dtype)


def test_jax_is_a_backend_with_immutable_arrays(on_jax):
    assert "jax" in nnxp.available_backends()
    x = nnxp.asarray(np.arange(6.0).reshape(2, 3))
    assert nnxp.backend.array_library(x) == "jax" and x.dtype == on_jax.xp.float32
    np.testing.assert_array_equal(nnxp.to_numpy(x), np.arange(6.0).reshape(2, 3))
    with nnxp.use_backend("numpy"):
        back = nnxp.asarray(x)
    assert isinstance(back, np.ndarray)


def test_float64_needs_the_users_x64_and_nnxp_never_flips_it():
    with jax.enable_x64(False):
        with nnxp.use_backend("jax") as backend:
            assert backend.dtype(None) == backend.xp.float32
            with pytest.raises(ValueError, match="jax_enable_x64") as info:
                nnxp.Sequential([nnxp.Dense(2, 2)], dtype="float64")
            assert "nnxp does not change this global flag" in str(info.value)
            with pytest.raises(ValueError, match="64-bit mode"):
                nnxp.asarray([1.0, 2.0], dtype="float64")
            x = nnxp.asarray(np.ones(3))  # float64 host data becomes float32, no warning
            assert x.dtype == backend.xp.float32
        assert not jax.config.jax_enable_x64
    with jax.enable_x64(True):
        with nnxp.use_backend("jax"):
            net = nnxp.Sequential([nnxp.Dense(2, 2)], dtype="float64")
            assert net.layers[0].W.dtype == np.float64
        assert jax.config.jax_enable_x64


def test_info_lists_jax():
    out = subprocess.run(
        [sys.executable, "-m", "nnxp", "info"], capture_output=True, text=True, check=True
    ).stdout
    line = next(line for line in out.splitlines() if line.strip().startswith("jax "))
    assert "usable" in line and "x64" in line and jax.__version__ in line


def test_gradients_on_jax_equal_numpy_in_float64(rng):
    X, labels = rng.standard_normal((10, 6)), rng.integers(0, 3, 10)
    results = {}
    for name in ("numpy", "jax"):
        with jax.enable_x64(True), nnxp.use_backend(name):
            net = _net("float64")
            loss, grads = net.loss_and_gradient(
                nnxp.asarray(X, dtype="float64"), nnxp.asarray(labels), "cross_entropy"
            )
            results[name] = (loss, [host(g["W"]) for g in grads if g])
    assert results["jax"][0] == pytest.approx(results["numpy"][0], rel=1e-12)
    for a, b in zip(results["jax"][1], results["numpy"][1]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "make_opt", [lambda: nnxp.Adam(0.01), lambda: nnxp.SGD(0.1, momentum=0.9, nesterov=True)]
)
def test_compiled_step_equals_eager_to_rounding(rng, dtype, make_opt):
    with jax.enable_x64(dtype == "float64"), nnxp.use_backend("jax"):
        X, T = normal(rng, (4, 16, 6), dtype), one_hot(rng, (4, 16), 3, dtype)
        results = []
        for compile in (False, True):
            net, opt = _net(dtype, dropout=0.25), make_opt()
            step = build_step(net, "cross_entropy", opt, compile=compile)
            params, state, key = (
                net.parameters(),
                opt.init_state(net.parameters()),
                net.rng.get_state(),
            )
            totals = []
            for i in range(4):
                params, state, key, total = step(params, state, key, X[i, ...], T[i, ...])
                totals.append(host(total))
            results.append((params, totals, int(state["step"])))
        (eager, eager_totals, n1), (compiled, compiled_totals, n2) = results
        assert n1 == n2 == 4
        rtol = 1e-4 if dtype == "float32" else 1e-11
        np.testing.assert_allclose(compiled_totals, eager_totals, rtol=rtol)
        for a, b in zip(compiled, eager):
            for k in a:
                np.testing.assert_allclose(host(a[k]), host(b[k]), rtol=rtol, atol=rtol * 1e-2)


def test_dropout_masks_differ_from_step_to_step_under_compile(rng):
    with nnxp.use_backend("jax"):
        X, T = normal(rng, (32, 6), "float32"), one_hot(rng, (32,), 3, "float32")
        net, opt = _net(dropout=0.5), nnxp.SGD(0.0)  # lr 0: only the masks change the loss
        step = build_step(net, "cross_entropy", opt, compile=True)
        params, state, key = net.parameters(), opt.init_state(net.parameters()), net.rng.get_state()
        totals = []
        for _ in range(4):
            params, state, key, total = step(params, state, key, X, T)
            totals.append(float(total))
        assert len(set(totals)) == 4, totals
        no_dropout = float(net.loss_and_gradient(X, T, "cross_entropy")[0]) * 32
        assert all(t != pytest.approx(no_dropout, rel=1e-6) for t in totals)
        with pytest.raises(ValueError, match="needs rng"):
            step(params, state, None, X, T)


def test_compiled_step_leaks_no_tracer_and_leaves_the_network_alone(rng):
    with nnxp.use_backend("jax"):
        X, T = normal(rng, (8, 6), "float32"), one_hot(rng, (8,), 3, "float32")
        net, opt = _net(dropout=0.5), nnxp.Adam()
        before = [host(layer.params["W"]) for layer in net.layers if layer.params]
        key = net.rng.get_state()
        step = build_step(net, "cross_entropy", opt, compile=True)
        with jax.checking_leaks():
            step(net.parameters(), opt.init_state(net.parameters()), key, X, T)
        for layer in net.layers:
            assert layer.grads == {}
            for value in layer.params.values():
                assert not isinstance(value, jax.core.Tracer)
        after = [host(layer.params["W"]) for layer in net.layers if layer.params]
        for a, b in zip(before, after):
            np.testing.assert_array_equal(a, b)
        assert not isinstance(net.rng.get_state(), jax.core.Tracer)
        assert opt.state is None


def test_scanned_epoch_equals_compiled_steps(rng):
    with nnxp.use_backend("jax"):
        X, T = normal(rng, (5, 16, 6), "float32"), one_hot(rng, (5, 16), 3, "float32")
        net, opt = _net(dropout=0.2), nnxp.Adam(0.01)
        step = build_step(net, "cross_entropy", opt, compile=True)
        start = net.parameters(), opt.init_state(net.parameters()), net.rng.get_state()
        p1, s1, k1, sums = step.epoch(*start, X, T)
        p2, s2, k2 = start
        totals = []
        for i in range(5):
            p2, s2, k2, total = step(p2, s2, k2, X[i, ...], T[i, ...])
            totals.append(float(total))
        np.testing.assert_allclose(host(sums), totals, rtol=1e-5)
        np.testing.assert_allclose(host(p1[0]["W"]), host(p2[0]["W"]), rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(nnxp.to_numpy(k1), nnxp.to_numpy(k2))


def test_a_compiled_step_trains_wrappers_and_normalization(rng):
    def make():
        return nnxp.Sequential(
            [
                nnxp.Dense(6, 8, "tanh"),
                nnxp.Residual([nnxp.Dense(8, 8, "tanh")]),
                nnxp.LayerNormalization(8),
                nnxp.Dense(8, 3, "softmax"),
            ],
            seed=1,
        )

    with jax.enable_x64(False), nnxp.use_backend("jax"):
        X, T = normal(rng, (8, 6), "float32"), one_hot(rng, (8,), 3, "float32")
        results = []
        for compile in (False, True):
            net, opt = make(), nnxp.Adam(0.01)
            step = build_step(net, "cross_entropy", opt, compile=compile)
            params, state, key = (
                net.parameters(),
                opt.init_state(net.parameters()),
                net.rng.get_state(),
            )
            for _ in range(2):
                params, state, key, _ = step(params, state, key, X, T)
            assert not isinstance(net.layers[1].params["0.W"], jax.core.Tracer)
            results.append(params)
        for a, b in zip(*results):
            for k in a:
                np.testing.assert_allclose(host(a[k]), host(b[k]), rtol=1e-4, atol=1e-6)


def test_arrays_moved_from_jax_to_numpy_are_writable(rng):
    with jax.enable_x64(False), nnxp.use_backend("jax"):
        X, T = normal(rng, (8, 6), "float32"), one_hot(rng, (8,), 3, "float32")
        net, opt = _net(), nnxp.Adam(0.01)
        net.fit(X, T, loss="cross_entropy", optimizer=opt, epochs=1, progress=False)
    host_copy = nnxp.to_numpy(X)
    host_copy[0, 0] = 1.0  # a copy, not a read-only view of the jax buffer
    net.to_backend("numpy", optimizer=opt)
    with nnxp.use_backend("numpy"):
        net.fit(
            nnxp.to_numpy(X),
            nnxp.to_numpy(T),
            loss="cross_entropy",
            optimizer=opt,
            epochs=1,
            progress=False,
        )  # in-place updates of params and moments
    assert opt.steps == 2 and np.all(np.isfinite(nnxp.to_numpy(net.layers[0].W)))


# ---------------------------------------------------------------- fit(compile=True)
def _fit(compile, X, T, dtype, dropout=0.25, **options):
    net, opt = _net(dtype, dropout=dropout), nnxp.Adam(0.01)
    history = net.fit(
        X, T, loss="cross_entropy", optimizer=opt, compile=compile, progress=False, **options
    )
    return net, opt, history


def test_fit_compiled_equals_fit_eager_to_rounding_in_float64(rng):
    with jax.enable_x64(True), nnxp.use_backend("jax"):
        # 50 rows, batches of 16: a scanned program of 3 batches plus a batch of 2
        X, T = normal(rng, (50, 6), "float64"), one_hot(rng, (50,), 3, "float64")
        options = dict(epochs=3, batch_size=16, seed=5)
        eager, eager_opt, h1 = _fit(False, X, T, "float64", **options)
        compiled, compiled_opt, h2 = _fit(True, X, T, "float64", **options)
        assert compiled_opt.steps == eager_opt.steps == 12
        np.testing.assert_allclose(h2.history["loss"], h1.history["loss"], rtol=1e-11)
        for a, b in zip(compiled.parameters(), eager.parameters()):
            for k in a:
                np.testing.assert_allclose(host(a[k]), host(b[k]), rtol=1e-10, atol=1e-12)
        for a, b in zip(compiled_opt.state, eager_opt.state):
            for k in a:
                for slot in a[k]:
                    np.testing.assert_allclose(host(a[k][slot]), host(b[k][slot]), rtol=1e-9)
        np.testing.assert_array_equal(
            nnxp.to_numpy(compiled.rng.get_state()), nnxp.to_numpy(eager.rng.get_state())
        )
        # and training goes on from there: a second fit continues the same optimizer
        compiled.fit(
            X,
            T,
            loss="cross_entropy",
            optimizer=compiled_opt,
            compile=True,
            epochs=1,
            progress=False,
        )
        assert compiled_opt.steps == 14  # 50 rows, default batches of 32


def test_fit_compiled_draws_fresh_dropout_masks_at_every_step(rng):
    with nnxp.use_backend("jax"):
        X8, T8 = normal(rng, (8, 6), "float32"), one_hot(rng, (8,), 3, "float32")
        X32, T32 = (jax.numpy.concatenate([a] * 4) for a in (X8, T8))
        options = dict(
            loss="cross_entropy",
            batch_size=8,
            shuffle=False,
            compile=True,
            progress=False,
        )
        # lr 0: only the masks change the loss. One step per epoch, three epochs:
        net = _net(dropout=0.5)
        no_dropout = float(net.loss_and_gradient(X8, T8, "cross_entropy")[0])
        losses = net.fit(X8, T8, epochs=3, optimizer=nnxp.SGD(0.0), **options).history["loss"]
        assert len(set(losses)) == 3, losses
        assert all(v != pytest.approx(no_dropout, rel=1e-6) for v in losses)
        # four equal batches in one scanned program: with one mask for all four, the
        # epoch's mean would be the first step's loss
        first = _net(dropout=0.5).fit(X8, T8, epochs=1, optimizer=nnxp.SGD(0.0), **options)
        first = first.history["loss"][0]
        assert first == pytest.approx(losses[0], rel=1e-6)  # same seed, same first mask
        mean4 = _net(dropout=0.5).fit(X32, T32, epochs=1, optimizer=nnxp.SGD(0.0), **options)
        mean4 = mean4.history["loss"][0]
        assert mean4 != pytest.approx(first, rel=1e-4)


def test_fit_compiled_with_a_sequence_mask_equals_eager(rng):
    # (Embedding and the recurrent kernels read X.device, which a jax tracer lacks)
    def make():
        return nnxp.Sequential(
            [nnxp.Dense(3, 4, "tanh"), nnxp.GlobalAveragePooling1D(), nnxp.Dense(4, 3, "softmax")],
            seed=1,
            dtype="float64",
        )

    lengths = rng.integers(1, 6, 10)
    mask = np.arange(5)[None, :] < lengths[:, None]
    with jax.enable_x64(True), nnxp.use_backend("jax"):
        X, M = normal(rng, (10, 5, 3), "float64"), nnxp.asarray(mask)
        y = nnxp.asarray(rng.integers(0, 3, 10))
        results = []
        for compile, mask in ((False, M), (True, M), (True, None)):
            net = make()
            h = net.fit(
                X,
                y,
                loss="cross_entropy",
                optimizer=nnxp.Adam(0.05),
                epochs=2,
                batch_size=4,
                seed=0,
                sequence_mask=mask,
                compile=compile,
                progress=False,
            )
            results.append((net, h.history["loss"]))
        (eager, l1), (compiled, l2), (_, unmasked) = results
        np.testing.assert_allclose(l2, l1, rtol=1e-11)
        assert not np.allclose(unmasked, l2, rtol=1e-6)  # the mask reached the pooling
        for a, b in zip(compiled.parameters(), eager.parameters()):
            for k in a:
                np.testing.assert_allclose(host(a[k]), host(b[k]), rtol=1e-10, atol=1e-12)


def test_fit_compiled_restores_the_last_finite_state_and_names_the_batch(rng):
    with jax.enable_x64(True), nnxp.use_backend("jax"):
        X, T = normal(rng, (40, 6), "float64"), one_hot(rng, (40,), 3, "float64")
        X = X.at[25, 0].set(np.inf)  # batch 3 of 5 (batches of 8, unshuffled)
        results = []
        for compile in (False, True):
            net, opt = _net("float64"), nnxp.Adam(0.01)
            with pytest.raises(FloatingPointError, match="epoch 0 \\(0-based\\), batch 3"):
                net.fit(
                    X,
                    T,
                    loss="cross_entropy",
                    optimizer=opt,
                    batch_size=8,
                    shuffle=False,
                    check_finite=False,
                    compile=compile,
                    progress=False,
                )
            results.append((net, opt))
        (eager, eager_opt), (compiled, compiled_opt) = results
        assert compiled_opt.steps == eager_opt.steps == 2
        for a, b in zip(compiled.parameters(), eager.parameters()):
            for k in a:
                np.testing.assert_allclose(host(a[k]), host(b[k]), rtol=1e-10, atol=1e-12)


def test_fit_compiled_again_reuses_the_step_until_a_setting_changes(rng):
    with nnxp.use_backend("jax"):
        X, T = normal(rng, (40, 6), "float32"), one_hot(rng, (40,), 3, "float32")
        net, opt = _net(), nnxp.SGD(0.1)
        options = dict(loss="cross_entropy", optimizer=opt, batch_size=16, progress=False)
        net.fit(X, T, compile=True, **options)
        first = opt._nnxp_compiled[1]
        net.fit(X, T, compile=True, **options)
        assert opt._nnxp_compiled[1] is first  # one epoch at a time: no second trace
        opt.lr = 0.0  # baked into the trace as a constant: a new step must honour it
        before = [host(p["W"]) for p in net.parameters() if p]
        net.fit(X, T, compile=True, **options)
        assert opt._nnxp_compiled[1] is not first
        for a, p in zip(before, [p for p in net.parameters() if p]):
            np.testing.assert_array_equal(a, host(p["W"]))
        opt.lr = 0.1  # and back: training moves again
        net.fit(X, T, compile=True, **options)
        assert not np.array_equal(before[-1], host(net.layers[-1].params["W"]))
