"""Issue 10: inference that leaves the layers alone (threads, caches, memory), one progress
bar per fit, and the same batches from the same seed on every backend."""

from __future__ import annotations

import gc
import threading
import time
import tracemalloc

import numpy as np
import pytest
from helpers import host, normal

import nnxp
from nnxp import datasets


def _net(dtype="float64", seed=0):
    return nnxp.Sequential(
        [nnxp.Dense(4, 16, "tanh"), nnxp.Dense(16, 3, "softmax")], seed=seed, dtype=dtype
    )


# ---------------------------------------------------------------- 19. inference and threads
def test_predict_between_forward_and_backward_changes_nothing(backend, rng):
    net = _net()
    X, Z, V = normal(rng, (5, 4)), normal(rng, (9, 4)), normal(rng, (5, 3))
    net.forward(X)
    expected = host(net.backward(V))
    grads = [{k: host(v) for k, v in layer.grads.items()} for layer in net.layers]
    net.forward(X)
    net.predict(Z)
    net.evaluate(Z, nnxp.asarray(np.eye(3)[[0, 1, 2, 0, 1, 2, 0, 1, 2]]), "cross_entropy")
    np.testing.assert_array_equal(host(net.backward(V)), expected)
    for layer, g in zip(net.layers, grads):
        for k in g:
            np.testing.assert_array_equal(host(layer.grads[k]), g[k])


class _SlowDense(nnxp.Dense):
    """A Dense that sleeps (releasing the GIL) between its forward and its backward, so
    threads interleave there."""

    def backward_from_delta(self, Deltas, *, need_dX=True):
        time.sleep(0.002)
        return super().backward_from_delta(Deltas, need_dX=need_dX)

    def forward(self, X, *, training=False, mask=None):
        Y = super().forward(X, training=training, mask=mask)
        time.sleep(0.002)
        return Y


def test_threads_get_the_answers_of_one_thread(backend, rng):
    net = nnxp.Sequential(
        [_SlowDense(4, 16, "tanh"), _SlowDense(16, 3, "softmax")], dtype="float64"
    )
    inputs = [normal(rng, (40 + 7 * i, 4)) for i in range(4)]
    targets = [nnxp.asarray(np.eye(3)[rng.integers(0, 3, x.shape[0])]) for x in inputs]

    def work(i):
        X, T = inputs[i], targets[i]
        value, grads = net.loss_and_gradient(X, T, "cross_entropy")
        return (
            host(net.predict(X)),
            net.evaluate(X, T, "cross_entropy")["loss"],
            value,
            [{k: host(v) for k, v in g.items()} for g in grads],
        )

    alone = [work(i) for i in range(4)]
    results: dict = {}
    threads = []
    for round_ in range(3):
        for i in range(4):
            key = (round_, i)
            t = threading.Thread(target=lambda k=key: results.__setitem__(k, work(k[1])))
            threads.append(t)
            t.start()
    for t in threads:
        t.join()
    assert len(results) == 12
    for (_, i), (Y, loss, value, grads) in results.items():
        np.testing.assert_array_equal(Y, alone[i][0])
        assert loss == alone[i][1] and value == alone[i][2]
        for g, ref in zip(grads, alone[i][3]):
            for k in ref:
                np.testing.assert_array_equal(g[k], ref[k])


def test_no_activation_stays_alive_after_predict(rng):
    """numpy (tracemalloc sees its buffers): what predict allocated is freed on return."""
    with nnxp.use_backend("numpy"):
        net = nnxp.Sequential(
            [nnxp.Dense(64, 512, "relu"), nnxp.Dense(512, 512, "relu"), nnxp.Dense(512, 10)],
            dtype="float32",
        )
        X = normal(rng, (2000, 64), dtype="float32")
        gc.collect()
        tracemalloc.start()
        before, _ = tracemalloc.get_traced_memory()
        Y = net.predict(X)
        nnxp.to_numpy(Y)
        del Y
        gc.collect()
        after, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak - before > 4e6  # the activations did exist (2000 x 512 float32 = 4 MB) ...
    assert after - before < 1e6  # ... and none outlives the call


# ---------------------------------------------------------------- 24. one progress bar
class _Bar:
    made: list = []

    def __init__(self, total=None, **options):
        self.total, self.options, self.updates, self.postfix = total, options, 0, None
        _Bar.made.append(self)

    def update(self, n=1):
        self.updates += n

    def set_postfix(self, *args, **kwargs):
        self.postfix = args[0] if args else kwargs

    def close(self):
        pass


def test_one_progress_bar_for_the_whole_fit(backend, monkeypatch):
    tqdm_auto = pytest.importorskip("tqdm.auto")
    monkeypatch.setattr(tqdm_auto, "tqdm", _Bar)
    _Bar.made.clear()
    X, T = datasets.spirals(n_per_class=5)
    net = nnxp.Sequential([nnxp.Dense(2, 3, "softmax")])
    net.fit(X, T, loss="cross_entropy", epochs=7, batch_size=4, validation_data=(X, T))
    assert len(_Bar.made) == 1
    bar = _Bar.made[0]
    assert bar.total == 7 and bar.updates == 7 and bar.options.get("unit") == "epoch"
    assert set(bar.postfix) == {"loss", "val_loss", "val_accuracy"}


# ---------------------------------------------------------------- 25. same seed, same batches
def test_same_seed_same_batches_on_every_backend():
    X, T = datasets.spirals(n_per_class=20)
    X, T = nnxp.to_numpy(X), nnxp.to_numpy(T)
    weights = {}
    for name in ("numpy", "array_api_strict", "torch"):
        if name not in nnxp.available_backends():
            continue
        with nnxp.use_backend(name):
            net = nnxp.Sequential(
                [nnxp.Dense(2, 16, "tanh"), nnxp.Dense(16, 3, "softmax")], seed=0, dtype="float64"
            )
            net.fit(
                nnxp.asarray(X, dtype="float64"),
                nnxp.asarray(T, dtype="float64"),
                loss="cross_entropy",
                optimizer=nnxp.SGD(0.5),
                epochs=4,
                batch_size=7,
                seed=3,
                progress=False,
            )
            weights[name] = [host(p["W"]) for p in net.parameters()]
    reference = weights.pop("numpy")
    for name, ws in weights.items():
        for w, ref in zip(ws, reference):
            np.testing.assert_allclose(w, ref, rtol=0, atol=1e-12, err_msg=name)
