"""nnxp.distributed: real MPI processes (``mpiexec -n 2``/``-n 4``) run tests/mpi_scripts/*.py.

Each script writes a JSON report; the assertions are here. Every run has a timeout and its
whole process group is killed when it runs over, so no rank is left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import nnxp

MPI = pytest.importorskip("mpi4py.MPI", reason="nnxp.distributed needs mpi4py: nnxp[mpi]")
import nnxp.distributed  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "tests" / "mpi_scripts"
MPIEXEC = shutil.which("mpiexec") or shutil.which(str(Path(sys.executable).parent / "mpiexec"))
_no_mpiexec = pytest.mark.skipif(MPIEXEC is None, reason="mpiexec is not on PATH (nnxp[mpi])")


def needs_mpiexec(test):
    """Starts real processes: skipped without mpiexec, marked slow (still run in CI)."""
    return pytest.mark.slow(_no_mpiexec(test))


def requested(backend_name: str) -> None:
    """Skip unless ``NNXP_TEST_BACKENDS`` (if set) names the backend: each nox session runs
    the multi-process tests of its own backend once."""
    names = os.environ.get("NNXP_TEST_BACKENDS")
    if names and backend_name not in [n.strip() for n in names.split(",")]:
        pytest.skip(f"NNXP_TEST_BACKENDS={names} leaves out {backend_name}")


def mpirun(n: int, script: str, *args: str, timeout: float = 60.0) -> tuple[int, str, float]:
    """Run ``mpiexec -n n python script args``; kill its process group on timeout."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [MPIEXEC, "-n", str(n), sys.executable, str(SCRIPTS / script), *args]
    start = time.monotonic()
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=SCRIPTS,
        env=env,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"mpiexec -n {n} {script} ran over {timeout} s (killed):\n{output[-3000:]}")
    return proc.returncode, output, time.monotonic() - start


def run_report(n: int, script: str, tmp_path: Path, *args: str) -> dict:
    requested(args[0])
    out = tmp_path / f"{script}.{n}.json"
    code, output, _ = mpirun(n, script, args[0], str(out), *args[1:])
    assert code == 0, output[-4000:]
    return json.loads(out.read_text())


@needs_mpiexec
@pytest.mark.parametrize("backend_name", ["numpy", "torch"])
def test_two_ranks_equal_one_process(backend_name, tmp_path):
    if backend_name == "torch":
        pytest.importorskip("torch")
    report = run_report(2, "equality.py", tmp_path, backend_name)
    assert report["world"] == 2 and report["steps"] == 21  # 3 epochs of ceil(203 / 32) steps
    assert report["callback_stop"] == [[7, [0], 0], [7, [0], 0]]  # True on rank 1 stops both
    # the same weights as one process with comm of size 1, and as nnxp's own fit, in float64
    assert report["vs_comm_self"] <= 1e-12
    assert report["vs_fit_shuffle_False"] <= 1e-12
    if backend_name != "torch" or report["training_has_host_permutation"]:
        assert report["vs_fit_shuffle_True"] <= 1e-12
    np.testing.assert_allclose(report["history"]["loss"], report["loss_self"], rtol=1e-12)
    assert report["masked_vs_fit"] <= 1e-12  # masked rows: the global count is allreduced
    # the allreduced validation sums give the loss of the whole validation set
    np.testing.assert_allclose(report["val_loss"], report["val_loss_single"], rtol=1e-12)


@needs_mpiexec
def test_padded_sequences_on_two_ranks_equal_fit(tmp_path):
    """Embedding + LSTM tagging with padded sequences: an explicit sequence_mask (and a
    4-element validation_data) and Embedding(mask_zero=True) (and a dict validation_data)
    give net.fit's weights and history, the real steps counted over the global batch."""
    report = run_report(2, "sequences.py", tmp_path, "numpy")
    assert report["world"] == 2
    for key in ("explicit", "derived"):
        assert report[f"{key}_vs_fit"] <= 1e-12
        history, expected = report[f"{key}_history"], report[f"{key}_history_fit"]
        assert sorted(history) == sorted(expected) == ["loss", "val_accuracy", "val_loss"]
        for name in expected:
            np.testing.assert_allclose(history[name], expected[name], rtol=1e-12)
    assert report["unmasked_vs_masked"] > 1e-6


@needs_mpiexec
def test_four_ranks_equal_one_process(tmp_path):
    report = run_report(4, "equality.py", tmp_path, "numpy")
    assert report["world"] == 4
    assert report["vs_comm_self"] <= 1e-12
    assert report["vs_fit_shuffle_True"] <= 1e-12


@needs_mpiexec
def test_interrupted_and_resumed_run_ends_with_the_same_weights(tmp_path):
    checkpoint = tmp_path / "run.npz"
    report = run_report(2, "resume.py", tmp_path, "numpy", str(checkpoint))
    # the injected fault on rank 1 stopped every rank, each with a clear error
    assert report["raised"][1] == "RuntimeError: injected fault"
    assert report["raised"][0].startswith("DistributedError:")
    assert "rank 1 failed (RuntimeError: injected fault)" in report["raised"][0]
    assert report["interrupted_differs"]  # the fault really cut the run short
    assert report["weights_equal"] == [True, True]  # bit for bit, on both ranks
    assert report["history_resumed"] == report["history_full"]
    assert report["steps"] == [28, 28]
    info = nnxp.distributed.checkpoint_info(checkpoint)
    assert (info["step"], info["world_size"]) == (25, 2)  # the resumed run went on writing
    net, opt = nnxp.load(checkpoint, optimizer=True)
    assert opt.steps == 25 and len(net.layers) == 4


def run_fault(mode: str, tmp_path: Path, timeout: float) -> tuple[str, Path]:
    """Run fault.py on 2 ranks with one rank that dies/hangs/is late (``mode``): the job must
    fail, in under 30 s (the watchdog's 3 s, not the faulty rank's 120 s sleep). Returns the
    output and the checkpoint path."""
    checkpoint = tmp_path / "run.npz"
    requested("numpy")
    code, output, seconds = mpirun(2, "fault.py", "numpy", mode, str(checkpoint), timeout=timeout)
    assert code != 0, output
    assert seconds < 30
    return output, checkpoint


@needs_mpiexec
def test_a_dead_rank_ends_the_job_and_the_last_checkpoint_is_intact(tmp_path):
    output, checkpoint = run_fault("die", tmp_path, timeout=30)
    assert "finished without a fault" not in output
    info = nnxp.distributed.checkpoint_info(checkpoint)
    assert info["step"] == 6  # rank 1 died in step 7; checkpoints every 3 steps
    net, opt = nnxp.load(checkpoint, optimizer=True)
    assert opt.steps == 6
    assert not list(tmp_path.glob(".run.npz.*"))  # no temporary file left behind


@needs_mpiexec
def test_a_hung_rank_is_aborted_after_the_timeout(tmp_path):
    output, checkpoint = run_fault("hang", tmp_path, timeout=40)
    assert "waited more than 3.0 s" in output
    assert nnxp.distributed.checkpoint_info(checkpoint)["step"] == 6


@needs_mpiexec
def test_a_rank_that_never_arrives_is_aborted_after_the_timeout(tmp_path):
    output, checkpoint = run_fault("late", tmp_path, timeout=40)
    assert "waited more than 3.0 s in comm.allgather" in output
    assert not checkpoint.exists()


@needs_mpiexec
def test_bad_input_is_refused_on_every_rank_before_training(tmp_path):
    report = run_report(2, "bad_input.py", tmp_path, "numpy")
    for rank, cases in enumerate(report["ranks"]):
        outcome = {name: (message, untouched) for name, message, untouched in cases}
        assert all(untouched for _, untouched in outcome.values())  # nothing trained
        features = outcome["features"][0]
        assert features.startswith("ValueError") and "expects input of shape" in features
        if rank == 0:
            assert "rank 1 refused its input" in features
        assert "same feature shape and dtype of X" in outcome["dtype"][0]
        assert "'float32'" in outcome["dtype"][0]
        assert "same batch_size; rank 0: 16, rank 1: 8" in outcome["batch_size"][0]
        assert "is empty" in outcome["empty"][0]
        assert outcome["comm"][0].startswith("TypeError: comm must be an MPI intracommunicator")


@needs_mpiexec
def test_the_example_trains_on_two_ranks(tmp_path):
    pytest.importorskip("sklearn")
    requested("numpy")
    example = ROOT / "examples" / "distributed_training.py"
    checkpoint = tmp_path / "digits.npz"
    code, output, _ = mpirun(2, str(example), "--epochs", "3", "--checkpoint", str(checkpoint))
    assert code == 0, output[-4000:]
    assert "2 ranks, backend numpy" in output
    assert "test accuracy 0.9" in output.splitlines()[-1], output[-2000:]
    assert output.count("epoch   1/3") == 1  # only rank 0 prints
    assert nnxp.distributed.checkpoint_info(checkpoint)["epoch"] == 2


# ---------------------------------------------------------------- in-process (comm of size 1)


def _data(backend, n=50):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 5))
    T = np.eye(3)[(X[:, 0] > 0).astype(int) + (X[:, 1] > 1).astype(int)]
    return nnxp.asarray(X, dtype="float64"), nnxp.asarray(T, dtype="float64")


def _net():
    return nnxp.Sequential(
        [nnxp.Dense(5, 8, "tanh"), nnxp.Dense(8, 3, "softmax")], seed=0, dtype="float64"
    )


@pytest.mark.parametrize("shuffle", [False, True])
def test_one_rank_matches_fit(backend, shuffle):
    X, T = _data(backend)
    options = dict(loss="cross_entropy", epochs=2, batch_size=16, progress=False, seed=3)
    options["shuffle"] = shuffle
    a, b = _net(), _net()
    history = nnxp.distributed.fit(a, X, T, comm=MPI.COMM_SELF, optimizer="sgd", **options)
    b.fit(X, T, optimizer="sgd", **options)
    for pa, pb in zip(a.parameters(), b.parameters()):
        for name in pa:
            np.testing.assert_allclose(
                nnxp.to_numpy(pa[name]), nnxp.to_numpy(pb[name]), rtol=1e-12, atol=1e-15
            )
    np.testing.assert_allclose(history.history["loss"], b.history.history["loss"], rtol=1e-12)
    assert history.steps == 8 and history.allreduce_seconds >= 0.0


@pytest.mark.parametrize("form", ["tuple", "dict"])
def test_one_rank_with_a_sequence_mask_matches_fit(backend, form):
    """Padded tagging sequences with ``sequence_mask=`` and validation_data in the
    4-element or dict form: the weights and history of ``net.fit``."""
    rng = np.random.default_rng(4)
    lengths = rng.integers(1, 6, 14)
    M = np.arange(5)[None, :] < lengths[:, None]
    tokens = np.where(M, rng.integers(1, 7, (14, 5)), 0)
    labels = np.where(M, tokens % 3, -1)
    X, T, S = nnxp.asarray(tokens), nnxp.asarray(labels), nnxp.asarray(M)
    val = (X[:6, ...], T[:6, ...], None, S[:6, ...])
    if form == "dict":
        val = dict(zip(("X", "T", "mask", "sequence_mask"), val))

    def network():
        layers = [nnxp.Embedding(7, 3), nnxp.LSTM(3, 4, return_sequences=True)]
        return nnxp.Sequential([*layers, nnxp.Dense(4, 3, "softmax")], seed=0, dtype="float64")

    options = dict(loss="cross_entropy", epochs=2, batch_size=4, progress=False, seed=3)
    a, b = network(), network()
    history = nnxp.distributed.fit(
        a, X, T, comm=MPI.COMM_SELF, sequence_mask=S, validation_data=val, **options
    )
    b.fit(X, T, sequence_mask=S, validation_data=val, **options)
    for pa, pb in zip(a.parameters(), b.parameters()):
        for name in pa:
            np.testing.assert_allclose(
                nnxp.to_numpy(pa[name]), nnxp.to_numpy(pb[name]), rtol=1e-12, atol=1e-15
            )
    assert sorted(history.history) == ["loss", "val_accuracy", "val_loss"]
    for key, values in b.history.history.items():
        np.testing.assert_allclose(history.history[key], values, rtol=1e-12)
    with pytest.raises(ValueError, match="sequence_mask must have shape"):
        nnxp.distributed.fit(network(), X, T, comm=MPI.COMM_SELF, sequence_mask=S[:, :3], **options)


def test_one_rank_early_stopping_matches_fit(backend):
    X, T = _data(backend)
    stopper = nnxp.EarlyStopping(monitor="loss", patience=1, min_delta=0.05)
    options = dict(loss="cross_entropy", epochs=30, batch_size=16, progress=False, seed=2)
    a, b = _net(), _net()
    history = nnxp.distributed.fit(a, X, T, comm=MPI.COMM_SELF, early_stopping=stopper, **options)
    b.fit(X, T, early_stopping=stopper, **options)
    assert history.stopped_epoch is not None and history.stopped_epoch < 29
    assert (history.stopped_epoch, history.epoch) == (b.history.stopped_epoch, b.history.epoch)
    for pa, pb in zip(a.parameters(), b.parameters()):  # the best epoch's weights, restored
        for name in pa:
            np.testing.assert_allclose(
                nnxp.to_numpy(pa[name]), nnxp.to_numpy(pb[name]), rtol=1e-12, atol=1e-15
            )


def _dropout_net(seed):
    layers = [nnxp.Dense(5, 8, "tanh"), nnxp.Dropout(0.3), nnxp.Dense(8, 3, "softmax")]
    return nnxp.Sequential(layers, seed=seed, dtype="float64")


def test_one_rank_interrupted_and_resumed_with_dropout_is_exact(backend, tmp_path):
    X, T = _data(backend, n=60)
    path = tmp_path / "c.npz"
    options = dict(loss="cross_entropy", epochs=3, batch_size=16, seed=4, progress=False)
    options.update(comm=MPI.COMM_SELF, checkpoint_every=3)
    full = _dropout_net(0)
    nnxp.distributed.fit(full, X, T, **options)
    cut = _dropout_net(0)
    step, calls = cut._loss_and_delta, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 8:
            raise RuntimeError("injected fault")
        return step(*args, **kwargs)

    cut._loss_and_delta = failing
    with pytest.raises(RuntimeError, match="injected fault"):
        nnxp.distributed.fit(cut, X, T, checkpoint=path, **options)
    assert nnxp.distributed.checkpoint_info(path)["step"] == 6
    resumed = _dropout_net(1)  # other initial weights: everything must come from the file
    history = nnxp.distributed.fit(resumed, X, T, resume=path, **options)
    for pa, pb in zip(full.parameters(), resumed.parameters()):
        for name in pa:
            np.testing.assert_array_equal(nnxp.to_numpy(pa[name]), nnxp.to_numpy(pb[name]))
    assert history.history == full.history.history
    # the masks really were random: a run with another seed ends elsewhere
    other = _dropout_net(0)
    nnxp.distributed.fit(other, X, T, **{**options, "seed": 5})
    assert not np.array_equal(nnxp.to_numpy(other.layers[0].W), nnxp.to_numpy(full.layers[0].W))


@pytest.mark.parametrize("comm", ["world", 0, object()])
def test_a_comm_that_is_not_a_communicator_is_a_type_error(comm):
    X, T = _data(None)
    with pytest.raises(TypeError, match="comm must be an MPI intracommunicator"):
        nnxp.distributed.fit(_net(), X, T, comm=comm, loss="cross_entropy", epochs=1)


@pytest.mark.parametrize(
    "option, message",
    [
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"checkpoint_every": 0}, "checkpoint_every must be an integer >= 1"),
        ({"timeout": -1.0}, "timeout must be a positive number"),
        ({"epochs": -1}, "epochs must be an integer >= 0"),
    ],
)
def test_bad_options_are_refused_before_training(option, message):
    X, T = _data(None)
    net = _net()
    before = nnxp.to_numpy(net.layers[0].W).copy()
    options = {"loss": "cross_entropy", "epochs": 1, "progress": False, **option}
    with pytest.raises(ValueError, match=message):
        nnxp.distributed.fit(net, X, T, comm=MPI.COMM_SELF, **options)
    np.testing.assert_array_equal(nnxp.to_numpy(net.layers[0].W), before)


def test_resume_refuses_a_checkpoint_of_another_run(tmp_path):
    X, T = _data(None)
    path = tmp_path / "c.npz"
    options = dict(loss="cross_entropy", epochs=1, batch_size=10, progress=False, seed=1)
    nnxp.distributed.fit(_net(), X, T, comm=MPI.COMM_SELF, checkpoint=path, **options)
    assert nnxp.distributed.checkpoint_info(path)["step"] == 5
    with pytest.raises(ValueError, match="batch_size=10, this fit has batch_size=20"):
        nnxp.distributed.fit(
            _net(), X, T, comm=MPI.COMM_SELF, resume=path, **{**options, "batch_size": 20}
        )
    with pytest.raises(ValueError, match="optimizer"):
        nnxp.distributed.fit(
            _net(), X, T, comm=MPI.COMM_SELF, resume=path, optimizer="sgd", **options
        )
    # without a seed the resumed run keeps the checkpoint's; a Loss object works as its name
    resumed = nnxp.distributed.fit(
        _net(),
        X,
        T,
        comm=MPI.COMM_SELF,
        resume=path,
        **{**options, "seed": None, "loss": nnxp.get_loss("cross_entropy")},
    )
    assert resumed.steps == 5 and resumed.epoch == [0]
    _net().save(tmp_path / "plain.npz")
    with pytest.raises(FileNotFoundError, match="plain.npz.state.npz does not exist"):
        nnxp.distributed.checkpoint_info(tmp_path / "plain.npz")
    (tmp_path / "plain.npz.state.npz").write_bytes(b"truncated")
    with pytest.raises(ValueError, match="not a readable nnxp.distributed checkpoint"):
        nnxp.distributed.checkpoint_info(tmp_path / "plain.npz.state.npz")
