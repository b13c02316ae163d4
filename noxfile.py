"""nox sessions: the CPU/GPU test matrix, lint, the examples and the benchmarks.

    nox -t cpu     # every CPU session: tests per CPU backend, lint, typecheck, examples
    nox -t gpu     # tests on cupy, on a machine with a CUDA GPU (skips itself elsewhere)
    nox -s bench

Sessions use plain venv + pip: pip finds the CPU build of torch that these machines keep
on disk (``torch==2.13.0``); nothing in the CPU sessions downloads a CUDA wheel.
"""

from __future__ import annotations

import shutil

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests", "sklearn_peer", "lint", "typecheck", "examples"]

TORCH_CPU = "torch==2.13.0"
EXAMPLES = {
    "train_digits.py": ["--epochs", "3", "--out", "{tmp}"],
    "xor.py": ["--epochs", "50"],
    "three_class_softmax.py": ["--epochs", "5"],
    "nan_free.py": ["--epochs", "200"],
    "batch_vs_instance.py": ["--rows", "50", "--features", "100", "--repeats", "2"],
    "masked_actions.py": ["--epochs", "3"],
    "sequence_tagging.py": ["--epochs", "3"],
    "custom_layer.py": ["--epochs", "5", "--samples", "256"],
    "sequence_classification.py": ["--epochs", "2", "--sequences", "200"],
    "attention_reverse.py": ["--epochs", "2", "--sequences", "200", "--png", "{tmp}/attn.png"],
    "dask_full_batch.py": ["--in-process", "--maxiter", "10"],
}
CPU_BACKENDS = ("numpy", "array_api_strict", "torch", "jax")


def _gpu_answers() -> bool:
    return shutil.which("nvidia-smi") is not None


@nox.session
@nox.parametrize(
    "backend",
    [
        nox.param("numpy", tags=["cpu"]),
        nox.param("array_api_strict", tags=["cpu"]),
        nox.param("torch", tags=["cpu"]),
        nox.param("jax", tags=["cpu"]),
        nox.param("cupy", tags=["gpu"]),
    ],
)
def tests(session: nox.Session, backend: str) -> None:
    """The test suite with the backend fixture narrowed to one backend."""
    if backend == "cupy" and not _gpu_answers():
        session.skip("no CUDA GPU answers here (nvidia-smi not found): the cupy tests need one")
    extras = "test,examples,cuda12" if backend == "cupy" else "test,examples"
    session.install("-e", f".[{extras}]")
    if backend != "cupy":  # torch is the tests' reference (autograd, torch.optim) everywhere
        session.install(TORCH_CPU)
    session.run("pytest", *session.posargs, env={"NNXP_TEST_BACKENDS": backend})


@nox.session
@nox.parametrize(
    "backend",
    [
        nox.param("numpy", tags=["cpu"]),
        nox.param("array_api_strict", tags=["cpu"]),
        nox.param("torch", tags=["cpu"]),
        nox.param("cupy", tags=["gpu"]),
    ],
)
def sklearn_peer(session: nox.Session, backend: str) -> None:
    """scikit-learn's own MLP test module, run in place from the installed package, with
    its MLPClassifier/MLPRegressor swapped for nnxp's (tests/sklearn_peer/nnxp_swap.py)."""
    if backend == "cupy" and not _gpu_answers():
        session.skip("no CUDA GPU answers here (nvidia-smi not found): the cupy run needs one")
    extras = "test,examples,cuda12" if backend == "cupy" else "test,examples"
    session.install("-e", f".[{extras}]")
    if backend == "torch":
        session.install(TORCH_CPU)
    session.run(
        "python",
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
        *session.posargs,
        env={"NNXP_PEER_BACKEND": backend, "OMP_NUM_THREADS": "1"},
    )


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
    """Every example with tiny settings on every CPU backend; the MPI one under mpiexec."""
    session.install("-e", ".[test,examples]", TORCH_CPU)
    tmp = session.create_tmp()
    for backend in CPU_BACKENDS:
        for script, args in EXAMPLES.items():
            args = [a.replace("{tmp}", tmp) for a in args]
            session.run("python", f"examples/{script}", "--backend", backend, *args)
        session.run(
            "mpiexec",
            "-n",
            "2",
            "python",
            "examples/distributed_training.py",
            "--backend",
            backend,
            "--epochs",
            "3",
        )


@nox.session
def bench(session: nox.Session) -> None:
    """The CPU benchmark suite (writes BENCHMARKS.md)."""
    session.install("-e", ".[test,examples]", TORCH_CPU, "threadpoolctl")
    session.run("python", "benchmarks/mlp.py", *session.posargs)
    for script in ("jax_step.py", "lstm.py", "embedding_grad.py", "onnx_predict.py"):
        session.run("python", f"benchmarks/{script}")
    session.run("python", "benchmarks/mpi_scaling.py")
    session.run("python", "benchmarks/dask_gradient.py")
