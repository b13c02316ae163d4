"""Time one training epoch of nnxp against the hand-written NumPy reference, PyTorch eager,
scikit-learn's MLPClassifier and the GEMM floor, in one process, interleaved.

    python benchmarks/mlp.py                       # every case, writes BENCHMARKS.md
    python benchmarks/mlp.py --case digits --rounds 9
    python benchmarks/mlp.py --case mnist --case wide --gpu   # nnxp(cupy) vs torch CUDA

Every competitor trains the same float32 network from the same initial weights on the same
data in the same batch order (no shuffling): hidden layers, a softmax output, cross-entropy,
plain SGD (lr 0.01, momentum 0) or Adam (lr 1e-3). Competitors run A B C A B C ... for
``--rounds`` rounds after a warm-up, so drift on a shared machine hits them alike; the
ratios are medians of the per-round ratios. BLAS and torch are pinned to ``--threads``.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

THREADS = next((a.split("=")[1] for a in sys.argv if a.startswith("--threads=")), "1")
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = THREADS

import numpy as np  # noqa: E402
from reference import ReferenceMLP  # noqa: E402

import nnxp  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "digits": {"sizes": [64, 32, 10], "hidden": "sigmoid", "batch": 32, "n": 1797},
    "mnist": {"sizes": [784, 256, 256, 10], "hidden": "relu", "batch": 128, "n": 60000},
    "wide": {"sizes": [1024, 2048, 2048, 10], "hidden": "relu", "batch": 512, "n": 8192},
}
LR = {"sgd": 0.01, "adam": 1e-3}


# ----------------------------------------------------------------------------- data


def make_case(name: str):
    """Host float32 data, one-hot targets, labels and initial weights (nnxp's, seed 0)."""
    case = CASES[name]
    if name == "digits":
        from sklearn.datasets import load_digits

        data = load_digits()
        X, labels = (data.data / 16.0).astype(np.float32), data.target
    else:
        rng = np.random.default_rng(0)
        X = rng.standard_normal((case["n"], case["sizes"][0]), dtype=np.float32)
        labels = rng.integers(0, 10, case["n"])
    T = (labels[:, None] == np.arange(10)).astype(np.float32)
    with nnxp.use_backend("numpy"):
        net = _nnxp_net(case)
        Ws = [nnxp.to_numpy(layer.W) for layer in net.layers]
        bs = [nnxp.to_numpy(layer.b) for layer in net.layers]
    return case, X, T, labels, Ws, bs


def _nnxp_net(case):
    sizes, hidden = case["sizes"], case["hidden"]
    layers = [nnxp.Dense(a, b, hidden) for a, b in zip(sizes[:-2], sizes[1:-1])]
    layers.append(nnxp.Dense(sizes[-2], sizes[-1], "softmax"))
    return nnxp.Sequential(layers, seed=0)


def flops(case) -> tuple[float, float]:
    """GEMM FLOPs of one epoch: 6 n sum(n_in n_out), and the same without layer 1's dE/dX."""
    sizes, n = case["sizes"], case["n"]
    total = 6 * n * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return total, total - 2 * n * sizes[0] * sizes[1]


def sgemm_rate(case, sync=lambda: None, xp=np, device=None) -> float:
    """The best float32 GEMM rate (FLOP/s) over the case's own matrix shapes."""
    best = 0.0
    sizes, m = case["sizes"], case["batch"]
    rng = np.random.default_rng(1)
    for k, n in zip(sizes[:-1], sizes[1:]):
        for shape_a, shape_b in (((m, k), (k, n)), ((n, m), (m, k)), ((m, n), (n, k))):
            A = xp.asarray(rng.standard_normal(shape_a, dtype=np.float32), **device or {})
            B = xp.asarray(rng.standard_normal(shape_b, dtype=np.float32), **device or {})
            work = 2.0 * shape_a[0] * shape_a[1] * shape_b[1]
            repeats = max(3, int(2e8 / work))
            for _ in range(3):
                sync()
                start = time.perf_counter()
                for _ in range(repeats):
                    A @ B
                sync()
                best = max(best, work * repeats / (time.perf_counter() - start))
    return best


# ----------------------------------------------------------------------------- competitors


def nnxp_epoch(backend, case, X, T, Ws, bs, optimizer):
    with nnxp.use_backend(backend) as b:
        net = _nnxp_net(case)
        for layer, W, bias in zip(net.layers, Ws, bs):
            layer.W, layer.b = nnxp.asarray(W), nnxp.asarray(bias)
        Xb, Tb = nnxp.asarray(X), nnxp.asarray(T)
    opt = nnxp.SGD(LR["sgd"]) if optimizer == "sgd" else nnxp.Adam(LR["adam"])

    def epoch():
        with nnxp.use_backend(b.name, b.device):
            # the data check (NaN/inf) runs once per fit call, not per epoch: it is timed
            # apart (see validation_ms) so that this is one epoch as the others time it
            net.fit(
                Xb,
                Tb,
                loss="cross_entropy",
                optimizer=opt,
                epochs=1,
                batch_size=case["batch"],
                shuffle=False,
                progress=False,
                check_finite=False,
            )

    return epoch


def reference_epoch(case, X, T, Ws, bs, optimizer):
    ref = ReferenceMLP(Ws, bs, case["hidden"])
    if optimizer == "sgd":
        return lambda: ref.epoch_sgd(X, T, case["batch"], LR["sgd"])
    return lambda: ref.epoch_adam(X, T, case["batch"], LR["adam"])


def torch_epoch(case, X, labels, Ws, bs, optimizer, device="cpu"):
    import torch

    layers = []
    for i, (W, b) in enumerate(zip(Ws, bs)):
        linear = torch.nn.Linear(W.shape[1], W.shape[0])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W))
            linear.bias.copy_(torch.from_numpy(b))
        layers.append(linear)
        if i < len(Ws) - 1:
            layers.append(torch.nn.Sigmoid() if case["hidden"] == "sigmoid" else torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).to(device)
    Xt = torch.from_numpy(X).to(device)
    yt = torch.from_numpy(labels).long().to(device)
    loss_fn = torch.nn.CrossEntropyLoss()
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=LR["sgd"])
    else:
        opt = torch.optim.Adam(model.parameters(), lr=LR["adam"])
    batch, n = case["batch"], X.shape[0]

    def epoch():
        for start in range(0, n, batch):
            opt.zero_grad(set_to_none=True)
            loss_fn(model(Xt[start : start + batch]), yt[start : start + batch]).backward()
            opt.step()

    return epoch


def sklearn_epoch(case, X, labels, Ws, bs, optimizer):
    import warnings

    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(
        hidden_layer_sizes=tuple(case["sizes"][1:-1]),
        activation="logistic" if case["hidden"] == "sigmoid" else "relu",
        solver=optimizer,
        learning_rate_init=LR[optimizer],
        batch_size=case["batch"],
        momentum=0.0,
        nesterovs_momentum=False,
        alpha=0.0,
        shuffle=False,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.partial_fit(X[:10], labels[:10], classes=np.arange(10))  # builds the layers
    clf.coefs_ = [np.ascontiguousarray(W.T) for W in Ws]
    clf.intercepts_ = [b.copy() for b in bs]
    del clf._optimizer  # the next partial_fit makes a fresh one over these weights
    return lambda: clf.partial_fit(X, labels)


# ----------------------------------------------------------------------------- timing


def interleave(epochs: dict, rounds: int, warmup: int = 1, sync=lambda: None) -> dict:
    times = {name: [] for name in epochs}
    for r in range(warmup + rounds):
        for name, epoch in epochs.items():
            sync()
            start = time.perf_counter()
            epoch()
            sync()
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def summary(times: dict, baseline: str, against: list[str]) -> dict:
    out = {}
    for name in against:
        if name in times and baseline in times:
            out[name] = float(np.median(np.array(times[baseline]) / np.array(times[name])))
    return out


def peak_rss_mb(case_name: str, impl: str, threads: str) -> float:
    """Peak resident memory of a fresh process that loads the case and trains one epoch."""
    code = (
        "import sys; sys.path.insert(0, 'benchmarks'); import mlp;"
        f"mlp.one_epoch_for_memory({case_name!r}, {impl!r}); print(mlp.high_water_kb())"
    )
    env = dict(os.environ, OMP_NUM_THREADS=threads)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True
    )
    return int(out.stdout.split()[-1]) / 1024.0


def high_water_kb() -> int:
    """This process's peak RSS. VmHWM belongs to the address space exec made, whereas
    ru_maxrss also counts the parent's pages at fork (a large parent inflates it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def one_epoch_for_memory(case_name: str, impl: str) -> None:
    case, X, T, labels, Ws, bs = make_case(case_name)
    if impl == "nnxp":
        epoch = nnxp_epoch("numpy", case, X, T, Ws, bs, "sgd")
    elif impl == "reference":
        epoch = reference_epoch(case, X, T, Ws, bs, "sgd")
    elif impl == "torch":
        epoch = torch_epoch(case, X, labels, Ws, bs, "sgd")
    else:
        epoch = sklearn_epoch(case, X, labels, Ws, bs, "sgd")
    epoch()


def extras(cases: list[str], threads: str) -> list[str]:
    """The classic batch-vs-row timing, and what fit's one-off data check costs."""
    out = subprocess.run(
        [sys.executable, "examples/batch_vs_instance.py"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        env=dict(os.environ, OMP_NUM_THREADS=threads),
    )
    lines = [f"Batch versus row by row (`examples/batch_vs_instance.py`): {out.stdout.strip()}"]
    name = "mnist" if "mnist" in cases else cases[0]
    case, X, T, _, _, _ = make_case(name)
    with nnxp.use_backend("numpy"):
        net = _nnxp_net(case)
        seconds = min(
            _timed(lambda: net.prepare(X, T, "cross_entropy", None, True)) for _ in range(5)
        )
    lines += [
        "",
        f"fit's NaN/inf check of the data, once per fit call ({name}, "
        f"{X.nbytes / 2**20:.0f} MB): {seconds * 1e3:.1f} ms",
    ]
    return lines


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def profile(case_name: str) -> None:
    """Where one nnxp SGD epoch spends its time (cProfile, top functions by own time)."""
    import cProfile
    import pstats

    case, X, T, _, Ws, bs = make_case(case_name)
    epoch = nnxp_epoch("numpy", case, X, T, Ws, bs, "sgd")
    epoch()
    rounds = max(1, int(0.5 / max(1e-3, _timed(epoch))))
    profiler = cProfile.Profile()
    profiler.runcall(lambda: [epoch() for _ in range(rounds)])
    print(f"{case_name}: {rounds} epoch(s)")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(12)


def versions() -> str:
    parts = [
        f"Python {platform.python_version()}",
        f"numpy {np.__version__}",
        f"nnxp {nnxp.__version__}",
    ]
    for module in ("torch", "sklearn", "array_api_compat"):
        try:
            parts.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            pass
    try:
        from threadpoolctl import threadpool_info

        blas = [
            f"{i['internal_api']} {i['version']} ({i.get('architecture')})"
            for i in threadpool_info()
            if i["user_api"] == "blas"
        ]
        parts.append("BLAS " + ", ".join(blas))
    except ImportError:
        pass
    return "; ".join(parts)


def machine() -> str:
    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def fmt(seconds: list[float]) -> str:
    return f"{np.median(seconds) * 1e3:.1f} ({min(seconds) * 1e3:.1f}–{max(seconds) * 1e3:.1f})"


def run_cpu(case_name: str, rounds: int, threads: str, backends: list[str]) -> list[str]:
    case, X, T, labels, Ws, bs = make_case(case_name)
    try:
        import torch

        torch.set_num_threads(int(threads))
    except ImportError:
        torch = None
    from threadpoolctl import threadpool_limits

    lines = []
    with threadpool_limits(int(threads)):
        rate = sgemm_rate(case)
        total, without_dx1 = flops(case)
        for optimizer in ("sgd", "adam"):
            epochs = {}
            for backend in backends:
                epochs[f"nnxp[{backend}]"] = nnxp_epoch(backend, case, X, T, Ws, bs, optimizer)
            epochs["reference"] = reference_epoch(case, X, T, Ws, bs, optimizer)
            if torch is not None:
                epochs["torch"] = torch_epoch(case, X, labels, Ws, bs, optimizer)
            epochs["sklearn"] = sklearn_epoch(case, X, labels, Ws, bs, optimizer)
            times = interleave(epochs, rounds)
            ratios = summary(times, "nnxp[numpy]", ["reference", "torch", "sklearn"])
            nn = np.median(times["nnxp[numpy]"])
            lines.append(
                f"| {case_name} | {optimizer} | "
                + " | ".join(fmt(times[name]) for name in ("nnxp[numpy]", "reference"))
                + f" | {fmt(times['torch']) if 'torch' in times else '–'}"
                + f" | {fmt(times['sklearn'])}"
                + f" | {ratios['reference']:.2f} | {ratios.get('torch', float('nan')):.2f}"
                + f" | {ratios['sklearn']:.2f} | {nn / (total / rate):.2f}"
                + f" | {nn / (without_dx1 / rate):.2f}"
                + (
                    f" | {summary(times, 'nnxp[torch]', ['torch'])['torch']:.2f}"
                    if "nnxp[torch]" in times and "torch" in times
                    else " | –"
                )
                + " |"
            )
            print(lines[-1], flush=True)
        lines.append(
            f"|  | GEMM floor at {rate / 1e9:.1f} GFLOP/s | "
            f"{total / rate * 1e3:.1f} ms, without layer-1 dE/dX "
            f"{without_dx1 / rate * 1e3:.1f} ms |" + " |" * 10
        )
    return lines


def run_gpu(case_name: str, rounds: int) -> list[str]:
    import cupy
    import torch

    case, X, T, labels, Ws, bs = make_case(case_name)

    def sync():
        cupy.cuda.Device().synchronize()
        torch.cuda.synchronize()

    lines = []
    rate = sgemm_rate(case, sync, cupy)
    total, _ = flops(case)
    for optimizer in ("sgd", "adam"):
        epochs = {
            "nnxp[cupy]": nnxp_epoch("cupy", case, X, T, Ws, bs, optimizer),
            "torch[cuda]": torch_epoch(case, X, labels, Ws, bs, optimizer, device="cuda"),
        }
        times = interleave(epochs, rounds, sync=sync)
        ratio = summary(times, "nnxp[cupy]", ["torch[cuda]"])["torch[cuda]"]
        lines.append(
            f"| {case_name} | {optimizer} | {fmt(times['nnxp[cupy]'])} | "
            f"{fmt(times['torch[cuda]'])} | {ratio:.2f} | {1 / ratio:.2f} | "
            f"{np.median(times['nnxp[cupy]']) / (total / rate):.2f} |"
        )
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--case", action="append", choices=list(CASES))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", default=THREADS, help="BLAS/torch threads (also --threads=N)")
    p.add_argument("--backends", default="numpy,torch", help="nnxp backends to time on the CPU")
    p.add_argument("--gpu", action="store_true", help="nnxp(cupy) against torch CUDA")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-RSS processes")
    p.add_argument("--write", default=None, help="markdown file for the table")
    p.add_argument("--profile", action="store_true", help="cProfile nnxp's epochs instead")
    args = p.parse_args()
    cases = args.case or list(CASES)
    if args.profile:
        for name in cases:
            profile(name)
        return
    command = "python benchmarks/mlp.py " + " ".join(sys.argv[1:])
    if args.gpu:
        header = [
            "| case | optimizer | nnxp[cupy] ms | torch[cuda] ms | nnxp/torch time | "
            "nnxp throughput / torch | nnxp/floor |",
            "|" + " --- |" * 7,
        ]
        print("\n".join(header))
        lines = header + [line for c in cases for line in run_gpu(c, args.rounds)]
    else:
        backends = [b for b in args.backends.split(",") if b in nnxp.available_backends()]
        header = [
            "| case | optimizer | nnxp ms | reference ms | torch ms | sklearn ms | "
            "nnxp/ref | nnxp/torch | nnxp/sklearn | nnxp/floor | nnxp/floor w/o dX1 | "
            "nnxp[torch]/torch |",
            "|" + " --- |" * 12,
        ]
        print("\n".join(header))
        lines = header + [
            line for c in cases for line in run_cpu(c, args.rounds, args.threads, backends)
        ]
        if "mnist" in cases and not args.no_memory:
            lines += [
                "",
                "Peak RSS for one mnist epoch (SGD), each in a fresh process:",
                "",
                "| implementation | peak RSS MB | / reference |",
                "| --- | --- | --- |",
            ]
            rss = {
                impl: peak_rss_mb("mnist", impl, args.threads)
                for impl in ("reference", "nnxp", "torch", "sklearn")
            }
            for impl, mb in rss.items():
                lines.append(f"| {impl} | {mb:.0f} | {mb / rss['reference']:.2f} |")
            print("\n".join(lines[-6:]), flush=True)
        lines += ["", *extras(cases, args.threads)]
        print("\n".join(lines[-3:]), flush=True)
    if args.write:
        text = [
            f"# nnxp benchmarks{' (GPU)' if args.gpu else ''}",
            "",
            f"Command: `{command}`",
            "",
            f"Machine: {machine()}",
            "",
            f"Versions: {versions()}",
            "",
            f"Threads: {args.threads}. Times are one "
            f"training epoch, median (min–max) of {args.rounds} interleaved rounds after a "
            "warm-up; ratios are medians of per-round ratios (below 1: nnxp is faster).",
            "",
        ]
        Path(args.write).write_text("\n".join(text + lines) + "\n")


if __name__ == "__main__":
    main()
