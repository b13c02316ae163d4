"""Every example runs with tiny settings on the backends under test and says what it should.

The backends: those named in ``NNXP_TEST_BACKENDS`` (``=jax`` runs every example with
``--backend jax``), else numpy and array_api_strict (torch's examples are left out of the
default run for time; name it to run them). One that cannot run here is skipped with the
reason, as in tests/conftest.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nnxp.backend import BACKEND_NAMES, backend_status

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "train_digits.py": (["--epochs", "3"], "test accuracy 0.9"),
    "xor.py": (["--epochs", "300"], "accuracy 100%"),
    "three_class_softmax.py": (["--epochs", "5"], "largest |row sum - 1| = "),
    "nan_free.py": (["--epochs", "2000"], "every loss finite: True"),
    "batch_vs_instance.py": (["--rows", "20", "--features", "50", "--repeats", "1"], "ratio"),
    "masked_actions.py": (["--epochs", "2", "--samples", "500"], "forbidden action: 0.0\n"),
    "sequence_tagging.py": (["--epochs", "2", "--sequences", "100"], "mean accuracy over 12"),
    "custom_layer.py": (["--epochs", "5", "--samples", "256"], "gradcheck max relative error"),
    "attention_reverse.py": (["--epochs", "2", "--sequences", "200"], "per-token test accuracy"),
    "sequence_classification.py": (["--epochs", "2", "--sequences", "200"], "test accuracy"),
    "dask_full_batch.py": (
        ["--in-process", "--maxiter", "10", "--chunk-rows", "700"],
        "test accuracy 0.9",
    ),
}


def _backends() -> list:
    names = os.environ.get("NNXP_TEST_BACKENDS")
    chosen = [n.strip() for n in names.split(",") if n.strip()] if names else []
    chosen = [n for n in chosen if n in BACKEND_NAMES] or ["numpy", "array_api_strict"]
    params = []
    for name in chosen:
        reason = backend_status(name)
        marks = [pytest.mark.skip(reason=f"backend {name} unavailable: {reason}")] if reason else []
        params.append(pytest.param(name, marks=marks, id=name))
    return params


BACKENDS = _backends()


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("script", list(CASES))
def test_example_runs(script, backend_name, tmp_path):
    args, expected = CASES[script]
    if script == "train_digits.py":
        args = [*args, "--out", str(tmp_path)]
    if script == "attention_reverse.py":
        args = [*args, "--png", str(tmp_path / "attention.png")]
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), "--backend", backend_name, *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout, result.stdout
    if script == "train_digits.py":
        assert (tmp_path / "digits_loss.png").stat().st_size > 1000
        assert (tmp_path / "digits_confusion.png").stat().st_size > 1000
    if script == "attention_reverse.py":
        assert (tmp_path / "attention.png").stat().st_size > 1000


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_distributed_example_trains_on_two_ranks(backend_name, tmp_path):
    """The MPI example under ``mpiexec -n 2`` (one epoch; tests/test_distributed.py runs
    it longer on numpy and checks its checkpoint)."""
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("mpiexec not found: the MPI example cannot run here")
    pytest.importorskip("mpi4py")
    result = subprocess.run(
        [
            mpiexec,
            *("-n", "2", sys.executable, str(ROOT / "examples" / "distributed_training.py")),
            *("--backend", backend_name, "--epochs", "1"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"2 ranks, backend {backend_name}" in result.stdout, result.stdout
    assert result.stdout.count("epoch   1/1") == 1, result.stdout  # only rank 0 prints
    accuracy = float(result.stdout.split("test accuracy ")[-1].split()[0])
    assert accuracy > 0.7, result.stdout


def test_digits_example_with_defaults_reaches_95_percent(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "train_digits.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    accuracy = float(result.stdout.split("test accuracy ")[-1].split()[0])
    assert accuracy >= 0.95


def test_nan_free_example_fits_all_seven_samples_with_the_full_10000_epochs():
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "nan_free.py")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "10000 epochs, every loss finite: True" in result.stdout
    assert "all 7 samples fitted: True" in result.stdout
