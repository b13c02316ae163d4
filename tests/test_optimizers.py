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


def _copies(params):
    return [{k: host(v).copy() for k, v in layer.items()} for layer in params]


@pytest.mark.parametrize(
    "cls,options", CASES, ids=lambda v: str(v) if isinstance(v, dict) else v.__name__
)
def test_functional_update_equals_the_object_step_and_mutates_nothing(backend, rng, cls, options):
    shapes = {"W": (3, 4), "b": (3,)}
    start = [{k: nnxp.asarray(rng.standard_normal(s), dtype="float64") for k, s in shapes.items()}]
    grads = [
        [{k: nnxp.asarray(rng.standard_normal(s), dtype="float64") for k, s in shapes.items()}]
        for _ in range(5)
    ]
    obj = cls(**options)
    obj_params = [{k: backend.xp.asarray(v, copy=True) for k, v in start[0].items()}]
    fun = cls(**options)
    params, state = start, fun.init_state(start)
    for g in grads:
        obj.step(obj_params, g)
        before_params = _copies(params)
        before_state = [
            {k: {n: host(a).copy() for n, a in slots.items()} for k, slots in layer.items()}
            for layer in state["slots"]
        ]
        new_params, new_state = fun.update(params, g, state)
        for old, kept in zip(params, before_params):
            for k in old:
                np.testing.assert_array_equal(host(old[k]), kept[k])  # inputs untouched
        for name, slots in state["slots"][0].items():
            for slot, value in slots.items():
                np.testing.assert_array_equal(host(value), before_state[0][name][slot])
        params, state = new_params, new_state
    assert state["step"] == obj.steps == 5 and fun.steps == 0 and fun.state is None
    for k in shapes:
        np.testing.assert_array_equal(host(params[0][k]), host(obj_params[0][k]))


def test_a_traced_step_count_gives_the_same_update_to_rounding(backend, rng):
    xp = backend.xp
    opt = nnxp.Adam(0.01, betas=(0.8, 0.99), weight_decay=0.1, decoupled=True)
    p = [{"W": nnxp.asarray(rng.standard_normal((3, 2)), dtype="float64")}]
    g = [{"W": nnxp.asarray(rng.standard_normal((3, 2)), dtype="float64")}]
    state = opt.init_state(p)
    as_int, s1 = opt.update(p, g, state)
    as_array, s2 = opt.update(p, g, {**state, "step": xp.asarray(0, dtype=xp.int32)})
    np.testing.assert_allclose(host(as_array[0]["W"]), host(as_int[0]["W"]), rtol=1e-13)
    assert s1["step"] == 1 and int(s2["step"]) == 1


def test_functional_state_round_trips_through_the_object(backend, rng):
    opt = nnxp.SGD(0.1, momentum=0.9)
    p = [{"W": nnxp.asarray(rng.standard_normal((2, 2)), dtype="float64")}, {}]
    g = [{"W": nnxp.asarray(rng.standard_normal((2, 2)), dtype="float64")}, {}]
    opt.step(p, g)
    state = opt.get_functional_state(p)
    assert state["step"] == 1 and state["slots"][1] == {}
    new_p, new_state = opt.update(p, g, state)
    opt.step(p, g)
    np.testing.assert_array_equal(host(new_p[0]["W"]), host(p[0]["W"]))
    other = nnxp.SGD(0.1, momentum=0.9)
    other.set_functional_state(new_state)
    assert other.steps == 2
    np.testing.assert_array_equal(
        host(other.state[0]["W"]["momentum_buffer"]), host(opt.state[0]["W"]["momentum_buffer"])
    )


def test_sgd_without_momentum_keeps_no_state(backend):
    opt = nnxp.SGD(0.5)
    p = [{"W": nnxp.asarray(np.ones((2, 2)), dtype="float32")}]
    opt.step(p, [{"W": nnxp.asarray(np.ones((2, 2)), dtype="float32")}])
    assert opt.state is None and opt.steps == 1
    np.testing.assert_array_equal(host(p[0]["W"]), np.full((2, 2), 0.5))


def test_numpy_scalars_are_numbers_for_optimizer_settings():
    opt = nnxp.Adam(lr=np.float32(0.01), betas=np.array([0.8, 0.99]), eps=np.float64(1e-7))
    assert opt.lr == pytest.approx(0.01) and opt.betas == (pytest.approx(0.8), 0.99)
    assert type(opt.lr) is float and type(opt.betas[0]) is float
    sgd = nnxp.SGD(lr=np.float16(0.5), momentum=np.float32(0.5), weight_decay=np.int64(0))
    assert (sgd.lr, sgd.momentum, sgd.weight_decay) == (0.5, 0.5, 0.0)
    assert nnxp.AdamW(lr=np.int32(1)).lr == 1.0
    for bad in (np.bool_(True), True, "0.1", np.float64("nan"), None):
        with pytest.raises(ValueError, match="lr must be a number"):
            nnxp.SGD(lr=bad)
    with pytest.raises(ValueError, match="betas must be a pair"):
        nnxp.Adam(betas=np.array([0.9, 0.99, 0.9]))
