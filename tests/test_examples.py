"""Every example runs with tiny settings on numpy and array_api_strict, and says what it should."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
}


@pytest.mark.parametrize("backend_name", ["numpy", "array_api_strict"])
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
