"""The pure training step (nnxp.step.build_step) on every backend: the same updates as fit,
nothing mutated, randomness threaded."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import host, normal, one_hot

import nnxp
from nnxp.step import build_step


def jax_key_data(key):
    return nnxp.to_numpy(key)


def _net(dropout=0.0, dtype="float64", out="softmax"):
    layers = [nnxp.Dense(6, 8, "tanh")]
    if dropout:
        layers.append(nnxp.Dropout(dropout))
    layers.append(nnxp.Dense(8, 3, out))
    return nnxp.Sequential(layers, seed=4, dtype=dtype)


def _host_params(params):
    return [{k: host(v) for k, v in layer.items()} for layer in params]


def _batches(n, size):
    return [(start, min(start + size, n)) for start in range(0, n, size)]


@pytest.mark.parametrize(
    "loss,out,make_opt",
    [
        ("cross_entropy", "softmax", lambda: nnxp.Adam(0.01)),
        ("mse", "sigmoid", lambda: nnxp.SGD(0.1, momentum=0.9, nesterov=True)),
        ("binary_cross_entropy", "sigmoid", lambda: nnxp.AdamW(0.01)),
    ],
)
def test_the_step_makes_the_updates_fit_makes(backend, rng, loss, out, make_opt):
    X = normal(rng, (40, 6))
    T = one_hot(rng, (40,), 3) if loss != "mse" else normal(rng, (40, 3), scale=0.3)
    fitted = _net(out=out)
    fitted.fit(
        X,
        T,
        loss=loss,
        optimizer=make_opt(),
        epochs=2,
        batch_size=16,
        shuffle=False,
        progress=False,
    )
    net = _net(out=out)
    opt = make_opt()
    step = build_step(net, loss, opt)
    params, state, key = net.parameters(), opt.init_state(net.parameters()), None
    totals = []
    for _ in range(2):
        for start, stop in _batches(40, 16):
            params, state, key, total = step(
                params, state, key, X[start:stop, ...], T[start:stop, ...], None
            )
            totals.append(host(total))
    assert state["step"] == 6 and np.all(np.isfinite(totals))
    for ours, theirs in zip(_host_params(params), _host_params(fitted.parameters())):
        for k in ours:
            np.testing.assert_allclose(ours[k], theirs[k], rtol=1e-12, atol=1e-13)
    assert fitted.history.history["loss"][-1] == pytest.approx(sum(totals[3:]) / 40, rel=1e-10)


def test_the_step_leaves_the_network_and_optimizer_as_they_were(backend, rng):
    net, opt = _net(), nnxp.Adam(0.1)
    before = _host_params(net.parameters())
    step = build_step(net, "cross_entropy", opt)
    params, state, _, total = step(
        net.parameters(),
        opt.init_state(net.parameters()),
        None,
        normal(rng, (5, 6)),
        one_hot(rng, (5,), 3),
        None,
    )
    for now, then in zip(_host_params(net.parameters()), before):
        for k in now:
            np.testing.assert_array_equal(now[k], then[k])
    assert opt.state is None and opt.steps == 0 and state["step"] == 1
    for layer in net.layers:
        assert layer.grads == {} and getattr(layer, "_cache", None) is None
    assert not np.array_equal(host(params[0]["W"]), before[0]["W"])
    assert host(total).shape == ()


def test_donated_params_give_the_same_numbers(backend, rng):
    X, T = normal(rng, (12, 6)), one_hot(rng, (12,), 3)
    results = []
    for donate in (False, True):
        net, opt = _net(), nnxp.SGD(0.1, momentum=0.5)
        step = build_step(net, "cross_entropy", opt, donate=donate)
        params, state = net.get_weights(), opt.init_state(net.parameters())
        for _ in range(3):
            params, state, _, _ = step(params, state, None, X, T, None)
        results.append(_host_params(params))
    for a, b in zip(*results):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def test_the_rng_state_is_threaded_or_advanced_in_place(backend, rng):
    X, T = normal(rng, (16, 6)), one_hot(rng, (16,), 3)
    net, opt = _net(dropout=0.5), nnxp.SGD(0.0)
    step = build_step(net, "cross_entropy", opt)
    params, state = net.parameters(), opt.init_state(net.parameters())
    key = net.rng.get_state()
    _, _, key1, total1 = step(params, state, key, X, T, None)
    after = net.rng.get_state()
    if backend.name == "jax":
        assert np.array_equal(np.asarray(jax_key_data(after)), np.asarray(jax_key_data(key)))
    _, _, key2, total2 = step(params, state, key, X, T, None)
    assert host(total1) == host(total2)  # same key in, same masks
    _, _, _, total3 = step(params, state, key2, X, T, None)
    assert host(total3) != host(total1)  # the advanced key draws new masks (lr = 0)


def test_the_mask_and_a_grads_hook_reach_the_step(backend, rng):
    X = normal(rng, (6, 6))
    mask = nnxp.asarray(np.array([[1, 1, 0]] * 6, dtype=bool))
    T = nnxp.asarray(np.array([[1.0, 0.0, 0.0]] * 6), dtype="float64")
    net, opt = _net(), nnxp.SGD(1.0)
    seen = []

    def hook(grads):
        seen.append(len(grads))
        return [{k: 0.0 * g for k, g in layer.items()} for layer in grads]

    step = build_step(net, "cross_entropy", opt, grads_hook=hook)
    params, _, _, total = step(net.parameters(), opt.init_state(net.parameters()), None, X, T, mask)
    assert seen == [len(net.layers)]
    for now, then in zip(_host_params(params), _host_params(net.parameters())):
        for k in now:
            np.testing.assert_array_equal(now[k], then[k])  # zeroed grads: no change
    expected = net.loss_and_gradient(X, T, "cross_entropy", mask=mask)[0] * 6
    assert host(total) == pytest.approx(expected, rel=1e-12)


def test_epoch_equals_its_steps(backend, rng):
    X, T = normal(rng, (3, 8, 6)), one_hot(rng, (3, 8), 3)
    net, opt = _net(), nnxp.Adam(0.01)
    step = build_step(net, "cross_entropy", opt)
    p1, s1, _, sums = step.epoch(net.parameters(), opt.init_state(net.parameters()), None, X, T)
    p2, s2 = net.parameters(), opt.init_state(net.parameters())
    for i in range(3):
        p2, s2, _, total = step(p2, s2, None, X[i, ...], T[i, ...], None)
    assert host(sums).shape == (3,) and host(sums)[-1] == host(total)
    np.testing.assert_array_equal(host(p1[-1]["W"]), host(p2[-1]["W"]))


def test_compile_is_refused_where_nnxp_cannot_compile(backend):
    if backend.name == "jax":
        pytest.skip("jax compiles")
    net = _net()
    with pytest.raises(ValueError, match=f"compile=True needs the jax backend.*{backend.name}"):
        build_step(net, "cross_entropy", "adam", compile=True)


def test_a_loss_the_output_cannot_take_is_refused(backend):
    with pytest.raises(ValueError, match="cross_entropy"):
        build_step(_net(out="sigmoid"), "cross_entropy", "sgd")


def test_with_count_returns_the_rows_the_mean_runs_over(backend, rng):
    X = normal(rng, (4, 6))
    mask = nnxp.asarray(np.array([[1, 1, 0], [0, 0, 0], [1, 0, 1], [1, 1, 1]], dtype=bool))
    T = nnxp.asarray(np.array([[1.0, 0, 0], [0, 0, 0], [0, 0, 1.0], [0, 1.0, 0]]), dtype="float64")
    net, opt = _net(), nnxp.SGD(0.1)
    step = build_step(net, "cross_entropy", opt, with_count=True)
    _, _, _, (total, count) = step(
        net.parameters(), opt.init_state(net.parameters()), None, X, T, mask
    )
    assert float(count) == 3.0
    mean = net.loss_and_gradient(X, T, "cross_entropy", mask=mask)[0]
    assert host(total) / 3.0 == pytest.approx(mean, rel=1e-12)


def test_wrappers_and_normalization_train_through_the_step_as_through_fit(backend, rng):
    def make():
        return nnxp.Sequential(
            [
                nnxp.Dense(6, 8, "tanh"),
                nnxp.Residual([nnxp.Dense(8, 8, "tanh")]),
                nnxp.LayerNormalization(8),
                nnxp.Dense(8, 3, "softmax"),
            ],
            seed=1,
            dtype="float64",
        )

    X, T = normal(rng, (20, 6)), one_hot(rng, (20,), 3)
    fitted = make()
    fitted.fit(
        X,
        T,
        loss="cross_entropy",
        optimizer=nnxp.Adam(0.01),
        epochs=1,
        batch_size=8,
        shuffle=False,
        progress=False,
    )
    net, opt = make(), nnxp.Adam(0.01)
    inner = net.layers[1].params["0.W"]
    step = build_step(net, "cross_entropy", opt)
    params, state = net.parameters(), opt.init_state(net.parameters())
    for start, stop in _batches(20, 8):
        params, state, _, _ = step(params, state, None, X[start:stop, ...], T[start:stop, ...])
    assert net.layers[1].params["0.W"] is inner  # the wrapper's part was put back
    for ours, theirs in zip(_host_params(params), _host_params(fitted.parameters())):
        assert set(ours) == set(theirs)
        for k in ours:
            np.testing.assert_allclose(ours[k], theirs[k], rtol=1e-12, atol=1e-13)


# ---------------------------------------------------------------- fit through the step
def test_fit_compile_is_refused_off_jax_before_anything_changes(backend, rng):
    if backend.name == "jax":
        pytest.skip("jax compiles: tests/test_jax.py")
    X, T = normal(rng, (20, 6)), one_hot(rng, (20,), 3)
    net, opt = _net(), nnxp.Adam(0.01)
    before = _host_params(net.parameters())
    with pytest.raises(ValueError, match=f"compile=True\\) needs the jax backend.*{backend.name}"):
        net.fit(X, T, loss="cross_entropy", optimizer=opt, compile=True, progress=False)
    for a, b in zip(_host_params(net.parameters()), before):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    assert opt.state is None and opt.steps == 0 and net.history is None


def _sequences(rng, n=6, t_max=5, vocab=7):
    lengths = rng.integers(1, t_max + 1, n)
    tokens = rng.integers(1, vocab, (n, t_max))
    mask = np.arange(t_max)[None, :] < lengths[:, None]
    tokens[~mask] = 0
    return tokens, mask, rng.integers(0, 3, n)


def _sequence_net():
    from nnxp.layers.embedding import Embedding
    from nnxp.layers.recurrent import LSTM

    return nnxp.Sequential(
        [Embedding(7, 4), LSTM(4, 5), nnxp.Dense(5, 3, "softmax")], seed=1, dtype="float64"
    )


def test_fit_with_a_sequence_mask_runs_the_step_with_each_batchs_mask(backend, rng):
    tokens, mask, labels = _sequences(rng)
    X, M, y = nnxp.asarray(tokens), nnxp.asarray(mask), nnxp.asarray(labels)
    options = dict(loss="cross_entropy", epochs=2, batch_size=4, shuffle=False, progress=False)
    fitted = _sequence_net()
    fitted.fit(X, y, optimizer=nnxp.Adam(0.05), sequence_mask=M, **options)
    unmasked = _sequence_net()
    unmasked.fit(X, y, optimizer=nnxp.Adam(0.05), **options)
    # by hand: the step given each batch's rows of the mask (6 rows: batches of 4 and 2)
    net, opt = _sequence_net(), nnxp.Adam(0.05)
    Xp, Tp, loss, _, Mp = net.prepare_sequences(X, y, "cross_entropy", None, M)
    step = build_step(net, loss, opt)
    params, state, key = net.parameters(), opt.init_state(net.parameters()), None
    for _ in range(2):
        for start, stop in _batches(6, 4):
            rows = slice(start, stop)
            Xb, Tb, Mb = (a[rows, ...] for a in (Xp, Tp, Mp))
            params, state, key, _ = step(params, state, key, Xb, Tb, None, Mb)
    ours, theirs = _host_params(params), _host_params(fitted.parameters())
    for a, b in zip(ours, theirs):
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-11, atol=1e-12)
    # and the mask mattered: without it the padded steps feed the LSTM
    differ = [
        not np.allclose(a[k], b[k], rtol=1e-6)
        for a, b in zip(ours, _host_params(unmasked.parameters()))
        for k in a
    ]
    assert any(differ)
