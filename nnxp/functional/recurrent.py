"""Recurrent kernels: SimpleRNN, GRU and LSTM over a batch of sequences, with exact
backpropagation through time.

Parameters follow PyTorch's single-layer ``nn.RNN``/``nn.GRU``/``nn.LSTM`` (``batch_first``)::

    W_ih (G*U, F)   W_hh (G*U, U)   b_ih (G*U,)   b_hh (G*U,)

with ``G`` = 1 (SimpleRNN), 3 (GRU: gates r, z, n) or 4 (LSTM: gates i, f, g, o), ``U``
units and ``F`` input features. The GRU is PyTorch's: ``n = tanh(W_in x + b_in + r * (W_hn h
+ b_hn))`` and ``h' = (1 - z) * n + z * h``.

A ``mask`` (bool ``(N, T)``, True for real steps) carries the state over padded steps: the
state after the last real step is the final state, and the per-step outputs are zero at
padded steps (as PyTorch's packed sequences give them). The input projection of every step
is one matrix product before the loop; the loop does one ``(N, U) @ (U, G*U)`` product per
step, forward and backward, and the weight gradients are again one product each after it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from array_api_compat import array_namespace
from array_api_compat import device as array_device

from .activations import get_activation

Array = Any

GATES = {"rnn": 1, "gru": 3, "lstm": 4}


class RecurrentCache(NamedTuple):
    """What :func:`recurrent_backward` needs from :func:`recurrent_forward`."""

    kind: str
    X: Array  # (N, T, F)
    W_ih: Array
    W_hh: Array
    H_prev: Array  # (N, T, U): the state entering each step
    steps: list  # per-step values of the cell (see the cells)
    mask: Array  # (N, T) bool or None
    activation: Any  # SimpleRNN only


def _fold(A: Array, xp: Any) -> Array:
    """``(N, T, K)`` -> ``(N*T, K)``."""
    return xp.reshape(A, (A.shape[0] * A.shape[1], A.shape[2]))


def _affine_time(X: Array, W: Array, b: Array, xp: Any) -> Array:
    """``X @ W.T + b`` for ``X`` of shape ``(N, T, F)``: one matrix product."""
    N, T = X.shape[0], X.shape[1]
    A = xp.matmul(_fold(X, xp), xp.matrix_transpose(W)) + b
    return xp.reshape(A, (N, T, W.shape[0]))


def _lstm_gate_constants(U: int, dtype: Any, device: Any, xp: Any) -> tuple[Array, Array]:
    """``scale``, ``shift`` so that ``tanh(scale * A) * scale' + shift`` gives the four gates
    with one ``tanh``: ``sigmoid(a) = 0.5 * tanh(0.5 * a) + 0.5`` for i, f, o; ``tanh`` for g."""
    half = xp.full((U,), 0.5, dtype=dtype, device=device)
    one = xp.ones((U,), dtype=dtype, device=device)
    zero = xp.zeros((U,), dtype=dtype, device=device)
    scale = xp.concat([half, half, one, half])
    shift = xp.concat([half, half, zero, half])
    return scale, shift


def recurrent_forward(
    kind: str,
    X: Array,
    W_ih: Array,
    W_hh: Array,
    b_ih: Array,
    b_hh: Array,
    *,
    mask: Array = None,
    activation: Any = "tanh",
    xp: Any = None,
) -> tuple[Array, Array, RecurrentCache]:
    """Run a recurrent layer over every step of ``X``.

    Parameters
    ----------
    kind : {"rnn", "gru", "lstm"}
    X : array of shape (N, T, F)
    W_ih : array of shape (G*U, F)
    W_hh : array of shape (G*U, U)
    b_ih, b_hh : arrays of shape (G*U,)
    mask : bool array of shape (N, T), optional
        True for real steps; the state is carried unchanged over the others.
    activation : str or ActivationFunction
        SimpleRNN only (PyTorch offers "tanh" and "relu").
    xp : namespace, optional

    Returns
    -------
    H : array of shape (N, T, U)
        The output of every step (zero at padded steps).
    h_last : array of shape (N, U)
        The state after the last real step.
    cache : RecurrentCache
    """
    xp = xp or array_namespace(X)
    N, T = X.shape[0], X.shape[1]
    U = W_hh.shape[1]
    dtype, device = X.dtype, array_device(X)
    act: Any = get_activation(activation) if kind == "rnn" else None
    if kind == "gru":
        Xp = _affine_time(X, W_ih, b_ih, xp)
    else:
        Xp = _affine_time(X, W_ih, b_ih + b_hh, xp)
    W_hh_T = xp.matrix_transpose(W_hh)
    h = xp.zeros((N, U), dtype=dtype, device=device)
    c = h
    if kind == "lstm":
        scale, shift = _lstm_gate_constants(U, dtype, device, xp)
    outputs, h_prev_list, steps = [], [], []
    for t in range(T):
        h_prev_list.append(h)
        A = Xp[:, t, :] + xp.matmul(h, W_hh_T)
        if kind == "rnn":
            h_new = act.forward(A, xp)
            steps.append(h_new)
        elif kind == "lstm":
            Tg = xp.tanh(A * scale)
            G = Tg * scale + shift  # i, f, g, o
            i, f, g, o = G[:, :U], G[:, U : 2 * U], G[:, 2 * U : 3 * U], G[:, 3 * U :]
            c_new = f * c + i * g
            tc = xp.tanh(c_new)
            h_new = o * tc
            steps.append((Tg, G, c, tc))
        else:
            Hp = xp.matmul(h, W_hh_T) + b_hh
            Xt = Xp[:, t, :]
            rz = 0.5 * xp.tanh(0.5 * (Xt[:, : 2 * U] + Hp[:, : 2 * U])) + 0.5
            r, z = rz[:, :U], rz[:, U:]
            hn = Hp[:, 2 * U :]
            n = xp.tanh(Xt[:, 2 * U :] + r * hn)
            h_new = (1.0 - z) * n + z * h
            steps.append((rz, n, hn))
        if mask is None:
            h = h_new
            outputs.append(h)
            if kind == "lstm":
                c = c_new
        else:
            m = mask[:, t : t + 1]
            h = xp.where(m, h_new, h)
            outputs.append(xp.where(m, h_new, 0.0))
            if kind == "lstm":
                c = xp.where(m, c_new, c)
    H = xp.stack(outputs, axis=1)
    H_prev = xp.stack(h_prev_list, axis=1)
    cache = RecurrentCache(kind, X, W_ih, W_hh, H_prev, steps, mask, act)
    return H, h, cache


def recurrent_backward(
    dH: Array, dh_last: Array, cache: RecurrentCache, *, need_dX: bool = True, xp: Any = None
) -> tuple[Array, Array, Array, Array, Array]:
    """Backpropagation through time for :func:`recurrent_forward`.

    Parameters
    ----------
    dH : array of shape (N, T, U) or None
        ``dE/dH`` for the per-step outputs (entries at padded steps are ignored).
    dh_last : array of shape (N, U) or None
        ``dE/dh_last`` for the final state.
    cache : RecurrentCache
    need_dX : bool
        When False, ``dX`` is None.

    Returns
    -------
    dX : array of shape (N, T, F) or None
    dW_ih : array of shape (G*U, F)
    dW_hh : array of shape (G*U, U)
    db_ih, db_hh : arrays of shape (G*U,)
    """
    kind, X, W_ih, W_hh, H_prev, steps, mask, act = cache
    xp = xp or array_namespace(X)
    N, T = X.shape[0], X.shape[1]
    U = W_hh.shape[1]
    dtype, device = X.dtype, array_device(X)
    dh = xp.zeros((N, U), dtype=dtype, device=device) if dh_last is None else dh_last
    dc = xp.zeros((N, U), dtype=dtype, device=device)
    if kind == "lstm":
        scale = _lstm_gate_constants(U, dtype, device, xp)[0]
        scale2 = scale * scale  # d gate / d tanh-argument: 1/4 for sigmoid gates, 1 for g
    dXp_list: list = [None] * T
    dHp_list: list = [None] * T
    for t in range(T - 1, -1, -1):
        if mask is not None:  # padded step: output 0, state carried unchanged
            m = mask[:, t : t + 1]
            dh_new = xp.where(m, dh if dH is None else dh + dH[:, t, :], 0.0)
            dh_keep = xp.where(m, 0.0, dh)
        else:
            dh_new = dh if dH is None else dh + dH[:, t, :]
        h_prev = H_prev[:, t, :]
        if kind == "rnn":
            dA = act.backward(steps[t], dh_new, xp)
            dXp_list[t] = dA
            dh_prev = xp.matmul(dA, W_hh)
        elif kind == "lstm":
            Tg, G, c_prev, tc = steps[t]
            i, f, g, o = G[:, :U], G[:, U : 2 * U], G[:, 2 * U : 3 * U], G[:, 3 * U :]
            if mask is not None:
                dc_new = xp.where(m, dc, 0.0)
                dc_keep = xp.where(m, 0.0, dc)
            else:
                dc_new = dc
            dc_new = dc_new + dh_new * o * (1.0 - tc * tc)
            dG = xp.concat([dc_new * g, dc_new * c_prev, dc_new * i, dh_new * tc], axis=1)
            dA = dG * scale2 * (1.0 - Tg * Tg)
            dXp_list[t] = dA
            dh_prev = xp.matmul(dA, W_hh)
            dc = dc_new * f
            if mask is not None:
                dc = dc + dc_keep
        else:
            rz, n, hn = steps[t]
            r, z = rz[:, :U], rz[:, U:]
            dn = dh_new * (1.0 - z)
            dz = dh_new * (h_prev - n)
            dan = dn * (1.0 - n * n)
            drz = xp.concat([dan * hn, dz], axis=1) * rz * (1.0 - rz)
            dXp_list[t] = xp.concat([drz, dan], axis=1)
            dHp = xp.concat([drz, dan * r], axis=1)
            dHp_list[t] = dHp
            dh_prev = xp.matmul(dHp, W_hh) + dh_new * z
        dh = dh_prev + dh_keep if mask is not None else dh_prev
    dXp = _fold(xp.stack(dXp_list, axis=1), xp)  # (N*T, G*U)
    dHp = dXp if kind != "gru" else _fold(xp.stack(dHp_list, axis=1), xp)
    dW_ih = xp.matmul(xp.matrix_transpose(dXp), _fold(X, xp))
    dW_hh = xp.matmul(xp.matrix_transpose(dHp), _fold(H_prev, xp))
    db_ih = xp.sum(dXp, axis=0)
    db_hh = xp.sum(dHp, axis=0) if kind == "gru" else db_ih
    dX = None
    if need_dX:
        dX = xp.reshape(xp.matmul(dXp, W_ih), (N, T, W_ih.shape[1]))
    return dX, dW_ih, dW_hh, db_ih, db_hh
