"""nox sessions: the CPU/GPU test matrix, lint, the examples and the benchmarks.

    nox -t cpu     # every CPU session: tests per CPU backend, lint, typecheck, examples
    nox -s "tests(backend='cupy')"   # on a machine with a CUDA GPU
    nox -s bench

Sessions use plain venv + pip: pip finds the CPU build of torch that these machines keep
on disk (``torch==2.13.0``); nothing in the CPU sessions downloads a CUDA wheel.
"""

from __future__ import annotations

import shutil

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests", "lint", "typecheck", "examples"]

TORCH_CPU = "torch==2.13.0"
EXAMPLES = {
    "train_digits.py": ["--epochs", "3", "--out", "{tmp}"],
    "xor.py": ["--epochs", "50"],
    "three_class_softmax.py": ["--epochs", "5"],
    "nan_free.py": ["--epochs", "200"],
    "batch_vs_instance.py": ["--rows", "50", "--features", "100", "--repeats", "2"],
    "masked_actions.py": ["--epochs", "3"],
    "sequence_tagging.py": ["--epochs", "3"],
}


def _gpu_answers() -> bool:
    return shutil.which("nvidia-smi") is not None


@nox.session(tags=["cpu"])
@nox.parametrize("backend", ["numpy", "array_api_strict", "torch"])
def tests(session: nox.Session, backend: str) -> None:
    """The test suite on one CPU backend."""
    session.install("-e", ".[test,examples]")
    if backend == "torch":
        session.install(TORCH_CPU)
    session.run("pytest", *session.posargs, env={"NNXP_TEST_BACKENDS": backend})


@nox.session(name="tests_gpu", tags=["gpu"])
def tests_gpu(session: nox.Session) -> None:
    """The test suite on cupy (skips itself where no CUDA GPU answers)."""
    if not _gpu_answers():
        session.skip("no CUDA GPU answers here (nvidia-smi not found): cupy tests need one")
    session.install("-e", ".[test,examples,cuda12]")
    session.run("pytest", *session.posargs, env={"NNXP_TEST_BACKENDS": "cupy"})


@nox.session(tags=["cpu"])
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(tags=["cpu"])
def typecheck(session: nox.Session) -> None:
    """mypy on the nnxp package (which ships py.typed)."""
    session.install("-e", ".", "mypy")
    session.run("mypy")


@nox.session(tags=["cpu"])
def examples(session: nox.Session) -> None:
    """Every example with tiny settings, on numpy and array_api_strict."""
    session.install("-e", ".[test,examples]")
    tmp = session.create_tmp()
    for backend in ("numpy", "array_api_strict"):
        for script, args in EXAMPLES.items():
            args = [a.replace("{tmp}", tmp) for a in args]
            session.run("python", f"examples/{script}", "--backend", backend, *args)


@nox.session
def bench(session: nox.Session) -> None:
    """The CPU benchmark suite (writes BENCHMARKS.md)."""
    session.install("-e", ".[examples]", TORCH_CPU, "threadpoolctl")
    session.run("python", "benchmarks/mlp.py", *session.posargs)
