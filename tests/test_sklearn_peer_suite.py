"""scikit-learn's own MLP test module, run in place from the installed package, passes with
nnxp's estimators swapped in (``tests/sklearn_peer/nnxp_swap.py`` does the swap).

It runs in a subprocess so that the swap never leaks into the rest of this session.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

sklearn = pytest.importorskip("sklearn")

ROOT = Path(__file__).resolve().parent.parent
# sklearn/neural_network/tests/test_mlp.py (scikit-learn 1.9) has 59 tests: none is deselected
# for touching scikit-learn's internals (nnxp_swap.DESELECTED is empty), and all 59 run here
EXPECTED_PASSED = 59
TIMEOUT_S = 900  # about 40-60 s of CPU; the bound is for a machine shared and loaded


def run_peer_suite(backend: str = "numpy") -> tuple[subprocess.CompletedProcess, dict]:
    """Run the peer suite; return the process and the counts of its summary line."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--pyargs",
        "sklearn.neural_network.tests.test_mlp",
        "-p",
        "tests.sklearn_peer.nnxp_swap",
        "-p",
        "no:cacheprovider",
        "-q",
        "-o",
        "addopts=",
    ]
    env = dict(os.environ, NNXP_PEER_BACKEND=backend, OMP_NUM_THREADS="1")
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    tail = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (\w+)", tail)}
    return done, counts


@pytest.mark.slow
def test_scikit_learn_mlp_tests_pass_on_nnxp_estimators():
    done, counts = run_peer_suite("numpy")
    report = done.stdout[-4000:] + done.stderr[-2000:]
    assert "MLPClassifier is nnxp.sklearn." in done.stdout, report  # the swap really happened
    assert counts.get("failed", 0) == 0 and counts.get("errors", 0) == 0, report
    assert counts.get("error", 0) == 0, report
    assert counts.get("passed") == EXPECTED_PASSED, report
    assert "deselected" not in counts, report
    assert done.returncode == 0, report
