"""ONNX export: onnxruntime reproduces ``Sequential.predict`` on every backend and activation."""

from __future__ import annotations

import inspect
import subprocess
import sys
import types

import numpy as np
import pytest

import nnxp
from nnxp.functional import ACTIVATIONS, ActivationFunction, ReLU

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from nnxp.onnx import (  # noqa: E402  (after the importorskip of onnx)
    _EMITTERS,
    DEFAULT_OPSET,
    GELU_OPSET,
    _Graph,
    export_onnx,
    exportable_activations,
)

TOL = {"float32": 1e-6, "float64": 1e-12}


def _activation_cases() -> list:
    """Every exportable activation by name, plus the settings that change the graph."""
    cases: list = list(exportable_activations())
    cases.append({"name": "leaky_relu", "alpha": 0.2})
    gelu = ACTIVATIONS.get("gelu")
    if gelu is not None and "approximate" in inspect.signature(gelu).parameters:
        default = inspect.signature(gelu).parameters["approximate"].default
        other = (not default) if isinstance(default, bool) else "tanh"
        if other != default:
            cases.append({"name": "gelu", "approximate": other})
    for name, option, value in (("elu", "alpha", 0.5),):
        cls = ACTIVATIONS.get(name)
        if cls is not None and option in inspect.signature(cls).parameters:
            cases.append({"name": name, option: value})
    return cases


CASES = _activation_cases()


def _case_id(case) -> str:
    if isinstance(case, str):
        return case
    return "-".join(f"{v}" for v in case.values())


def _session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _run(model, X: np.ndarray) -> np.ndarray:
    return _session(model).run(["Y"], {"X": X})[0]


def _nnxp_predict(net, X: np.ndarray) -> np.ndarray:
    return nnxp.to_numpy(net.predict(nnxp.asarray(X, dtype=X.dtype.name)))


def _uses_erf_in_float32(case) -> bool:
    """Exact GELU in float64 runs Erf in float32 (onnxruntime has no float64 Erf)."""
    config = nnxp.functional.get_activation(case).config()
    return config["name"] == "gelu" and config["approximate"] == "none"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_onnxruntime_matches_predict_for_every_activation(backend, case, dtype, tmp_path, rng):
    net = nnxp.Sequential(
        [
            nnxp.Dense(6, 9, case),
            nnxp.Dropout(0.4),
            nnxp.Dense(9, 5, "tanh"),
            nnxp.Activation(case),
            nnxp.Dense(5, 4, case),
        ],
        seed=3,
        dtype=dtype,
    )
    X = (2.0 * rng.standard_normal((17, 6))).astype(dtype)
    path = tmp_path / "net.onnx"
    export_onnx(net, path)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    Y = _run(model, X)
    assert Y.dtype == np.dtype(dtype)
    tol = 1e-6 if _uses_erf_in_float32(case) else TOL[dtype]
    np.testing.assert_allclose(Y, _nnxp_predict(net, X), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", ["relu", "softmax", "sigmoid"])
def test_leading_axes_use_matmul_and_keep_them(backend, case, dtype, rng):
    net = nnxp.Sequential(
        [nnxp.Dense(6, 7, "tanh"), nnxp.Dropout(0.5), nnxp.Dense(7, 3, case)], seed=1, dtype=dtype
    )
    model = export_onnx(net, _Sink(), input_shape=(None, None, 6))
    ops = [node.op_type for node in model.graph.node]
    assert "Gemm" not in ops and ops.count("MatMul") == 2 and ops.count("Add") == 2
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims[:2]] == ["N", "d1"] and dims[2].dim_value == 6
    for shape in ((4, 5, 6), (1, 2, 6)):
        X = rng.standard_normal(shape).astype(dtype)
        Y = _run(model, X)
        assert Y.shape == (*shape[:2], 3)
        np.testing.assert_allclose(Y, _nnxp_predict(net, X), rtol=TOL[dtype], atol=TOL[dtype])


def test_fixed_leading_axis_is_written_into_the_input_type(rng):
    net = nnxp.Sequential([nnxp.Dense(6, 3, "relu")])
    model = export_onnx(net, _Sink(), input_shape=(None, 5, 6))
    dims = model.graph.output[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and [d.dim_value for d in dims[1:]] == [5, 3]
    X = rng.standard_normal((2, 5, 6)).astype("float32")
    np.testing.assert_allclose(_run(model, X), _nnxp_predict(net, X), rtol=1e-6, atol=1e-6)


class _Sink:
    """A binary file object that keeps what is written."""

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data


def test_graph_is_gemm_with_transposed_b_dropout_left_out_and_named_x_to_y(rng):
    net = nnxp.Sequential(
        [nnxp.Dense(4, 8, "relu"), nnxp.Dropout(0.3), nnxp.Dense(8, 3, "softmax")], seed=0
    )
    sink = _Sink()
    model = export_onnx(net, sink)
    assert onnx.load_from_string(sink.data) == model
    assert [node.op_type for node in model.graph.node] == ["Gemm", "Relu", "Gemm", "Softmax"]
    gemm = model.graph.node[0]
    assert {a.name: onnx.helper.get_attribute_value(a) for a in gemm.attribute} == {"transB": 1}
    assert [i.name for i in model.graph.input] == ["X"]
    assert [o.name for o in model.graph.output] == ["Y"]
    assert model.graph.node[-1].output[0] == "Y"
    assert model.opset_import[0].version == DEFAULT_OPSET
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    np.testing.assert_array_equal(weights["layers.0.W"], nnxp.to_numpy(net.layers[0].W))
    np.testing.assert_array_equal(weights["layers.2.b"], nnxp.to_numpy(net.layers[2].b))
    # the batch dimension is symbolic: any number of rows runs
    for n in (1, 13):
        X = rng.standard_normal((n, 4)).astype("float32")
        np.testing.assert_allclose(_run(model, X), _nnxp_predict(net, X), rtol=1e-6, atol=1e-6)


def test_export_replaces_an_existing_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "net.onnx"
    path.write_bytes(b"old")
    model = export_onnx(nnxp.Sequential([nnxp.Dense(3, 2, "relu")]), str(path))
    assert onnx.load(str(path)) == model
    assert [p.name for p in tmp_path.iterdir()] == ["net.onnx"]


def test_float64_network_gives_a_float64_graph():
    net = nnxp.Sequential([nnxp.Dense(3, 2, "leaky_relu")], dtype="float64")
    model = export_onnx(net, _Sink())
    double = onnx.TensorProto.DOUBLE
    assert model.graph.input[0].type.tensor_type.elem_type == double
    assert model.graph.output[0].type.tensor_type.elem_type == double
    assert all(t.data_type == double for t in model.graph.initializer)


@pytest.mark.skipif(
    "use_bias" not in inspect.signature(nnxp.Dense).parameters, reason="Dense has no use_bias"
)
def test_dense_without_bias(backend, rng):
    net = nnxp.Sequential([nnxp.Dense(4, 5, "tanh", use_bias=False), nnxp.Dense(5, 2)], seed=2)
    model = export_onnx(net, _Sink())
    assert "layers.0.b" not in {t.name for t in model.graph.initializer}
    assert len(model.graph.node[0].input) == 2
    X = rng.standard_normal((6, 4)).astype("float32")
    np.testing.assert_allclose(_run(model, X), _nnxp_predict(net, X), rtol=1e-6, atol=1e-6)


@pytest.mark.skipif("gelu" not in ACTIVATIONS, reason="nnxp has no gelu activation")
@pytest.mark.parametrize("opset", [DEFAULT_OPSET, GELU_OPSET])
def test_gelu_is_the_gelu_operator_from_opset_20(opset, rng):
    net = nnxp.Sequential([nnxp.Dense(5, 6, "gelu"), nnxp.Dense(6, 2)], seed=4)
    model = export_onnx(net, _Sink(), opset=opset)
    ops = {node.op_type for node in model.graph.node}
    assert ("Gelu" in ops) == (opset >= GELU_OPSET)
    X = rng.standard_normal((9, 5)).astype("float32")
    np.testing.assert_allclose(_run(model, X), _nnxp_predict(net, X), rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------ each emitter against PyTorch


def _torch_reference(name: str, settings: dict):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    table = {
        "linear": lambda x: x,
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "relu": F.relu,
        "leaky_relu": lambda x: F.leaky_relu(x, settings.get("alpha", 0.01)),
        "softmax": lambda x: torch.softmax(x, -1),
        "elu": lambda x: F.elu(x, settings.get("alpha", 1.0)),
        "selu": F.selu,
        "softplus": lambda x: F.softplus(x, threshold=1e9),  # exact, as nnxp
        "softsign": F.softsign,
        "silu": F.silu,
        "swish": F.silu,
        "gelu": lambda x: F.gelu(x, approximate=settings.get("approximate", "none")),
        "hard_sigmoid": F.hardsigmoid,
        "log_sigmoid": F.logsigmoid,
    }
    return table[name]


EMITTER_CASES = [(name, {}) for name in _EMITTERS] + [
    ("leaky_relu", {"alpha": 0.3}),
    ("elu", {"alpha": 0.5}),
    ("gelu", {"approximate": "tanh"}),
]


@pytest.mark.parametrize("opset", [DEFAULT_OPSET, GELU_OPSET])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "name,settings", EMITTER_CASES, ids=[f"{n}{list(s.values())}" for n, s in EMITTER_CASES]
)
def test_every_emitter_matches_torch(name, settings, dtype, opset):
    """The graph of each activation (native operators in float32, composed ones in
    float64) against PyTorch in float64, including large |x| (no overflow to NaN)."""
    torch = pytest.importorskip("torch")
    g = _Graph(onnx, np.dtype(dtype), opset)
    out = _EMITTERS[name](g, "X", {"name": name, **settings})
    if out == "X":
        out = g.op("Identity", out)
    g.nodes[-1].output[0] = "Y"
    elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    graph = onnx.helper.make_graph(
        g.nodes,
        "one",
        [onnx.helper.make_tensor_value_info("X", elem, ["N", 8])],
        [onnx.helper.make_tensor_value_info("Y", elem, ["N", 8])],
        initializer=g.initializers,
    )
    opsets = [onnx.helper.make_opsetid("", opset)]
    model = onnx.helper.make_model(graph, opset_imports=opsets)
    model.ir_version = onnx.helper.find_min_ir_version_for(opsets)
    onnx.checker.check_model(model, full_check=True)
    x = np.linspace(-6.0, 6.0, 8 * 8).reshape(8, 8)
    x[0] = [-200.0, -90.0, -30.0, -1e-4, 1e-4, 30.0, 90.0, 200.0]
    X = x.astype(dtype)
    Y = _run(model, X)
    expected = _torch_reference(name, settings)(torch.from_numpy(X.astype(np.float64))).numpy()
    assert np.all(np.isfinite(Y))
    erf32 = name == "gelu" and settings.get("approximate", "none") == "none"
    tol = 1e-6 if dtype == "float32" or erf32 else 1e-12
    np.testing.assert_allclose(Y, expected, rtol=tol, atol=tol)


# ------------------------------------------------------------ what is refused, and how


class _Scale(nnxp.Layer):
    """A layer export_onnx does not know."""

    def forward(self, X, *, training=False):
        return 2.0 * X


class _Mish(ActivationFunction):
    name = "mish"

    def forward(self, A, xp=None):
        return A


class _MyReLU(ReLU):
    """A subclass reusing a built-in name: it may compute something else."""


@pytest.mark.parametrize(
    "layers,named",
    [
        (lambda: [nnxp.Dense(3, 4, "relu"), _Scale()], r"layers\[1\] _Scale"),
        (lambda: [nnxp.Dense(3, 4, _Mish())], r"layers\[0\] Dense\(3 -> 4, mish\)"),
        (lambda: [nnxp.Dense(3, 4), nnxp.Activation(_MyReLU())], r"layers\[1\] Activation"),
    ],
    ids=["layer", "activation", "subclassed-activation"],
)
def test_unexportable_pieces_are_refused_by_name_before_any_file_is_written(
    layers, named, tmp_path
):
    net = nnxp.Sequential(layers())
    path = tmp_path / "net.onnx"
    with pytest.raises(ValueError, match=named) as info:
        export_onnx(net, path)
    message = str(info.value)
    assert "Dense, Activation, Dropout" in message
    for name in ("relu", "softmax", "leaky_relu"):
        assert name in message
    assert not path.exists()


@pytest.mark.parametrize("opset", [5, 12, 10_000, "17", 17.0, True])
def test_bad_opset(opset):
    net = nnxp.Sequential([nnxp.Dense(3, 2)])
    with pytest.raises(ValueError, match="opset must be an integer in"):
        export_onnx(net, _Sink(), opset=opset)


@pytest.mark.parametrize("shape", [(None, 4), (3,), (None, 0, 3), "N3", (None, 2.0, 3), 7])
def test_bad_input_shape(shape):
    net = nnxp.Sequential([nnxp.Dense(3, 2)])
    with pytest.raises(ValueError, match=r"input_shape .*\(None, 3\)"):
        export_onnx(net, _Sink(), input_shape=shape)


def test_not_a_network():
    with pytest.raises(TypeError, match="expects an nnxp.Sequential"):
        export_onnx(object(), _Sink())
    with pytest.raises(TypeError, match="got SimpleNamespace"):
        export_onnx(types.SimpleNamespace(network_=[1, 2]), _Sink())


# ------------------------------------------------------------ estimators


def test_any_object_holding_a_network_in_network_exports(rng):
    net = nnxp.Sequential([nnxp.Dense(4, 3, "softmax")], seed=5)
    model = export_onnx(types.SimpleNamespace(network_=net), _Sink())
    X = rng.standard_normal((5, 4)).astype("float32")
    np.testing.assert_allclose(_run(model, X), _nnxp_predict(net, X), rtol=1e-6, atol=1e-6)


@pytest.mark.filterwarnings("ignore:Stochastic Optimizer")  # 3 iterations do not converge
def test_fitted_scikit_learn_estimator_exports_its_network(rng, tmp_path):
    sklearn_mod = pytest.importorskip("nnxp.sklearn")
    est = sklearn_mod.NNXPClassifier(hidden_layer_sizes=(6,), random_state=0)
    with pytest.raises(ValueError, match="not fitted"):
        export_onnx(est, tmp_path / "a.onnx")
    iterations = {"max_iter": 3, "epochs": 3}
    est.set_params(**{k: v for k, v in iterations.items() if k in est.get_params()})
    X = rng.standard_normal((40, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    est.fit(X, y)
    model = export_onnx(est, tmp_path / "b.onnx")
    X32 = X.astype(est.network_.backend.dtype_name(est.network_.dtype))
    np.testing.assert_allclose(
        _run(model, X32), _nnxp_predict(est.network_, X32), rtol=1e-6, atol=1e-6
    )
    proba = np.asarray(est.predict_proba(X))
    np.testing.assert_allclose(_run(model, X32), proba, rtol=1e-5, atol=1e-5)
    # the estimator's own method writes the same graph
    assert est.export_onnx(tmp_path / "c.onnx") == model
    assert onnx.load(str(tmp_path / "c.onnx")) == model


# ------------------------------------------------------------ onnx stays optional


def test_import_nnxp_does_not_import_onnx():
    code = (
        "import sys, nnxp\n"
        "bad = [m for m in ('onnx', 'onnxruntime') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_missing_onnx_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` raise ImportError
    net = nnxp.Sequential([nnxp.Dense(3, 2)])
    with pytest.raises(ImportError, match=r'pip install "nnxp\[onnx\]"'):
        export_onnx(net, _Sink())
