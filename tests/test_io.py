"""Save/load: round trips across backends, atomic writes, clear errors for bad files."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from helpers import host, normal

import nnxp
from nnxp import io


def _trained(backend_name=None, seed=0):
    net = nnxp.Sequential(
        [
            nnxp.Dense(3, 5, {"name": "leaky_relu", "alpha": 0.2}),
            nnxp.Dropout(0.25, (None, 1)),
            nnxp.Dense(5, 4, "softmax"),
        ],
        seed=seed,
    )
    rng = np.random.default_rng(seed)
    X = nnxp.asarray(rng.standard_normal((20, 3)), dtype="float32")
    T = nnxp.asarray(np.eye(4)[rng.integers(0, 4, 20)], dtype="float32")
    opt = nnxp.Adam(0.01)
    net.fit(X, T, loss="cross_entropy", optimizer=opt, epochs=2, batch_size=8, progress=False)
    return net, opt, X, T


def _same_parameters(a, b):
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert sorted(pa) == sorted(pb)
        for key in pa:
            np.testing.assert_array_equal(host(pa[key]), host(pb[key]))
            assert host(pa[key]).dtype == host(pb[key]).dtype


def test_round_trip_is_bit_exact_onto_every_backend(backend, tmp_path):
    net, opt, X, _ = _trained()
    path = net.save(tmp_path / "model.npz", optimizer=opt)
    for name in nnxp.available_backends():
        loaded, loaded_opt = nnxp.load(path, backend=name, optimizer=True)
        assert loaded.backend.name == name
        assert [layer.get_config() for layer in loaded.layers] == [
            layer.get_config() for layer in net.layers
        ]
        _same_parameters(net, loaded)
        assert loaded_opt.get_config() == opt.get_config() and loaded_opt.steps == opt.steps
        for a, b in zip(opt.state, loaded_opt.state):
            for key in a:
                for slot in a[key]:
                    np.testing.assert_array_equal(host(a[key][slot]), host(b[key][slot]))


def test_train_on_one_backend_load_on_another_and_back(backend, tmp_path):
    """Saved from the backend under test, loaded on numpy, saved again, loaded back."""
    net, opt, X, T = _trained()
    net.to_backend(backend.name, optimizer=opt)
    X, T = nnxp.asarray(X), nnxp.asarray(T)
    net.fit(X, T, loss="cross_entropy", optimizer=opt, epochs=1, progress=False)
    net.save(tmp_path / "a.npz", optimizer=opt)
    on_numpy = nnxp.load(tmp_path / "a.npz", backend="numpy")
    on_numpy.save(tmp_path / "b.npz")
    back = nnxp.load(tmp_path / "b.npz")
    assert back.backend.name == backend.name
    _same_parameters(net, back)
    np.testing.assert_array_equal(host(back.predict(X)), host(net.predict(X)))


def test_loaded_optimizer_resumes_exactly(tmp_path):
    """Training on, or save + load + training on: the same weights (the dropout generator
    is reseeded in both, since its state is not part of the file)."""
    net, opt, X, T = _trained()
    net.save(tmp_path / "m.npz", optimizer=opt)
    resumed, resumed_opt = nnxp.load(tmp_path / "m.npz", optimizer=True)
    for n, o in ((net, opt), (resumed, resumed_opt)):
        n.fit(X, T, loss="cross_entropy", optimizer=o, epochs=1, seed=5, progress=False)
    _same_parameters(net, resumed)


def test_a_failed_write_leaves_the_previous_file_byte_identical(tmp_path, monkeypatch):
    net, _, _, _ = _trained()
    path = tmp_path / "model.npz"
    net.save(path)
    before = path.read_bytes()
    other, _, _, _ = _trained(seed=1)

    def fail_halfway(file, **arrays):
        file.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(io.np, "savez", fail_halfway)
    with pytest.raises(OSError, match="disk full"):
        other.save(path)
    monkeypatch.undo()

    def no_rename(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(io.os, "replace", no_rename)
    with pytest.raises(OSError, match="rename failed"):
        other.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # no temporary left behind


def _write_npz(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _meta(**changes):
    net, _, _, _ = _trained()
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
    return net, np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)


def test_bad_files_raise_value_errors_that_name_the_file(tmp_path):
    net, _, _, _ = _trained()
    good = tmp_path / "good.npz"
    net.save(good)
    raw = good.read_bytes()
    cases = {}
    (tmp_path / "truncated.npz").write_bytes(raw[: len(raw) // 2])
    cases["truncated.npz"] = "not a readable nnxp model file"
    corrupted = bytearray(raw)
    corrupted[len(raw) // 3 : len(raw) // 3 + 64] = b"\x00" * 64
    (tmp_path / "corrupted.npz").write_bytes(bytes(corrupted))
    cases["corrupted.npz"] = "not a readable nnxp model file|does not match|corrupted"
    _write_npz(tmp_path / "foreign.npz", weights=np.ones(3))
    cases["foreign.npz"] = "without an nnxp description"
    _, newer = _meta(format_version=99)
    _write_npz(tmp_path / "newer.npz", __nnxp__=newer)
    cases["newer.npz"] = "format 99 .* this nnxp reads format 1 and older: upgrade nnxp"
    _, meta = _meta()
    _write_npz(tmp_path / "missing.npz", __nnxp__=meta)
    cases["missing.npz"] = "does not match its arrays"
    _write_npz(tmp_path / "garbage.npz", __nnxp__=np.frombuffer(b"{not json", dtype=np.uint8))
    cases["garbage.npz"] = "description is corrupted"
    (tmp_path / "text.npz").write_text("hello")
    cases["text.npz"] = "not a readable nnxp model file"
    for name, message in cases.items():
        with pytest.raises(ValueError, match=message) as info:
            nnxp.load(tmp_path / name)
        assert name in str(info.value)
    with pytest.raises(FileNotFoundError):
        nnxp.load(tmp_path / "absent.npz")


def test_files_hold_no_pickle(tmp_path):
    net, opt, _, _ = _trained()
    path = net.save(tmp_path / "m.npz", optimizer=opt)
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            with z.open(name) as member:
                header = member.read(128)
            assert b"'descr': '|O'" not in header and b"'descr': 'O'" not in header
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(npz["__nnxp__"].tobytes())
    assert meta["layers"][0]["activation"] == {"name": "leaky_relu", "alpha": 0.2}
    assert meta["optimizer"]["config"]["type"] == "Adam"


def test_asking_for_an_optimizer_that_was_not_saved(tmp_path):
    net, _, _, _ = _trained()
    net.save(tmp_path / "m.npz")
    with pytest.raises(ValueError, match="no optimizer state was saved"):
        nnxp.load(tmp_path / "m.npz", optimizer=True)


def test_to_backend_moves_parameters_and_state(backend, rng):
    net, opt, X, T = _trained()
    before = [{k: host(v) for k, v in p.items()} for p in net.parameters()]
    net.to_backend(backend.name, optimizer=opt)
    assert net.backend.name == backend.name
    for p, b in zip(net.parameters(), before):
        for k in p:
            assert nnxp.backend.array_library(p[k]) == backend.name
            np.testing.assert_array_equal(host(p[k]), b[k])
    assert nnxp.backend.array_library(opt.state[0]["W"]["exp_avg"]) == backend.name
    X = normal(rng, (4, 3), dtype="float32")
    assert tuple(net.predict(X).shape) == (4, 4)
