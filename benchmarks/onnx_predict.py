"""Inference throughput: onnxruntime on nnxp's ONNX export against ``Sequential.predict``.

    python benchmarks/onnx_predict.py                       # prints the table
    python benchmarks/onnx_predict.py --rounds 15 --write table.md

The float32 784-256-256-10 network (relu, softmax; nnxp's seed-0 weights) predicts 10,000 x
784 rows in one call: nnxp on the numpy backend, onnxruntime (CPUExecutionProvider, graph
optimizations on, ``intra_op_num_threads=1``, ``inter_op_num_threads=1``) on the model
``nnxp.onnx.export_onnx`` writes. BLAS is pinned to one thread. After a warm-up the two
alternate A B A B ... for ``--rounds`` rounds; rows/s are medians over rounds and the ratio
is the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import numpy as np  # noqa: E402

import nnxp  # noqa: E402
from nnxp.onnx import export_onnx  # noqa: E402

SIZES = [784, 256, 256, 10]
N_ROWS = 10_000


def make_network() -> nnxp.Sequential:
    with nnxp.use_backend("numpy"):
        layers = [nnxp.Dense(a, b, "relu") for a, b in zip(SIZES[:-2], SIZES[1:-1])]
        layers.append(nnxp.Dense(SIZES[-2], SIZES[-1], "softmax"))
        return nnxp.Sequential(layers, seed=0)


def make_session(net: nnxp.Sequential, directory: str):
    import onnxruntime as ort

    path = Path(directory) / "mlp.onnx"
    export_onnx(net, path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def timed(fn) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def run(rounds: int) -> dict:
    net = make_network()
    X = np.random.default_rng(0).standard_normal((N_ROWS, SIZES[0]), dtype=np.float32)
    with tempfile.TemporaryDirectory() as directory:
        session = make_session(net, directory)
        competitors = {
            "nnxp predict (numpy)": lambda: np.asarray(net.predict(X)),
            "onnxruntime (CPU)": lambda: session.run(["Y"], {"X": X})[0],
        }
        outputs = {name: fn() for name, fn in competitors.items()}  # warm-up
        times: dict[str, list[float]] = {name: [] for name in competitors}
        for _ in range(rounds):
            for name, fn in competitors.items():
                seconds, _ = timed(fn)
                times[name].append(seconds)
    nnxp_t, ort_t = (np.array(t) for t in times.values())
    max_diff = float(np.max(np.abs(outputs["onnxruntime (CPU)"] - outputs["nnxp predict (numpy)"])))
    return {
        "times": times,
        "ratio": float(np.median(ort_t / nnxp_t)),
        "max_diff": max_diff,
        "rounds": rounds,
    }


def table(result: dict) -> str:
    import onnxruntime as ort

    lines = [
        f"ONNX inference, {N_ROWS:,} x {SIZES[0]} float32 rows, "
        f"{'-'.join(map(str, SIZES))} (relu, softmax), one call each, 1 thread, median of "
        f"{result['rounds']} interleaved rounds "
        f"(Python {platform.python_version()}, numpy {np.__version__}, "
        f"onnxruntime {ort.__version__}, {platform.machine()}).",
        "",
        "| implementation | median time (ms) | rows/s | time / nnxp |",
        "| --- | --- | --- | --- |",
    ]
    base = np.median(result["times"]["nnxp predict (numpy)"])
    for name, seconds in result["times"].items():
        t = float(np.median(seconds))
        ratio = 1.0 if t == base else result["ratio"]
        lines.append(f"| {name} | {1e3 * t:.1f} | {N_ROWS / t:,.0f} | {ratio:.2f} |")
    lines += [
        "",
        f"onnxruntime's throughput is {1 / result['ratio']:.2f}x nnxp's (median of the "
        f"per-round ratios). Largest |difference| between the two outputs: "
        f"{result['max_diff']:.2e}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--write", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    text = table(run(args.rounds))
    sys.stdout.write(text)
    if args.write:
        args.write.write_text(text)


if __name__ == "__main__":
    main()
