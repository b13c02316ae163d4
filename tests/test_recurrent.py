"""SimpleRNN, GRU, LSTM: central differences, PyTorch equality, padding, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from sequence_helpers import assert_gradients, build, host, lengths_mask

import nnxp
from nnxp.layers.recurrent import GRU, LSTM, SimpleRNN
from nnxp.layers.registry import layer_from_config

torch = pytest.importorskip("torch")

N, T, F, U = 3, 5, 4, 3
LENGTHS = [5, 3, 1]

CELLS = {
    "rnn_tanh": (lambda rs: SimpleRNN(F, U, "tanh", return_sequences=rs), torch.nn.RNN, {}),
    "rnn_relu": (
        lambda rs: SimpleRNN(F, U, "relu", return_sequences=rs),
        torch.nn.RNN,
        {"nonlinearity": "relu"},
    ),
    "gru": (lambda rs: GRU(F, U, return_sequences=rs), torch.nn.GRU, {}),
    "lstm": (lambda rs: LSTM(F, U, return_sequences=rs), torch.nn.LSTM, {}),
}


def _data(seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, T, F))


@pytest.mark.parametrize("masked", [False, True], ids=["full", "padded"])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "seq"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_central_differences(backend, cell, return_sequences, masked):
    layer = build(CELLS[cell][0](return_sequences))
    if cell == "rnn_relu":  # keep pre-activations away from the kink at 0
        layer.params["b_ih"] = nnxp.asarray(np.full(U, 0.7), dtype="float64")
    X = nnxp.asarray(_data(), dtype="float64")
    mask = lengths_mask(LENGTHS, T) if masked else None
    assert_gradients(layer, X, mask)


def _torch_pair(cell, return_sequences):
    make, module, kwargs = CELLS[cell]
    torch.manual_seed(0)
    ref = module(F, U, batch_first=True, **kwargs).double()
    layer = build(make(return_sequences))
    for name, tname in (("W_ih", "weight_ih_l0"), ("W_hh", "weight_hh_l0")):
        layer.params[name] = nnxp.asarray(getattr(ref, tname).detach().numpy(), dtype="float64")
    for name, tname in (("b_ih", "bias_ih_l0"), ("b_hh", "bias_hh_l0")):
        layer.params[name] = nnxp.asarray(getattr(ref, tname).detach().numpy(), dtype="float64")
    return layer, ref


def _torch_run(ref, X, lengths, return_sequences, R):
    Xt = torch.tensor(X, requires_grad=True)
    if lengths is None:
        out, state = ref(Xt)
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            Xt, torch.tensor(lengths), batch_first=True, enforce_sorted=False
        )
        out, state = ref(packed)
        out = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)[0]
    h = state[0] if isinstance(state, tuple) else state
    Y = out if return_sequences else h[0]
    (Y * torch.tensor(R)).sum().backward()
    return Y.detach().numpy(), Xt.grad.numpy()


@pytest.mark.parametrize("masked", [False, True], ids=["full", "packed"])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "seq"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_equals_torch(backend, cell, return_sequences, masked):
    layer, ref = _torch_pair(cell, return_sequences)
    X = _data(2)
    lengths = LENGTHS if masked else None
    mask = lengths_mask(LENGTHS, T) if masked else None
    Y = layer.forward(nnxp.asarray(X, dtype="float64"), sequence_mask=mask)
    R = np.random.default_rng(3).standard_normal(tuple(Y.shape))
    dX = layer.backward(nnxp.asarray(R, dtype="float64"))
    Y_ref, dX_ref = _torch_run(ref, X, lengths, return_sequences, R)
    np.testing.assert_allclose(host(Y), Y_ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(host(dX), dX_ref, rtol=0, atol=1e-10)
    names = {"W_ih": "weight_ih_l0", "W_hh": "weight_hh_l0"}
    names.update({"b_ih": "bias_ih_l0", "b_hh": "bias_hh_l0"})
    for name, tname in names.items():
        np.testing.assert_allclose(
            host(layer.grads[name]), getattr(ref, tname).grad.numpy(), rtol=0, atol=1e-10
        )


@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "seq"])
@pytest.mark.parametrize("cell", ["rnn_tanh", "gru", "lstm"])
def test_padding_equals_one_by_one(backend, cell, return_sequences):
    """A padded batch gives the gradients of its sequences run alone, unpadded."""
    layer = build(CELLS[cell][0](return_sequences))
    X = _data(4)
    rng = np.random.default_rng(5)
    R = rng.standard_normal((N, T, U) if return_sequences else (N, U))
    Y = layer.forward(nnxp.asarray(X, dtype="float64"), sequence_mask=lengths_mask(LENGTHS, T))
    dX = host(layer.backward(nnxp.asarray(R, dtype="float64")))
    batch_grads = {k: host(g) for k, g in layer.grads.items()}
    Y = host(Y)
    sums = {k: 0.0 for k in batch_grads}
    for n, L in enumerate(LENGTHS):
        Yn = layer.forward(nnxp.asarray(X[n : n + 1, :L], dtype="float64"))
        Rn = R[n : n + 1, :L] if return_sequences else R[n : n + 1]
        dXn = host(layer.backward(nnxp.asarray(Rn, dtype="float64")))
        for k, g in layer.grads.items():
            sums[k] = sums[k] + host(g)
        expected_Y = host(Yn)[0]
        if return_sequences:
            np.testing.assert_allclose(Y[n, :L], expected_Y, atol=1e-12)
            assert np.all(Y[n, L:] == 0.0)
        else:
            np.testing.assert_allclose(Y[n], expected_Y, atol=1e-12)
        np.testing.assert_allclose(dX[n, :L], dXn[0], atol=1e-12)
        assert np.all(dX[n, L:] == 0.0)
    for k in batch_grads:
        np.testing.assert_allclose(batch_grads[k], sums[k], atol=1e-12)


@pytest.mark.parametrize("cls", [SimpleRNN, GRU, LSTM])
def test_bad_input_names_layer_and_keeps_state(backend, cls):
    layer = build(cls(F, U))
    X = nnxp.asarray(_data(), dtype="float64")
    layer.forward(X)
    R = nnxp.asarray(np.ones((N, U)), dtype="float64")
    layer.backward(R)
    before = {k: host(g) for k, g in layer.grads.items()}
    bad = [
        (nnxp.asarray(_data()[:, 0, :], dtype="float64"), None, ValueError),  # rank 2
        (nnxp.asarray(np.zeros((N, T, F + 1)), dtype="float64"), None, ValueError),
        (nnxp.asarray(_data(), dtype="float32"), None, TypeError),
        (X, lengths_mask([2, 2], T), ValueError),  # mask rows != N
        (X, nnxp.asarray(np.ones((N, T))), TypeError),  # float mask
    ]
    for data, mask, error in bad:
        with pytest.raises(error, match=cls.__name__):
            layer.forward(data, sequence_mask=mask)
    layer.backward(R)  # the cache of the good call is still there
    for k, g in layer.grads.items():
        np.testing.assert_array_equal(host(g), before[k])


def test_constructor_errors():
    with pytest.raises(ValueError, match="LSTM units"):
        LSTM(4, 0)
    with pytest.raises(ValueError, match="GRU n_inputs"):
        GRU(2.5, 3)
    with pytest.raises(ValueError, match="SimpleRNN activation"):
        SimpleRNN(3, 3, "softmax")


@pytest.mark.parametrize("cell", list(CELLS))
def test_config_round_trip_and_shapes(cell):
    layer = CELLS[cell][0](True)
    again = layer_from_config(layer.get_config())
    assert type(again) is type(layer) and again.get_config() == layer.get_config()
    assert layer.output_shape((None, 7, F)) == (None, 7, U)
    assert CELLS[cell][0](False).output_shape((2, 7, F)) == (2, U)
    assert layer.output_width(F) == U
    with pytest.raises(ValueError, match="expects"):
        layer.output_shape((None, F))
    with pytest.raises(ValueError, match="expects"):
        layer.output_width(F + 1)


def test_standalone_call_builds_from_host_seed(backend):
    X = nnxp.asarray(_data(), dtype="float64")
    a, b = LSTM(F, U), LSTM(F, U)
    np.testing.assert_array_equal(host(a(X)), host(b(X)))
    assert a.params["W_hh"].dtype == X.dtype
