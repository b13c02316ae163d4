"""Issue 10, files: hostile and damaged files cost what they hold and raise ValueError naming
the file; save keeps permissions and symlinks; rebuilding draws no random weights; loading
shares no memory."""

from __future__ import annotations

import json
import os
import stat
import tracemalloc
import zipfile

import numpy as np
import pytest
from helpers import host

import nnxp


def _net(seed=0):
    return nnxp.Sequential(
        [nnxp.Dense(3, 5, "tanh"), nnxp.Dense(5, 4, "softmax")], seed=seed, dtype="float32"
    )


def _meta(net, **changes):
    meta = {
        "format": "nnxp-model",
        "format_version": 1,
        "nnxp_version": nnxp.__version__,
        "dtype": "float32",
        "seed": 0,
        "layers": [layer.get_config() for layer in net.layers],
        "optimizer": None,
    }
    meta.update(changes)
    return np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)


def _arrays(net):
    return {
        f"layers/{i}/{k}": nnxp.to_numpy(v)
        for i, p in enumerate(net.parameters())
        for k, v in p.items()
    }


def _write(path, compressed=False, **arrays):
    with open(path, "wb") as f:
        (np.savez_compressed if compressed else np.savez)(f, **arrays)
    return path


def _peak_bytes(call):
    tracemalloc.start()
    try:
        call()
    except ValueError as exc:
        error = exc
    else:
        error = None
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, error


# ---------------------------------------------------------------- 20. hostile files
def test_a_declared_architecture_larger_than_the_stored_arrays_allocates_nothing(tmp_path):
    net = _net()
    huge = [dict(c) for c in _meta_layers(net)]
    huge[0]["n_inputs"], huge[0]["n_outputs"] = 6000, 6000  # 36M weights declared
    huge[1]["n_inputs"] = 6000
    path = _write(tmp_path / "huge.npz", __nnxp__=_meta(net, layers=huge), **_arrays(net))
    peak, error = _peak_bytes(lambda: nnxp.load(path))
    assert error is not None and "huge.npz" in str(error)
    assert peak < 20e6  # 6000 x 6000 float32 would be 144 MB


def _meta_layers(net):
    return [layer.get_config() for layer in net.layers]


def test_a_compressed_bomb_is_refused_before_it_is_inflated(tmp_path):
    net = _net()
    arrays = _arrays(net)
    arrays["layers/0/W"] = np.zeros((4000, 3000), dtype=np.float32)  # 48 MB of zeros
    path = _write(tmp_path / "bomb.npz", compressed=True, __nnxp__=_meta(net), **arrays)
    assert path.stat().st_size < 1e6
    peak, error = _peak_bytes(lambda: nnxp.load(path))
    assert error is not None and "bomb.npz" in str(error)
    assert peak < 20e6


def _optimizer_meta(net, opt, **changes):
    saved = {"config": opt.get_config(), "steps": opt.steps}
    saved.update(changes)
    return saved


MALFORMED = {
    "layers not a list": lambda net: {"__nnxp__": _meta(net, layers="Dense")},
    "a layer not a dict": lambda net: {"__nnxp__": _meta(net, layers=[3, 4])},
    "a layer without type": lambda net: {"__nnxp__": _meta(net, layers=[{"n_inputs": 3}])},
    "seed a string": lambda net: {"__nnxp__": _meta(net, seed="zero"), **_arrays(net)},
    "dtype a number": lambda net: {"__nnxp__": _meta(net, dtype=5), **_arrays(net)},
    "unknown layer type": lambda net: {
        "__nnxp__": _meta(net, layers=[{"type": "Conv9D"}]),
        **_arrays(net),
    },
    "unknown layer setting": lambda net: {
        "__nnxp__": _meta(net, layers=[{**_meta_layers(net)[0], "colour": "red"}]),
        **_arrays(net),
    },
    "extra top-level key": lambda net: {"__nnxp__": _meta(net, extra=1), **_arrays(net)},
    "description a list": lambda net: {
        "__nnxp__": np.frombuffer(b"[1, 2]", dtype=np.uint8),
        **_arrays(net),
    },
    "complex weights": lambda net: {
        "__nnxp__": _meta(net),
        **{k: v.astype(np.complex64) for k, v in _arrays(net).items()},
    },
    "string weights": lambda net: {
        "__nnxp__": _meta(net),
        **{k: np.full(v.shape, "x") for k, v in _arrays(net).items()},
    },
    "member for a layer that is not there": lambda net: {
        "__nnxp__": _meta(net),
        **_arrays(net),
        "layers/7/W": np.ones((2, 2), np.float32),
    },
    "optimizer steps a string": lambda net: {
        "__nnxp__": _meta(net, optimizer=_optimizer_meta(net, nnxp.Adam(), steps="many")),
        **_arrays(net),
    },
    "optimizer config a list": lambda net: {
        "__nnxp__": _meta(net, optimizer={"config": [1], "steps": 1}),
        **_arrays(net),
    },
    "optimizer state of the wrong shape": lambda net: {
        "__nnxp__": _meta(net, optimizer=_optimizer_meta(net, nnxp.Adam(), steps=1)),
        **_arrays(net),
        "optimizer/0/W/exp_avg": np.ones((2, 2), np.float32),
    },
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_every_malformed_description_is_a_value_error_naming_the_file(tmp_path, case):
    net = _net()
    path = _write(tmp_path / "bad.npz", **MALFORMED[case](net))
    with pytest.raises(ValueError, match="bad.npz") as info:
        nnxp.load(path, optimizer="optimizer" in case)
    assert type(info.value) is ValueError


# ---------------------------------------------------------------- 21. permissions, symlinks
def test_save_keeps_permission_bits_and_new_files_follow_the_umask(tmp_path):
    net = _net()
    path = tmp_path / "m.npz"
    net.save(path)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    os.chmod(path, 0o640)
    net.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_save_writes_through_a_symlink_and_keeps_it(tmp_path):
    first, second = _net(seed=0), _net(seed=1)
    target = tmp_path / "models" / "real.npz"
    target.parent.mkdir()
    first.save(target)
    link = tmp_path / "current.npz"
    link.symlink_to(target)
    second.save(link)
    assert link.is_symlink() and link.resolve() == target.resolve()
    loaded = nnxp.load(target)
    np.testing.assert_array_equal(host(loaded.layers[0].W), host(second.layers[0].W))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current.npz", "models"]
    assert [p.name for p in target.parent.iterdir()] == ["real.npz"]


# ---------------------------------------------------------------- 22. no thrown-away draws
class _Probe(nnxp.Dense):
    """A Dense that records whether its build was handed a host generator."""

    seen: list = []

    def build(self, ctx):
        _Probe.seen.append(ctx.host_rng is not None)
        super().build(ctx)


def test_rebuilding_from_weights_draws_no_random_initialisation(backend, tmp_path):
    nnxp.register(_Probe)
    net = nnxp.Sequential([_Probe(3, 4, "softmax")], dtype="float32")
    assert _Probe.seen[-1] is True  # a fresh network draws its initial weights
    _Probe.seen.clear()
    twin = net.clone()
    nnxp.Sequential.from_config(net.get_config(), net.parameters())
    nnxp.load(net.save(tmp_path / "p.npz"))
    assert _Probe.seen == [False, False, False]
    np.testing.assert_array_equal(host(twin.layers[0].W), host(net.layers[0].W))


# ---------------------------------------------------------------- 1. load shares nothing
def test_loaded_networks_share_no_memory_with_each_other(backend, tmp_path):
    path = _net().save(tmp_path / "m.npz")
    a, b = nnxp.load(path), nnxp.load(path)
    X = nnxp.asarray(np.ones((4, 3)), dtype="float32")
    T = nnxp.asarray(np.eye(4)[[0, 1, 2, 3]], dtype="float32")
    before = host(b.layers[0].W).copy()
    a.fit(X, T, loss="cross_entropy", optimizer=nnxp.SGD(1.0), epochs=1, progress=False)
    np.testing.assert_array_equal(host(b.layers[0].W), before)


def test_a_zip_member_that_is_not_an_array_is_refused(tmp_path):
    net = _net()
    path = _write(tmp_path / "odd.npz", __nnxp__=_meta(net), **_arrays(net))
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("notes.txt", "hello")
    with pytest.raises(ValueError, match="odd.npz"):
        nnxp.load(path)


# ---------------------------------------------------------------- 20. exact architecture
def _examples():
    """One instance of every built-in registered layer (parameters or not)."""
    L = nnxp.layers
    return {
        "Activation": lambda: L.Activation("tanh"),
        "Dense": lambda: nnxp.Dense(3, 4, "relu"),
        "Dropout": lambda: L.Dropout(0.5),
        "MultiHeadAttention": lambda: L.MultiHeadAttention(6, 2),
        "AdditiveAttentionPooling": lambda: L.AdditiveAttentionPooling(4, units=3),
        "Embedding": lambda: L.Embedding(7, 3),
        "PositionEmbedding": lambda: L.PositionEmbedding(9, 4),
        "LayerNormalization": lambda: L.LayerNormalization(5),
        "SimpleRNN": lambda: L.SimpleRNN(3, 4),
        "GRU": lambda: L.GRU(3, 4),
        "LSTM": lambda: L.LSTM(3, 4, return_sequences=True),
        "GlobalAveragePooling1D": lambda: L.GlobalAveragePooling1D(),
        "GlobalMaxPooling1D": lambda: L.GlobalMaxPooling1D(),
        "Flatten": lambda: L.Flatten(),
        "Reshape": lambda: L.Reshape((2, 3)),
        "Residual": lambda: L.Residual([L.LayerNormalization(4), nnxp.Dense(4, 4)]),
        "Bidirectional": lambda: L.Bidirectional(L.GRU(3, 2)),
    }


def _built(layer):
    from nnxp.layers.core import BuildContext
    from nnxp.random import Generator

    backend = nnxp.get_backend()
    rng = np.random.default_rng(0)
    layer.build(BuildContext(backend, backend.dtype("float32"), rng, Generator(backend, 0)))
    return layer


def test_parameter_shapes_are_what_build_creates_for_every_registered_layer(backend):
    examples = _examples()
    builtin = {
        name for name, cls in nnxp.layers.LAYERS.items() if cls.__module__.startswith("nnxp.")
    }
    assert builtin <= set(examples), f"add an example of {sorted(builtin - set(examples))}"
    for name in sorted(builtin):
        declared = examples[name]().parameter_shapes()
        layer = _built(examples[name]())
        built = {k: tuple(v.shape) for k, v in layer.params.items()}
        assert declared == built, name
    assert nnxp.Dense(3, 2, use_bias=False).parameter_shapes() == {"W": (2, 3)}


HOSTILE = {
    # declared settings each within the fallback's bound (no integer above the stored
    # element count), but building them would allocate hundreds of MB
    "lstm": (lambda: nnxp.layers.LSTM(50, 50), {"n_inputs": 5000, "units": 5000}),
    "embedding": (lambda: nnxp.layers.Embedding(100, 100), {"n_tokens": 9000, "dim": 9000}),
    "attention": (lambda: nnxp.layers.MultiHeadAttention(64, 2), {"dim": 8000}),
    "lstm_huge_units": (lambda: nnxp.layers.LSTM(2, 3), {"units": 10**6}),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_declared_layer_larger_than_its_arrays_is_refused_before_allocating(tmp_path, case):
    make, settings = HOSTILE[case]
    net = nnxp.Sequential([make()], seed=0)
    config = net.layers[0].get_config()
    config.update(settings)
    path = _write(tmp_path / f"{case}.npz", __nnxp__=_meta(net, layers=[config]), **_arrays(net))
    peak, error = _peak_bytes(lambda: nnxp.load(path))
    assert error is not None and f"{case}.npz" in str(error)
    assert "declares parameters" in str(error)
    assert peak < 20e6


def test_a_wrapped_layer_is_checked_part_by_part(tmp_path):
    L = nnxp.layers
    net = nnxp.Sequential([L.Bidirectional(L.LSTM(4, 3))], seed=0)
    config = net.layers[0].get_config()
    config["layer"]["units"] = 3000
    path = _write(tmp_path / "bi.npz", __nnxp__=_meta(net, layers=[config]), **_arrays(net))
    with pytest.raises(ValueError, match=r"bi\.npz.*W_ih: declared \(12000, 4\), stored \(12, 4\)"):
        nnxp.load(path)
    good = _write(tmp_path / "ok.npz", __nnxp__=_meta(net), **_arrays(net))
    loaded = nnxp.load(good)
    for a, b in zip(loaded.parameters(), net.parameters()):
        assert {k: host(v).tolist() for k, v in a.items()} == {
            k: host(v).tolist() for k, v in b.items()
        }


@nnxp.register(name="F2ScaleNoShapes")
class _ScaleNoShapes(nnxp.Layer):
    """A custom layer with a parameter and no parameter_shapes: load falls back."""

    def __init__(self, n):
        super().__init__()
        self.n = n

    def build(self, ctx):
        super().build(ctx)
        self.params = {"s": nnxp.initializers.draw(nnxp.initializers.get("ones"), (self.n,), ctx)}

    def forward(self, X, *, training=False):
        return X * self.params["s"]


@nnxp.register(name="F2DenseWithScale")
class _DenseWithScale(nnxp.Dense):
    """A Dense subclass whose build adds a parameter (its inherited parameter_shapes is not
    trusted)."""

    def build(self, ctx):
        super().build(ctx)
        self.params["s"] = nnxp.initializers.draw(
            nnxp.initializers.get("ones"), (self.n_outputs,), ctx
        )


def test_custom_layers_without_parameter_shapes_still_load(tmp_path):
    net = nnxp.Sequential([_ScaleNoShapes(3), _DenseWithScale(3, 2)], seed=0)
    loaded = nnxp.load(net.save(tmp_path / "custom.npz"))
    assert [sorted(p) for p in loaded.parameters()] == [["s"], ["W", "b", "s"]]
