"""One training epoch: nnxp numpy (fit, and the pure step) vs nnxp jax compiled (jax.jit per
step, and one lax.scan program per epoch) vs a hand-written ``jax.jit(value_and_grad)`` step vs
PyTorch eager vs scikit-learn ``partial_fit``; 1 thread, interleaved rounds, medians.

    python benchmarks/jax_step.py                         # digits and mnist, adam, 5 rounds
    python benchmarks/jax_step.py --case mnist --n 60000 --rounds 7 --optimizer sgd

Every competitor trains the same float32 network (same initial weights, data and batch order,
no shuffling, softmax + cross-entropy) with the same optimizer (Adam lr 1e-3 or SGD lr 0.01).
The first call of each compiled competitor (trace + XLA compile) is timed separately and
reported as its compile cost, never inside the medians. XLA runs single-threaded
(``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``), as do BLAS and torch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
).strip()

import numpy as np  # noqa: E402

import nnxp  # noqa: E402
from nnxp.step import build_step  # noqa: E402

CASES = {
    "digits": {"sizes": [64, 32, 10], "hidden": "sigmoid", "batch": 32, "n": 1797},
    "mnist": {"sizes": [784, 256, 256, 10], "hidden": "relu", "batch": 128, "n": 60000},
}
LR = {"sgd": 0.01, "adam": 1e-3}


def make_case(name: str, n: int | None):
    case = dict(CASES[name])
    if name == "digits":
        from sklearn.datasets import load_digits

        data = load_digits()
        X, labels = (data.data / 16.0).astype(np.float32), data.target
    else:
        case["n"] = n or case["n"]
        rng = np.random.default_rng(0)
        X = rng.standard_normal((case["n"], case["sizes"][0]), dtype=np.float32)
        labels = rng.integers(0, 10, case["n"])
    T = (labels[:, None] == np.arange(10)).astype(np.float32)
    with nnxp.use_backend("numpy"):
        net = nnxp_net(case)
        weights = [(nnxp.to_numpy(layer.W), nnxp.to_numpy(layer.b)) for layer in net.layers]
    return case, X, T, labels, weights


def nnxp_net(case):
    sizes, hidden = case["sizes"], case["hidden"]
    layers = [nnxp.Dense(a, b, hidden) for a, b in zip(sizes[:-2], sizes[1:-1])]
    layers.append(nnxp.Dense(sizes[-2], sizes[-1], "softmax"))
    return nnxp.Sequential(layers, seed=0)


def bounds(n, batch):
    return [(s, min(s + batch, n)) for s in range(0, n, batch)]


def nnxp_optimizer(kind):
    return nnxp.Adam(LR["adam"]) if kind == "adam" else nnxp.SGD(LR["sgd"])


# ----------------------------------------------------------------------------- competitors


def nnxp_numpy_fit(case, X, T, weights, kind):
    with nnxp.use_backend("numpy"):
        net = nnxp_net(case)
        opt = nnxp_optimizer(kind)

        def epoch():
            net.fit(
                X,
                T,
                loss="cross_entropy",
                optimizer=opt,
                epochs=1,
                batch_size=case["batch"],
                shuffle=False,
                progress=False,
                check_finite=False,
            )

    return epoch


def nnxp_numpy_step(case, X, T, weights, kind):
    with nnxp.use_backend("numpy"):
        net = nnxp_net(case)
    opt = nnxp_optimizer(kind)
    step = build_step(net, "cross_entropy", opt, donate=True)
    batches = [(X[a:b], T[a:b]) for a, b in bounds(case["n"], case["batch"])]
    state = {"p": net.get_weights(), "s": opt.init_state(net.parameters())}

    def epoch():
        p, s = state["p"], state["s"]
        for Xb, Tb in batches:
            p, s, _, _ = step(p, s, None, Xb, Tb, None)
        state["p"], state["s"] = p, s

    return epoch


def nnxp_jax(case, X, T, weights, kind, scan):
    import jax

    with nnxp.use_backend("jax") as backend:
        net = nnxp_net(case)
        opt = nnxp_optimizer(kind)
        step = build_step(net, "cross_entropy", opt, compile=True)
        dev = lambda a: nnxp.asarray(a, backend=backend)  # noqa: E731
        full = case["n"] // case["batch"] * case["batch"]
        Xs = dev(X[:full].reshape(-1, case["batch"], X.shape[1]))
        Ts = dev(T[:full].reshape(-1, case["batch"], T.shape[1]))
        rest = (dev(X[full:]), dev(T[full:])) if full < case["n"] else None
        batches = [(dev(X[a:b]), dev(T[a:b])) for a, b in bounds(case["n"], case["batch"])]
        state = {
            "p": net.parameters(),
            "s": opt.init_state(net.parameters()),
            "k": net.rng.get_state(),
        }

    def epoch():
        p, s, k = state["p"], state["s"], state["k"]
        if scan:
            p, s, k, sums = step.epoch(p, s, k, Xs, Ts)
            if rest is not None:
                p, s, k, _ = step(p, s, k, *rest)
        else:
            for Xb, Tb in batches:
                p, s, k, total = step(p, s, k, Xb, Tb)
        jax.block_until_ready(p)
        state["p"], state["s"], state["k"] = p, s, k

    return epoch


def hand_jax(case, X, T, weights, kind):
    import jax
    import jax.numpy as jnp

    params = [(jnp.asarray(W), jnp.asarray(b)) for W, b in weights]
    hidden = jax.nn.relu if case["hidden"] == "relu" else jax.nn.sigmoid

    def loss_fn(params, Xb, Tb):
        H = Xb
        for W, b in params[:-1]:
            H = hidden(H @ W.T + b)
        W, b = params[-1]
        A = H @ W.T + b
        return -jnp.sum(Tb * jax.nn.log_softmax(A)) / Xb.shape[0]

    b1, b2, eps, lr = 0.9, 0.999, 1e-8, LR[kind]

    @jax.jit
    def step(params, m, v, t, Xb, Tb):
        loss, grads = jax.value_and_grad(loss_fn)(params, Xb, Tb)
        if kind == "sgd":
            return jax.tree.map(lambda p, g: p - lr * g, params, grads), m, v, t, loss
        t = t + 1
        m = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, m, grads)
        v = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, v, grads)
        step_size = lr / (1 - b1**t)
        root = jnp.sqrt(1 - b2**t)
        params = jax.tree.map(
            lambda p, m, v: p - step_size * (m / (jnp.sqrt(v) / root + eps)), params, m, v
        )
        return params, m, v, t, loss

    zeros = jax.tree.map(jnp.zeros_like, params)
    batches = [
        (jnp.asarray(X[a:b]), jnp.asarray(T[a:b])) for a, b in bounds(case["n"], case["batch"])
    ]
    state = {"p": params, "m": zeros, "v": zeros, "t": jnp.asarray(0.0, dtype=jnp.float32)}

    def epoch():
        p, m, v, t = state["p"], state["m"], state["v"], state["t"]
        for Xb, Tb in batches:
            p, m, v, t, loss = step(p, m, v, t, Xb, Tb)
        jax.block_until_ready(p)
        state.update(p=p, m=m, v=v, t=t)

    return epoch


def torch_eager(case, X, T, weights, kind):
    import torch

    torch.set_num_threads(1)
    layers = []
    for i, (W, b) in enumerate(weights):
        lin = torch.nn.Linear(W.shape[1], W.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if i < len(weights) - 1:
            layers.append(torch.nn.ReLU() if case["hidden"] == "relu" else torch.nn.Sigmoid())
    model = torch.nn.Sequential(*layers)
    opt = (
        torch.optim.Adam(model.parameters(), lr=LR["adam"])
        if kind == "adam"
        else torch.optim.SGD(model.parameters(), lr=LR["sgd"])
    )
    loss_fn = torch.nn.CrossEntropyLoss()
    batches = [
        (torch.from_numpy(X[a:b]), torch.from_numpy(T[a:b]))
        for a, b in bounds(case["n"], case["batch"])
    ]

    def epoch():
        for Xb, Tb in batches:
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(Xb), Tb)
            loss.backward()
            opt.step()

    return epoch


def sklearn_partial_fit(case, X, T, labels, kind):
    import warnings

    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(
        hidden_layer_sizes=tuple(case["sizes"][1:-1]),
        activation=("relu" if case["hidden"] == "relu" else "logistic"),
        solver=kind,
        batch_size=case["batch"],
        learning_rate_init=LR[kind],
        momentum=0.0,
        shuffle=False,
        random_state=0,
    )
    classes = np.arange(10)

    def epoch():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.partial_fit(X, labels, classes=classes)

    return epoch


# ----------------------------------------------------------------------------- driver


def run_case(name, kind, rounds, n):
    case, X, T, labels, weights = make_case(name, n)
    makers = {
        "nnxp numpy fit": lambda: nnxp_numpy_fit(case, X, T, weights, kind),
        "nnxp numpy step": lambda: nnxp_numpy_step(case, X, T, weights, kind),
        "nnxp jax jit": lambda: nnxp_jax(case, X, T, weights, kind, scan=False),
        "nnxp jax scan": lambda: nnxp_jax(case, X, T, weights, kind, scan=True),
        "hand jax jit": lambda: hand_jax(case, X, T, weights, kind),
        "torch eager": lambda: torch_eager(case, X, T, weights, kind),
        "sklearn partial_fit": lambda: sklearn_partial_fit(case, X, T, labels, kind),
    }
    epochs, first = {}, {}
    for label, make in makers.items():
        t0 = time.perf_counter()
        epochs[label] = make()
        epochs[label]()  # first epoch: trace + compile for jax, warm-up for the others
        first[label] = time.perf_counter() - t0
    times = {label: [] for label in makers}
    for _ in range(rounds):
        for label, epoch in epochs.items():
            t0 = time.perf_counter()
            epoch()
            times[label].append(time.perf_counter() - t0)
    return case, first, times


def ratio(times, a, b):
    return statistics.median(x / y for x, y in zip(times[a], times[b]))


def report(name, kind, case, first, times, rounds):
    base = "nnxp numpy fit"
    lines = [
        f"### {name} ({'-'.join(map(str, case['sizes']))}, batch {case['batch']}, "
        f"n {case['n']}, {kind}, {rounds} rounds, 1 thread)",
        "",
        "| implementation | epoch median (ms) | first epoch incl. compile (ms) | "
        "/ nnxp numpy fit | / torch eager | / sklearn |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label in times:
        lines.append(
            f"| {label} | {statistics.median(times[label]) * 1e3:.1f} | "
            f"{first[label] * 1e3:.0f} | {ratio(times, label, base):.2f} | "
            f"{ratio(times, label, 'torch eager'):.2f} | "
            f"{ratio(times, label, 'sklearn partial_fit'):.2f} |"
        )
    lines += [
        "",
        f"nnxp jax jit / hand jax jit: {ratio(times, 'nnxp jax jit', 'hand jax jit'):.3f}; "
        f"nnxp jax scan / hand jax jit: {ratio(times, 'nnxp jax scan', 'hand jax jit'):.3f}",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", choices=sorted(CASES))
    parser.add_argument("--optimizer", default="adam", choices=["adam", "sgd"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=None, help="rows of the mnist-shaped case")
    args = parser.parse_args(argv)
    out = []
    for name in args.case or ["digits", "mnist"]:
        case, first, times = run_case(name, args.optimizer, args.rounds, args.n)
        text = report(name, args.optimizer, case, first, times, args.rounds)
        print(text, flush=True)
        out.append(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
