"""Every activation against PyTorch's functional version (float64, values and derivatives),
the erf it needs, the sigmoid's float32 tail, and custom registered activations."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import host, normal

import nnxp
from nnxp import functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional

#: name or config -> the torch function of a float64 tensor
TORCH = {
    "linear": lambda a: a,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "leaky_relu": lambda a: TF.leaky_relu(a, 0.01),
    "elu": TF.elu,
    "selu": TF.selu,
    "softplus": TF.softplus,
    "softsign": TF.softsign,
    "silu": TF.silu,
    "swish": TF.silu,
    "gelu": lambda a: TF.gelu(a, approximate="none"),
    "gelu_tanh": lambda a: TF.gelu(a, approximate="tanh"),
    "hard_sigmoid": TF.hardsigmoid,
    "log_sigmoid": TF.logsigmoid,
    "elu_alpha": lambda a: TF.elu(a, alpha=0.4),
    "leaky_relu_alpha": lambda a: TF.leaky_relu(a, 0.3),
}
CONFIG = {
    "gelu_tanh": {"name": "gelu", "approximate": "tanh"},
    "elu_alpha": {"name": "elu", "alpha": 0.4},
    "leaky_relu_alpha": {"name": "leaky_relu", "alpha": 0.3},
}
NEW = ["elu", "selu", "softplus", "softsign", "silu", "swish", "gelu", "gelu_tanh"]
NEW += ["hard_sigmoid", "log_sigmoid"]


def activation(key):
    return F.get_activation(CONFIG.get(key, key))


def torch_value_and_grad(key, A, G):
    a = torch.tensor(host(A), requires_grad=True)
    y = TORCH[key](a)
    y.backward(torch.tensor(host(G)))
    return y.detach().numpy(), a.grad.numpy()


@pytest.mark.parametrize("key", list(TORCH))
def test_forward_and_backward_match_torch_in_float64(backend, rng, key):
    A = normal(rng, (7, 6), scale=3)  # tails included: |A| up to ~10
    G = normal(rng, (7, 6))
    act = activation(key)
    Y = act.forward(A)
    y, dA = torch_value_and_grad(key, A, G)
    np.testing.assert_allclose(host(Y), y, rtol=1e-12, atol=1e-14)
    # torch's float64 hardsigmoid backward multiplies by 1/6 rounded to float32 (3e-8 off)
    rtol = 4e-8 if key == "hard_sigmoid" else 1e-11
    np.testing.assert_allclose(host(act.backward(Y, G, None, A)), dA, rtol=rtol, atol=1e-14)
    if not act.needs_A:  # the derivative from the output alone agrees too
        rtol = max(rtol, 1e-10)
        np.testing.assert_allclose(host(act.backward(Y, G)), dA, rtol=rtol, atol=1e-14)
        np.testing.assert_allclose(host(act.derivative(Y)) * host(G), dA, rtol=rtol, atol=1e-14)


@pytest.mark.parametrize("key", ["silu", "swish", "gelu", "gelu_tanh"])
def test_activations_that_need_A_refuse_a_call_without_it(backend, rng, key):
    act = activation(key)
    assert act.needs_A
    A = normal(rng, (3, 2))
    with pytest.raises(TypeError, match="needs the pre-activation A"):
        act.backward(act.forward(A), A)
    with pytest.raises(TypeError, match="pre-activation"):
        act.derivative(act.forward(A))


@pytest.mark.parametrize("key", NEW)
def test_float32_activations_match_torch_to_float32_rounding(backend, rng, key):
    A = normal(rng, (50, 8), dtype="float32", scale=4)
    act = activation(key)
    Y = act.forward(A)
    assert Y.dtype == backend.xp.float32
    exact = TORCH[key](torch.tensor(host(A))).numpy()  # float64 of the same inputs
    np.testing.assert_allclose(host(Y), exact, rtol=2e-6, atol=2e-7)
    # torch's own float32 result is no closer (its gelu takes 1 + erf: cancels in the tail)
    y32 = TORCH[key](torch.tensor(host(A)).to(torch.float32)).numpy()
    np.testing.assert_allclose(host(Y), y32, rtol=2e-6, atol=4e-7)


def test_erf_matches_torch_special_erf(backend):
    x = np.concatenate([np.linspace(-9, 9, 4001), [0.0, 1.0, -1.0, 8.0, -8.0, 30.0, -1e4]])
    for dtype, tolerance in (("float64", 5e-16), ("float32", 2.4e-7)):
        got = host(F.erf(nnxp.asarray(x, dtype=dtype)))
        expected = torch.special.erf(torch.tensor(x).to(getattr(torch, dtype))).double().numpy()
        assert np.max(np.abs(got - expected)) <= tolerance, dtype  # one rounding at 1.0
    # erfc keeps its relative precision where 1 - erf(x) would be all rounding
    big = np.array([2.0, 5.0, 10.0, 20.0, 26.0])
    got = host(F.erfc(nnxp.asarray(big, dtype="float64")))
    expected = torch.special.erfc(torch.tensor(big)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-13)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_keeps_relative_precision_in_the_tail(backend, dtype):
    """Issue 10 bullet 18: relative error <= 1e-6 against float64 for A in [-80, 80]
    wherever the float32 output is normal (the tanh form gave 0.44 at A = -17)."""
    A = np.linspace(-80.0, 80.0, 16001)
    Y = host(F.get_activation("sigmoid")(nnxp.asarray(A, dtype=dtype)))
    exact = 1.0 / (
        1.0 + np.exp(-A.astype(np.float32).astype(np.float64) if dtype == "float32" else -A)
    )
    normal_ = Y >= np.finfo(np.float32).tiny
    assert normal_.sum() == A.size  # sigmoid(-80) = 1.8e-35 is normal in float32
    limit = 1e-6 if dtype == "float32" else 1e-14
    assert np.max(np.abs(Y - exact) / exact) <= limit
    # far beyond: no overflow, no NaN; the negative tail ends in (at most) a subnormal
    far = nnxp.asarray(np.array([-1e30, -1e4, 1e4, 1e30]), dtype=dtype)
    Z = host(F.get_activation("sigmoid")(far))
    assert np.all((Z[:2] >= 0) & (Z[:2] < np.finfo(dtype).tiny)) and np.all(Z[2:] == 1.0)


def test_float32_tanh_gelu_keeps_relative_precision_in_the_negative_tail(backend):
    """``A/2 (1 + tanh(u))`` lost every digit for A < -4 in float32 (1 + tanh cancels; on
    jax the result became -0.0); as ``A sigmoid(2u)`` the relative error stays at what the
    float32 rounding of ``u`` itself allows (2u up to ~80: ~1e-5), down to A = -9."""
    A = np.linspace(-9.0, 3.0, 12001)
    A32 = A.astype(np.float32).astype(np.float64)
    exact = A32 / (1.0 + np.exp(-2.0 * np.sqrt(2.0 / np.pi) * (A32 + 0.044715 * A32**3)))
    gelu = F.get_activation({"name": "gelu", "approximate": "tanh"})
    Y = host(gelu(nnxp.asarray(A, dtype="float32"))).astype(np.float64)
    nonzero = exact != 0.0
    assert nonzero.sum() == A.size - 1  # only A = 0 itself
    assert np.max(np.abs(Y[nonzero] - exact[nonzero]) / np.abs(exact[nonzero])) < 3e-5
    assert np.all(np.signbit(Y[A < 0]))  # never rounds to zero on the way


def test_unknown_activation_lists_the_valid_names():
    with pytest.raises(ValueError, match="valid names are linear, .*gelu.*register"):
        F.get_activation("mish")
    with pytest.raises(ValueError, match="gelu approximate"):
        F.get_activation({"name": "gelu", "approximate": "erf"})
    with pytest.raises(ValueError, match="elu alpha"):
        F.get_activation({"name": "elu", "alpha": -1.0})
    with pytest.raises(ValueError, match="bad settings"):
        F.get_activation({"name": "selu", "alpha": 2.0})
    with pytest.raises(TypeError, match="instance"):
        F.get_activation(F.ELU)


@pytest.mark.parametrize("key", NEW)
def test_every_activation_rebuilds_from_its_config(key):
    act = activation(key)
    again = F.get_activation(act.config())
    assert type(again) is type(act) and again.config() == act.config()


class _MyELU(F.ActivationFunction):
    """The README's 10-line ELU: forward and the derivative from the output."""

    name = "test_my_elu"

    def forward(self, A, xp=None):
        xp = xp or nnxp.functional.activations.array_namespace(A)
        return xp.where(A > 0, A, xp.expm1(xp.minimum(A, 0.0)))

    def derivative(self, Y, xp=None):
        xp = xp or nnxp.functional.activations.array_namespace(Y)
        return xp.where(Y > 0, 1.0, Y + 1.0)


def test_a_registered_custom_activation_trains_gradchecks_and_round_trips(backend, rng, tmp_path):
    nnxp.register(_MyELU)
    try:
        net = nnxp.Sequential(
            [nnxp.Dense(3, 5, "test_my_elu"), nnxp.Dense(5, 2, "linear")], dtype="float64"
        )
        X, T = normal(rng, (6, 3)), normal(rng, (6, 2))
        assert nnxp.gradcheck(net, X, T, "mse") < 1e-6
        clone = net.clone()
        assert isinstance(clone.layers[0].activation, _MyELU)
        net.save(tmp_path / "m.npz")
        loaded = nnxp.load(tmp_path / "m.npz")
        np.testing.assert_array_equal(host(loaded.predict(X)), host(net.predict(X)))
    finally:
        F.ACTIVATIONS.pop("test_my_elu", None)


def test_register_with_a_name_sets_the_activation_name():
    class Cube(F.ActivationFunction):
        def forward(self, A, xp=None):
            return A * A * A

        def derivative(self, Y, xp=None):
            raise NotImplementedError

    try:
        assert nnxp.register(name="test_cube")(Cube) is Cube
        assert Cube.name == "test_cube" and F.ACTIVATIONS["test_cube"] is Cube
        assert isinstance(F.get_activation("test_cube"), Cube)
    finally:
        F.ACTIVATIONS.pop("test_cube", None)
