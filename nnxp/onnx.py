"""ONNX export: a ``Sequential`` of Dense, Activation and Dropout layers as an ONNX graph.

The graph is built with the ``onnx.helper`` API (extra ``nnxp[onnx]``); ``onnx`` is imported
only when :func:`export_onnx` runs, never by ``import nnxp``. The exported graph computes
:meth:`nnxp.Sequential.predict` (inference mode: dropout is the identity and is left out)::

    X [N, n_in] --Gemm(W, b, transB=1)--> activation --> ... --> Y [N, n_out]

Inputs with extra leading axes (``input_shape=(None, T, n_in)``) use ``MatMul`` with a
transposed weight initializer and ``Add``. The input is named ``"X"``, the output ``"Y"``;
the batch dimension is symbolic (``"N"``) and the dtype is the network's (float32 or
float64).

Activations map to the ONNX operator of the same meaning where one exists. onnxruntime's
CPU provider has no float64 kernel for LeakyRelu, Elu, Selu, Softplus, Softsign,
HardSigmoid, Erf and Gelu, so float64 networks get the same functions composed from
operators it runs in float64 (``Max``, ``Exp``, ``Log``, ``Where``, ...); the exact GELU's
``Erf`` runs in float32 there (a float32-accurate result).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .backend import to_numpy
from .functional import ACTIVATIONS
from .layers import Activation, Dense, Dropout
from .network import Sequential

DEFAULT_OPSET = 17
"""The default ONNX opset: run by onnxruntime 1.13+ and most other runtimes."""

MIN_OPSET = 13
"""The oldest opset exported (``Softmax`` over one axis, ``Clip`` with tensor bounds)."""

GELU_OPSET = 20
"""From this opset on, float32 GELU is the ``Gelu`` operator rather than composed."""

EXPORTABLE_LAYERS = ("Dense", "Activation", "Dropout")


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise ImportError(
            'nnxp.export_onnx needs the onnx package: pip install "nnxp[onnx]"'
        ) from exc
    return onnx


class _Graph:
    """Nodes and initializers under construction, with unique value names."""

    def __init__(self, onnx: Any, dtype: np.dtype, opset: int) -> None:
        self.onnx = onnx
        self.dtype = dtype
        self.opset = opset
        # onnxruntime's CPU provider runs every native operator used here in float32
        self.native = dtype == np.float32
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def tensor(self, name: str, value: Any) -> str:
        """An initializer of the graph's dtype."""
        array = np.ascontiguousarray(np.asarray(value, dtype=self.dtype))
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name=name))
        return name

    def const(self, value: float) -> str:
        """A scalar initializer (broadcasts against any tensor)."""
        return self.tensor(self.fresh("const"), value)

    def op(self, op_type: str, *inputs: str, hint: str = "", **attrs: Any) -> str:
        """Append one node with one output; return the output's name."""
        out = self.fresh(hint or op_type.lower())
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), [out], **attrs))
        return out


# ------------------------------------------------------------------------ activations
# One emitter per activation name: (graph, input value, activation config) -> output value.


def _leaky_relu(g: _Graph, x: str, cfg: dict) -> str:
    alpha = float(cfg.get("alpha", 0.01))
    if g.native:
        return g.op("LeakyRelu", x, alpha=alpha)
    return g.op("Max", x, g.op("Mul", x, g.const(alpha)))  # nnxp keeps 0 <= alpha < 1


def _elu_composed(g: _Graph, x: str, alpha: float) -> str:
    zero = g.const(0.0)
    negative = g.op("Sub", g.op("Exp", g.op("Min", x, zero)), g.const(1.0))
    return g.op("Where", g.op("Greater", x, zero), x, g.op("Mul", negative, g.const(alpha)))


def _elu(g: _Graph, x: str, cfg: dict) -> str:
    alpha = float(cfg.get("alpha", 1.0))
    return g.op("Elu", x, alpha=alpha) if g.native else _elu_composed(g, x, alpha)


# the self-normalising constants (torch.nn.SELU's; ONNX Selu's defaults round them to float32)
_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805


def _selu(g: _Graph, x: str, cfg: dict) -> str:
    alpha, scale = _SELU_ALPHA, _SELU_SCALE
    if g.native:
        return g.op("Selu", x, alpha=alpha, gamma=scale)
    return g.op("Mul", _elu_composed(g, x, alpha), g.const(scale))


def _softplus_of(g: _Graph, x: str) -> str:
    """``log(1 + exp(x))``."""
    if g.native:
        return g.op("Softplus", x)
    # max(x, 0) + log(1 + exp(-|x|)): nothing overflows
    tail = g.op("Exp", g.op("Neg", g.op("Abs", x)))
    return g.op("Add", g.op("Relu", x), g.op("Log", g.op("Add", tail, g.const(1.0))))


def _softsign(g: _Graph, x: str, cfg: dict) -> str:
    if g.native:
        return g.op("Softsign", x)
    return g.op("Div", x, g.op("Add", g.op("Abs", x), g.const(1.0)))


def _gelu(g: _Graph, x: str, cfg: dict) -> str:
    approximate = cfg.get("approximate", "none")  # "none" (erf) or "tanh", as torch
    if g.native and g.opset >= GELU_OPSET:
        return g.op("Gelu", x, approximate=approximate)
    half_x = g.op("Mul", x, g.const(0.5))
    if approximate == "tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = g.op("Mul", x, g.op("Mul", x, x))
        inner = g.op("Add", x, g.op("Mul", cube, g.const(0.044715)))
        core = g.op("Tanh", g.op("Mul", inner, g.const(float(np.sqrt(2.0 / np.pi)))))
    else:  # 0.5 x (1 + erf(x / sqrt(2)))
        scaled = g.op("Mul", x, g.const(float(1.0 / np.sqrt(2.0))))
        if g.native:
            core = g.op("Erf", scaled)
        else:  # no float64 Erf kernel in onnxruntime: erf in float32
            f32 = g.onnx.TensorProto.FLOAT
            f64 = g.onnx.TensorProto.DOUBLE
            core = g.op("Cast", g.op("Erf", g.op("Cast", scaled, to=f32)), to=f64)
    return g.op("Mul", half_x, g.op("Add", core, g.const(1.0)))


def _hard_sigmoid(g: _Graph, x: str, cfg: dict) -> str:
    # torch.nn.Hardsigmoid: clip(x / 6 + 1/2, 0, 1)
    alpha, beta = 1.0 / 6.0, 0.5
    if g.native:
        return g.op("HardSigmoid", x, alpha=alpha, beta=beta)
    line = g.op("Add", g.op("Mul", x, g.const(alpha)), g.const(beta))
    return g.op("Clip", line, g.const(0.0), g.const(1.0))


def _log_sigmoid(g: _Graph, x: str, cfg: dict) -> str:
    return g.op("Neg", _softplus_of(g, g.op("Neg", x)))  # log sigmoid(x) = -softplus(-x)


_EMITTERS: dict[str, Callable[[_Graph, str, dict], str]] = {
    "linear": lambda g, x, cfg: x,
    "sigmoid": lambda g, x, cfg: g.op("Sigmoid", x),
    "tanh": lambda g, x, cfg: g.op("Tanh", x),
    "relu": lambda g, x, cfg: g.op("Relu", x),
    "leaky_relu": _leaky_relu,
    "softmax": lambda g, x, cfg: g.op("Softmax", x, axis=-1),
    "elu": _elu,
    "selu": _selu,
    "softplus": lambda g, x, cfg: _softplus_of(g, x),
    "softsign": _softsign,
    "silu": lambda g, x, cfg: g.op("Mul", x, g.op("Sigmoid", x)),
    "swish": lambda g, x, cfg: g.op("Mul", x, g.op("Sigmoid", x)),
    "gelu": _gelu,
    "hard_sigmoid": _hard_sigmoid,
    "log_sigmoid": _log_sigmoid,
}


def exportable_activations() -> list[str]:
    """The activation names :func:`export_onnx` translates (those nnxp defines here)."""
    return [name for name in _EMITTERS if name in ACTIVATIONS]


def _what_exports() -> str:
    return (
        f"export_onnx handles {', '.join(EXPORTABLE_LAYERS)} layers with the activations "
        f"{', '.join(exportable_activations())}"
    )


def _check_activation(layer: Any) -> None:
    act = layer.activation
    name = getattr(act, "name", None)
    registered = ACTIVATIONS.get(name) if isinstance(name, str) else None
    # a subclass or a user activation reusing a built-in name may compute something else
    if name not in _EMITTERS or registered is None or type(act) is not registered:
        raise ValueError(
            f"{layer.label} cannot be exported to ONNX: activation {name!r} "
            f"({type(act).__name__}) has no ONNX translation; {_what_exports()}"
        )


def _check_exportable(net: Sequential) -> None:
    """Raise ValueError naming the first layer that cannot be exported."""
    for layer in net.layers:
        if type(layer) not in (Dense, Activation, Dropout):
            raise ValueError(
                f"{layer.label} cannot be exported to ONNX: layer type "
                f"{type(layer).__name__!r} has no ONNX translation; {_what_exports()}"
            )
        if isinstance(layer, (Dense, Activation)):
            _check_activation(layer)


# ------------------------------------------------------------------------ entry point


def _network_of(model: Any) -> Sequential:
    if isinstance(model, Sequential):
        return model
    net = getattr(model, "network_", None)
    if isinstance(net, Sequential):
        return net
    if hasattr(model, "get_params") and net is None:
        raise ValueError(
            f"export_onnx: this {type(model).__name__} is not fitted yet (no network_); "
            "call fit before exporting it"
        )
    raise TypeError(
        "export_onnx expects an nnxp.Sequential or a fitted nnxp estimator (an object whose "
        f"network_ is a Sequential), got {type(model).__name__}"
    )


def _check_opset(opset: Any, onnx: Any) -> int:
    if opset is None:
        return DEFAULT_OPSET
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise ValueError(
            f"export_onnx opset must be an integer in [{MIN_OPSET}, {newest}] (the installed "
            f"onnx {onnx.__version__} knows up to {newest}), got {opset!r}"
        )
    return opset


def _check_input_shape(input_shape: Any, n_inputs: int) -> tuple[int | None, ...]:
    if input_shape is None:
        return (None, n_inputs)
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = ()
    if (
        len(shape) < 2
        or not all(
            d is None or (isinstance(d, int) and not isinstance(d, bool) and d >= 1) for d in shape
        )
        or shape[-1] not in (None, n_inputs)
    ):
        raise ValueError(
            f"export_onnx input_shape must be a tuple of at least 2 entries, each a positive "
            f"integer or None, ending in the network's {n_inputs} inputs, e.g. "
            f"(None, {n_inputs}) or (None, None, {n_inputs}); got {input_shape!r}"
        )
    return (*shape[:-1], n_inputs)


def _dims(shape: tuple[int | None, ...]) -> list[int | str]:
    """Symbolic names for None: the first axis is ``N``, the others ``d1``, ``d2``, ..."""
    return [("N" if i == 0 else f"d{i}") if d is None else d for i, d in enumerate(shape)]


def _dense(g: _Graph, x: str, layer: Dense, index: int, rank: int) -> str:
    W = to_numpy(layer.params["W"])
    b = layer.params.get("b")
    prefix = f"layers.{index}"
    if rank == 2:  # Gemm: X @ W.T + b with W as stored, [n_out, n_in]
        inputs = [x, g.tensor(f"{prefix}.W", W)]
        if b is not None:
            inputs.append(g.tensor(f"{prefix}.b", to_numpy(b)))
        return g.op("Gemm", *inputs, hint=f"{prefix}.A", transB=1)
    # MatMul over the last axis (leading axes kept) with W.T, [n_in, n_out]
    out = g.op("MatMul", x, g.tensor(f"{prefix}.W_T", W.T), hint=f"{prefix}.XW")
    if b is not None:
        out = g.op("Add", out, g.tensor(f"{prefix}.b", to_numpy(b)), hint=f"{prefix}.A")
    return out


def build_onnx_model(model: Any, *, opset: int | None = None, input_shape: Any = None) -> Any:
    """The ONNX ``ModelProto`` of a network, checked with ``onnx.checker``; see
    :func:`export_onnx` for the parameters."""
    onnx = _import_onnx()
    net = _network_of(model)
    opset = _check_opset(opset, onnx)
    _check_exportable(net)
    dense = [layer for layer in net.layers if isinstance(layer, Dense)]
    if not dense:
        raise ValueError("export_onnx needs a network with a Dense layer (it sets the input width)")
    shape = _check_input_shape(input_shape, dense[0].n_inputs)

    dtype = np.dtype(net.backend.dtype_name(net.dtype))
    elem = onnx.helper.np_dtype_to_tensor_dtype(dtype)
    g = _Graph(onnx, dtype, opset)
    value = "X"
    for index, layer in enumerate(net.layers):
        if isinstance(layer, Dense):
            value = _dense(g, value, layer, index, len(shape))
        if isinstance(layer, (Dense, Activation)):
            act = layer.activation
            value = _EMITTERS[act.name](g, value, act.config())
        # Dropout: the identity in inference
    # the last node writes the output "Y" (a Sequential holds a Dense: there is one)
    last = g.nodes[-1]
    last.output[list(last.output).index(value)] = "Y"

    out_shape = (*shape[:-1], dense[-1].n_outputs)
    graph = onnx.helper.make_graph(
        g.nodes,
        "nnxp_sequential",
        [onnx.helper.make_tensor_value_info("X", elem, _dims(shape))],
        [onnx.helper.make_tensor_value_info("Y", elem, _dims(out_shape))],
        initializer=g.initializers,
        doc_string=repr(net),
    )
    opsets = [onnx.helper.make_opsetid("", opset)]
    proto = onnx.helper.make_model(graph, opset_imports=opsets, producer_name="nnxp")
    from . import __version__

    proto.producer_version = __version__
    # the oldest IR version that carries this opset: readable by the most runtimes
    proto.ir_version = onnx.helper.find_min_ir_version_for(opsets)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(
    model: Any, path: str | os.PathLike | Any, *, opset: int | None = None, input_shape: Any = None
) -> Any:
    """Write a network (or a fitted nnxp estimator's) as an ONNX model.

    Parameters
    ----------
    model : Sequential or fitted estimator
        A ``Sequential`` of ``Dense``, ``Activation`` and ``Dropout`` layers, or any object
        whose ``network_`` attribute is one (``NNXPClassifier``/``NNXPRegressor`` after
        ``fit``: the graph gives the network's output, class probabilities for a classifier).
    path : str, path-like or binary file object
        Where the ``.onnx`` file goes.
    opset : int, optional
        The ONNX opset (default :data:`DEFAULT_OPSET`, 17); from 20 on, float32 GELU is the
        ``Gelu`` operator.
    input_shape : tuple of (int or None), optional
        The shape of ``X``, None for a symbolic dimension: ``(None, n_inputs)`` by default
        (``Gemm``); ``(None, None, n_inputs)`` for ``(N, T, n_inputs)`` input (``MatMul`` +
        ``Add`` over the last axis).

    Returns
    -------
    onnx.ModelProto
        The model written (input ``"X"``, output ``"Y"``, the network's dtype).

    Raises
    ------
    ValueError
        A layer or activation with no ONNX translation (the message names it and lists what
        can be exported), a bad ``opset`` or ``input_shape``, or an unfitted estimator.
    TypeError
        ``model`` is neither a ``Sequential`` nor holds one in ``network_``.
    ImportError
        The ``onnx`` package is missing (``pip install "nnxp[onnx]"``).

    Examples
    --------
    >>> net = nnxp.Sequential([nnxp.Dense(4, 8, "relu"), nnxp.Dense(8, 3, "softmax")])
    >>> export_onnx(net, "net.onnx")                                   # doctest: +SKIP
    >>> session = onnxruntime.InferenceSession("net.onnx")             # doctest: +SKIP
    >>> P = session.run(["Y"], {"X": X.astype("float32")})[0]          # doctest: +SKIP
    """
    proto = build_onnx_model(model, opset=opset, input_shape=input_shape)
    data = proto.SerializeToString()
    if hasattr(path, "write"):
        path.write(data)
    else:
        _write_atomically(Path(os.fspath(path)), data)
    return proto


def _write_atomically(path: Path, data: bytes) -> None:
    """A temporary file in the target's folder renamed over it: an error mid-write leaves
    the previous file as it was."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
