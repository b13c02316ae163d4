"""Issue 10, state that stays consistent: non-finite losses and weights, overflow-free epoch
sums, Ctrl-C, optimizer ownership, early stopping that cannot monitor anything."""

from __future__ import annotations

import signal

import numpy as np
import pytest
from helpers import host

import nnxp
from nnxp import datasets


def _net(seed=0, dtype="float32"):
    return nnxp.Sequential(
        [nnxp.Dense(2, 8, "tanh"), nnxp.Dense(8, 3, "softmax")], seed=seed, dtype=dtype
    )


def _weights(net):
    return [{k: host(v).copy() for k, v in p.items()} for p in net.parameters()]


def _same(a, b):
    for pa, pb in zip(a, b):
        assert sorted(pa) == sorted(pb)
        for k in pa:
            np.testing.assert_array_equal(pa[k], pb[k])


def _state(opt):
    return opt.steps, [
        {k: {s: host(v).copy() for s, v in slots.items()} for k, slots in layer.items()}
        for layer in (opt.state or [])
    ]


# ---------------------------------------------------------------- 6. first batch non-finite
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_non_finite_first_batch_restores_the_optimizer_too(backend):
    X, T = datasets.spirals(n_per_class=10)
    net, opt = _net(), nnxp.Adam(0.01)
    net.fit(X, T, loss="cross_entropy", optimizer=opt, epochs=1, batch_size=10, progress=False)
    weights, state = _weights(net), _state(opt)
    bad = nnxp.to_numpy(X).copy()
    bad[0, 0] = np.nan
    with pytest.raises(FloatingPointError, match="epoch 0 .* batch 0"):
        net.fit(
            nnxp.asarray(bad),
            T,
            loss="cross_entropy",
            optimizer=opt,
            epochs=1,
            batch_size=10,
            shuffle=False,
            check_finite=False,
            progress=False,
        )
    _same(_weights(net), weights)
    steps, slots = _state(opt)
    assert steps == state[0]
    for a, b in zip(slots, state[1]):
        _same(list(a.values()), list(b.values()))
    opt.lr = 0.001  # retrying with a lower learning rate on clean data works
    history = net.fit(X, T, loss="cross_entropy", optimizer=opt, epochs=1, progress=False)
    assert np.isfinite(history.history["loss"][0]) and opt.steps > state[0]


# ---------------------------------------------------------------- 7. the final step
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_last_step_that_makes_the_weights_non_finite_is_caught(backend):
    X, T = datasets.spirals(n_per_class=4)
    net = _net()
    before = _weights(net)
    with pytest.raises(FloatingPointError, match="last step .* non-finite"):
        # one step; every loss it sees is finite, but lr * g overflows float32
        net.fit(X, T, loss="cross_entropy", optimizer=nnxp.SGD(1e39), epochs=1, batch_size=12)
    _same(_weights(net), before)  # the last finite state: before that step


# ---------------------------------------------------------------- 8. epoch sums in float64
def test_finite_batch_losses_never_overflow_the_epoch_loss(backend):
    rng = np.random.default_rng(0)
    X = nnxp.asarray(rng.standard_normal((100, 2)), dtype="float32")
    T = nnxp.asarray(np.full((100, 1), 2e18), dtype="float32")  # each batch: ~4e36 < 3.4e38
    net = nnxp.Sequential([nnxp.Dense(2, 1)], dtype="float32")
    history = net.fit(
        X, T, loss="mse", optimizer=nnxp.SGD(0.0), epochs=1, batch_size=1, progress=False
    )  # the float32 sum of 100 batches would be inf
    assert history.history["loss"][0] == pytest.approx(4e36, rel=1e-3)


# ---------------------------------------------------------------- 9. Ctrl-C
class _CtrlC(nnxp.Adam):
    """Adam whose ``at``-th step receives SIGINT (as a Ctrl-C) ``times`` times; counts every
    call of ``step`` (a replay of the epoch would call it again)."""

    def __init__(self, at, times=1, **options):
        super().__init__(**options)
        self.at, self.times, self.calls = at, times, 0

    def step(self, params, grads):
        self.calls += 1
        if self.steps + 1 == self.at:
            for _ in range(self.times):
                signal.raise_signal(signal.SIGINT)
        super().step(params, grads)


@pytest.mark.parametrize("times", [1, 2])
def test_ctrl_c_reaches_the_caller_after_the_running_step_with_no_replay(backend, times):
    X, T = datasets.spirals(n_per_class=20)  # 60 rows: 6 batches of 10 per epoch
    net, reference = _net(), _net()
    opt = _CtrlC(at=9, times=times, lr=0.01)
    with pytest.raises(KeyboardInterrupt):
        net.fit(
            X,
            T,
            loss="cross_entropy",
            optimizer=opt,
            epochs=5,
            batch_size=10,
            shuffle=False,
            progress=False,
        )
    assert opt.calls == 9  # no step after the interrupted one, and no replay
    assert opt.steps == 9  # the running step completed
    ref_opt = nnxp.Adam(lr=0.01)
    options = dict(loss="cross_entropy", batch_size=10, shuffle=False, progress=False)
    reference.fit(X, T, optimizer=ref_opt, epochs=1, **options)
    reference.fit(X[0:30, ...], T[0:30, ...], optimizer=ref_opt, epochs=1, **options)
    _same(_weights(net), _weights(reference))
    assert net.history.epoch == [0]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# ---------------------------------------------------------------- 10. optimizer ownership
def test_an_optimizer_belongs_to_the_network_it_was_first_used_with(backend):
    X, T = datasets.spirals(n_per_class=5)
    first, second = _net(seed=0), _net(seed=1)
    opt = nnxp.Adam(0.01)
    first.fit(X, T, loss="cross_entropy", optimizer=opt, epochs=1, progress=False)
    weights, state = _weights(second), _state(opt)
    with pytest.raises(ValueError, match="belongs to the parameters of another network"):
        second.fit(X, T, loss="cross_entropy", optimizer=opt, epochs=1, progress=False)
    _same(_weights(second), weights)
    assert _state(opt)[0] == state[0]
    first.fit(X, T, loss="cross_entropy", optimizer=opt, epochs=1, progress=False)  # still fine


def test_an_optimizer_left_behind_by_to_backend_is_refused(backend):
    X, T = datasets.spirals(n_per_class=5)
    net, opt = _net(), nnxp.Adam(0.01)
    with nnxp.use_backend("numpy"):
        Xn, Tn = nnxp.asarray(nnxp.to_numpy(X)), nnxp.asarray(nnxp.to_numpy(T))
        net_np = _net()
    net_np.fit(Xn, Tn, loss="cross_entropy", optimizer=opt, epochs=1, progress=False)
    net_np.to_backend(backend.name)  # without optimizer=
    with pytest.raises(ValueError, match="stayed behind .* pass optimizer= to to_backend"):
        net_np.fit(X, T, loss="cross_entropy", optimizer=opt, epochs=1, progress=False)
    moved = nnxp.Adam(0.01)
    net.fit(X, T, loss="cross_entropy", optimizer=moved, epochs=1, progress=False)
    net.to_backend("numpy", optimizer=moved)
    net.fit(Xn, Tn, loss="cross_entropy", optimizer=moved, epochs=1, progress=False)


# ---------------------------------------------------------------- 11. impossible monitor
def test_early_stopping_on_a_key_that_cannot_exist_is_refused_before_training(backend):
    X, T = datasets.spirals(n_per_class=5)
    net = _net()
    before = _weights(net)
    with pytest.raises(ValueError, match="monitors 'val_loss', which this fit never records"):
        net.fit(
            X,
            T,
            loss="cross_entropy",
            epochs=3,
            early_stopping=nnxp.EarlyStopping("val_loss"),
            progress=False,
        )
    _same(_weights(net), before)
    with pytest.raises(ValueError, match="monitors 'accuracy'"):
        net.fit(X, T, loss="cross_entropy", epochs=3, early_stopping={"monitor": "accuracy"})
    _same(_weights(net), before)
