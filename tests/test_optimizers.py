"""Optimizer steps against torch.optim, step for step, on every backend."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import host

import nnxp
from nnxp.optimizers import get_optimizer

CASES = [
    (nnxp.SGD, {"lr": 0.1}),
    (nnxp.SGD, {"lr": 0.1, "momentum": 0.9}),
    (nnxp.SGD, {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.01}),
    (nnxp.Adam, {}),
    (nnxp.Adam, {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
    (nnxp.Adam, {"lr": 0.01, "weight_decay": 0.1, "decoupled": True}),
]


def _torch_optimizer(torch, cls, options, params):
    if cls is nnxp.SGD:
        return torch.optim.SGD(params, **options)
    options = dict(options)
    if options.pop("decoupled", False):
        return torch.optim.AdamW(params, **options)
    return torch.optim.Adam(params, **options)


@pytest.mark.parametrize(
    "cls,options", CASES, ids=lambda v: str(v) if isinstance(v, dict) else v.__name__
)
def test_steps_match_torch_optim(backend, rng, cls, options):
    torch = pytest.importorskip("torch")
    W0, b0 = rng.standard_normal((3, 4)), rng.standard_normal(3)
    grads = [(rng.standard_normal((3, 4)), rng.standard_normal(3)) for _ in range(12)]
    params = [{"W": nnxp.asarray(W0, dtype="float64"), "b": nnxp.asarray(b0, dtype="float64")}]
    ours = cls(**options)
    tW = torch.tensor(W0, requires_grad=True)
    tb = torch.tensor(b0, requires_grad=True)
    theirs = _torch_optimizer(torch, cls, options, [tW, tb])
    for gW, gb in grads:
        ours.step(params, [{"W": nnxp.asarray(gW), "b": nnxp.asarray(gb)}])
        tW.grad, tb.grad = torch.tensor(gW), torch.tensor(gb)
        theirs.step()
    np.testing.assert_allclose(host(params[0]["W"]), tW.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(host(params[0]["b"]), tb.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_state_lives_on_the_parameters_backend(backend):
    params = [{"W": nnxp.asarray(np.ones((2, 2)), dtype="float32")}]
    opt = nnxp.Adam()
    opt.step(params, [{"W": nnxp.asarray(np.ones((2, 2)), dtype="float32")}])
    m = opt.state[0]["W"]["exp_avg"]
    assert nnxp.backend.array_library(m) == backend.name and m.dtype == backend.xp.float32


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: nnxp.SGD(lr=-1), r"lr must lie in \[0.0, inf\)"),
        (lambda: nnxp.SGD(lr=0.1, momentum=1.0), "momentum"),
        (lambda: nnxp.SGD(lr=0.1, nesterov=True), "nesterov momentum needs momentum > 0"),
        (lambda: nnxp.Adam(betas=(0.9, 1.0)), r"betas\[1\] must lie in \[0.0, 1.0\)"),
        (lambda: nnxp.Adam(betas=(-0.1, 0.9)), r"betas\[0\]"),
        (lambda: nnxp.Adam(eps=-1e-8), "eps"),
        (lambda: nnxp.Adam(lr=float("nan")), "lr must be a number"),
        (
            lambda: get_optimizer("rmsprop"),
            "unknown optimizer 'rmsprop'; valid names are sgd, adam",
        ),
    ],
)
def test_invalid_hyperparameters_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_strings_resolve_to_optimizers():
    assert isinstance(get_optimizer("sgd"), nnxp.SGD)
    assert isinstance(get_optimizer("adam"), nnxp.Adam)
    assert get_optimizer("adamw").decoupled
