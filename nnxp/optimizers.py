"""Optimizers whose steps match ``torch.optim.SGD``, ``Adam`` and ``AdamW`` step for step.

Every optimizer has two faces over one piece of arithmetic:

- **functional** (what a pure or compiled training step calls)::

      state = opt.init_state(params)                       # {"step": 0, "slots": [...]}
      params, state = opt.update(params, grads, state)     # new lists/dicts, nothing mutated

  ``params`` and ``grads`` are lists with one ``{name: array}`` dict per layer (what
  ``net.parameters()``/``net.gradients()`` give); ``state`` is a plain pytree (dict, lists,
  arrays and the step count as an int or a 0-d integer array), so ``jax.jit`` can trace it
  and immutable arrays (jax) work.
- **object** (``opt.step(params, grads)``, ``snapshot``, ``restore``, ``move``): a thin
  wrapper that keeps the state on the optimizer and writes the new arrays back into the
  layers' dicts. It updates in place where the array library allows (the same numbers, less
  allocation), which the functional form does only when asked (``inplace=True``).

State (momentum, moments) lives on the parameters' own backend and device; nothing is
copied to the host.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

from array_api_compat import array_namespace

from .backend import array_library, asarray

Array = Any
Params = list  # list of dict[str, Array], one dict per layer
State = dict  # {"step": int or 0-d int array, "slots": list[dict[str, dict[str, Array]]]}


def _check_number(
    name: str, value: Any, low: float, high: float = math.inf, *, high_open=True
) -> float:
    """``value`` as a float when it is a real number (Python or NumPy scalar) in range."""
    if (
        isinstance(value, bool)
        or type(value).__name__ in ("bool_", "bool")
        or not isinstance(value, numbers.Real)
        or math.isnan(value)
    ):
        raise ValueError(f"{name} must be a number, got {value!r}")
    number = float(value)
    above = number >= high if high_open else number > high
    if number < low or above:
        bracket = ")" if high_open else "]"
        raise ValueError(f"{name} must lie in [{low}, {high}{bracket}, got {value!r}")
    return number


_MUTABLE: dict[type, bool] = {}


def _mutable(p: Array) -> bool:
    """Whether in-place operators work on ``p`` (not on jax arrays), looked up once per
    array type."""
    kind = type(p)
    if kind not in _MUTABLE:
        _MUTABLE[kind] = array_library(p) != "jax"
    return _MUTABLE[kind]


def _first_array(params: Params) -> Array:
    """The first parameter array in ``params`` (None when there is none)."""
    for layer in params:
        for p in layer.values():
            return p
    return None


_NAMESPACES: dict[type, Any] = {}


def _namespace(p: Array) -> Any:
    """``array_namespace(p)``, looked up once per array type (the answer depends on the
    type alone, and the lookup is slow next to a small step's arithmetic)."""
    kind = type(p)
    if kind not in _NAMESPACES:
        _NAMESPACES[kind] = array_namespace(p)
    return _NAMESPACES[kind]


class Optimizer:
    """Base class. Subclasses define ``slot_names`` and :meth:`_update_one`."""

    slot_names: tuple[str, ...] = ()
    needs_namespace = True  # False: _update_one uses operators only (array_namespace is slow)

    def __init__(self, lr: float) -> None:
        self.lr = _check_number("lr", lr, 0.0)
        self.state: list[dict[str, dict[str, Array]]] | None = None
        self.steps = 0

    # ------------------------------------------------------------------ functional form
    def init_state(self, params: Params) -> State:
        """The state before the first step: step count 0 and zero slots shaped as ``params``.

        Parameters
        ----------
        params : list of dict of str to array

        Returns
        -------
        dict
            ``{"step": 0, "slots": [{name: {slot: zeros_like(p)}}]}`` (slots are empty
            dicts for an optimizer without state, e.g. SGD without momentum).
        """
        names = self.slot_names
        return {
            "step": 0,
            "slots": [
                {k: {n: _zeros_like(p) for n in names} for k, p in layer.items()}
                for layer in params
            ],
        }

    def update(
        self, params: Params, grads: Params, state: State, *, inplace: bool = False
    ) -> tuple[Params, State]:
        """One step: the new parameters and state; the inputs are left untouched (unless
        ``inplace``).

        Parameters
        ----------
        params : list of dict of str to array
            One dict per layer.
        grads : list of dict of str to array
            Same layout; a parameter without a gradient is carried over unchanged.
        state : dict
            From :meth:`init_state` or a previous :meth:`update`.
        inplace : bool
            Where the library allows (not on jax), write into ``params``, the state and
            their arrays and return them: the same numbers, no copies; for callers that own
            those arrays and dicts.

        Returns
        -------
        params, state
            New lists and dicts with new arrays (with ``inplace``, on a mutable library:
            ``params`` and the state's slots themselves, updated).
        """
        t = state["step"] + 1
        coefficients = self._coefficients(t)
        update_one = self._update_one
        first = _first_array(params)
        if first is None:
            return [dict(layer) for layer in params], {"step": t, "slots": state["slots"]}
        xp = _namespace(first) if self.needs_namespace else False
        if inplace and _mutable(first):  # the dicts given are written too: nothing is copied
            for layer, layer_grads, layer_slots in zip(params, grads, state["slots"]):
                for name, g in layer_grads.items():
                    layer[name], layer_slots[name] = update_one(
                        layer[name], g, layer_slots[name], t, coefficients, True, xp
                    )
            return params, {"step": t, "slots": state["slots"]}
        new_params, new_slots = [], []
        for layer, layer_grads, layer_slots in zip(params, grads, state["slots"]):
            new_layer, new_layer_slots = dict(layer), dict(layer_slots)
            for name, g in layer_grads.items():
                new_layer[name], new_layer_slots[name] = update_one(
                    layer[name], g, layer_slots[name], t, coefficients, False, xp
                )
            new_params.append(new_layer)
            new_slots.append(new_layer_slots)
        return new_params, {"step": t, "slots": new_slots}

    def _coefficients(self, t: Any) -> Any:
        """Per-step numbers shared by every parameter (Adam's bias corrections)."""
        return None

    def _update_one(
        self, p: Array, g: Array, slots: dict, t: Any, coefficients: Any, inplace: bool, xp: Any
    ) -> tuple[Array, dict]:
        raise NotImplementedError

    # ------------------------------------------------------------------ object API
    def step(self, params: Params, grads: Params) -> None:
        """Update ``params`` (a list of dicts, changed in place) from ``grads``."""
        if self.state is None:
            slots = self.init_state(params)["slots"]
        else:
            slots = self.state
        new_params, new_state = self.update(
            params, grads, {"step": self.steps, "slots": slots}, inplace=True
        )
        for layer, layer_grads, new_layer in zip(params, grads, new_params):
            for name in layer_grads:
                layer[name] = new_layer[name]
        self.steps = new_state["step"]
        self.state = new_state["slots"] if self.slot_names else None

    def get_functional_state(self, params: Params) -> State:
        """This optimizer's state in the functional form (``init_state`` if it has none)."""
        if self.state is None:
            return {"step": self.steps, "slots": self.init_state(params)["slots"]}
        return {"step": self.steps, "slots": self.state}

    def set_functional_state(self, state: State) -> None:
        """Keep ``state`` (from :meth:`update`) as this optimizer's state; a 0-d step count
        array is read back to an int (once, outside any step)."""
        step = state["step"]
        self.steps = int(step)
        self.state = state["slots"] if self.slot_names else None

    def move(self, backend: Any) -> None:
        """Carry the state over to another backend (see ``Sequential.to_backend``)."""
        if self.state is not None:
            self.state = [
                {
                    k: {n: asarray(a, backend=backend) for n, a in s.items()}
                    for k, s in layer.items()
                }
                for layer in self.state
            ]

    def snapshot(self) -> tuple:
        """A copy of the state (on the device) for :meth:`restore`."""
        return self.steps, _copy_state(self.state)

    def restore(self, snapshot: tuple) -> None:
        """Return to a :meth:`snapshot` (copied again, so it can be restored twice)."""
        self.steps, state = snapshot
        self.state = _copy_state(state)

    def get_config(self) -> dict:
        """The hyperparameters that rebuild this optimizer."""
        raise NotImplementedError

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "type")
        return f"{type(self).__name__}({settings})"


def _copy_state(state: list | None) -> list | None:
    if state is None:
        return None
    return [
        {
            k: {
                n: a if not _mutable(a) else _namespace(a).asarray(a, copy=True)
                for n, a in s.items()
            }
            for k, s in layer.items()
        }
        for layer in state
    ]


def _zeros_like(p: Array) -> Array:
    # ``p * 0`` would carry NaN/inf along; ``zeros_like`` is the standard's, on p's device
    return _namespace(p).zeros_like(p)


class SGD(Optimizer):
    """Stochastic gradient descent, as ``torch.optim.SGD`` (dampening 0)::

        g = grad + weight_decay * p
        buf = momentum * buf + g                    (buf starts at g)
        g = g + momentum * buf if nesterov else buf
        p -= lr * g

    Parameters
    ----------
    lr : float >= 0
    momentum : float in [0, 1)
    nesterov : bool
        Needs ``momentum > 0``.
    weight_decay : float >= 0
        L2 penalty added to the gradient.
    """

    def __init__(
        self,
        lr: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(lr)
        self.momentum = _check_number("momentum", momentum, 0.0, 1.0)
        self.weight_decay = _check_number("weight_decay", weight_decay, 0.0)
        if nesterov and self.momentum == 0.0:
            raise ValueError("nesterov momentum needs momentum > 0")
        self.nesterov = bool(nesterov)
        self.slot_names = ("momentum_buffer",) if self.momentum else ()
        self.needs_namespace = False

    def update(
        self, params: Params, grads: Params, state: State, *, inplace: bool = False
    ) -> tuple[Params, State]:
        """As :meth:`Optimizer.update`; plain SGD in place (no momentum, no weight decay)
        runs ``p -= lr * g`` inline: on a small network a call per parameter is a
        measurable part of the step."""
        if inplace and not (self.momentum or self.weight_decay):
            first = _first_array(params)
            if first is not None and _mutable(first):
                lr = self.lr
                for layer, layer_grads in zip(params, grads):
                    for name, g in layer_grads.items():
                        layer[name] -= lr * g
                return params, {"step": state["step"] + 1, "slots": state["slots"]}
        return super().update(params, grads, state, inplace=inplace)

    def _update_one(self, p, g, slots, t, coefficients, inplace, xp):
        lr, mu, wd = self.lr, self.momentum, self.weight_decay
        if wd:
            g = g + wd * p
        if mu:
            buf = slots["momentum_buffer"]
            if inplace:
                buf *= mu  # zero at the first step, so buf becomes g as in PyTorch
                buf += g
            else:
                buf = buf * mu + g
            slots = {"momentum_buffer": buf}
            g = g + mu * buf if self.nesterov else buf
        if inplace:
            p -= lr * g
            return p, slots
        return p - lr * g, slots

    def get_config(self) -> dict:
        return {
            "type": "SGD",
            "lr": self.lr,
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
        }


class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam``; with ``decoupled=True``, AdamW as ``torch.optim.AdamW``::

        p *= 1 - lr * weight_decay                  (decoupled)
        g = grad + weight_decay * p                 (not decoupled)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    The bias corrections are Python floats (float64) when the step count ``t`` is an int,
    as in PyTorch; inside a compiled step, where ``t`` is a 0-d array, they are computed on
    the device in the parameters' dtype.

    Parameters
    ----------
    lr : float >= 0
    betas : (float, float), each in [0, 1)
    eps : float >= 0
    weight_decay : float >= 0
    decoupled : bool
    """

    slot_names = ("exp_avg", "exp_avg_sq")

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled: bool = False,
    ) -> None:
        super().__init__(lr)
        try:
            pair = None if isinstance(betas, (str, bytes)) else tuple(betas)
        except TypeError:
            pair = None
        if pair is None or len(pair) != 2:
            raise ValueError(f"betas must be a pair of numbers in [0, 1), got {betas!r}")
        self.betas = (
            _check_number("betas[0]", pair[0], 0.0, 1.0),
            _check_number("betas[1]", pair[1], 0.0, 1.0),
        )
        self.eps = _check_number("eps", eps, 0.0)
        self.weight_decay = _check_number("weight_decay", weight_decay, 0.0)
        self.decoupled = bool(decoupled)

    def _coefficients(self, t):
        b1, b2 = self.betas
        if isinstance(t, numbers.Integral):
            t = int(t)
            return self.lr / (1.0 - b1**t), math.sqrt(1.0 - b2**t), None
        return None, None, t  # computed per dtype in _update_one (a traced step count)

    def _update_one(self, p, g, slots, t, coefficients, inplace, xp):
        lr, (b1, b2), eps, wd = self.lr, self.betas, self.eps, self.weight_decay
        step_size, root_bc2, traced_t = coefficients
        if traced_t is not None:
            tf = xp.astype(traced_t, p.dtype)
            step_size = lr / (1.0 - b1**tf)
            root_bc2 = xp.sqrt(1.0 - b2**tf)
        if wd and self.decoupled:
            if inplace:
                p *= 1.0 - lr * wd
            else:
                p = p * (1.0 - lr * wd)
        elif wd:
            g = g + wd * p
        m, v = slots["exp_avg"], slots["exp_avg_sq"]
        if inplace:
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * (g * g)
            p -= step_size * (m / (xp.sqrt(v) / root_bc2 + eps))
            return p, {"exp_avg": m, "exp_avg_sq": v}
        m = m * b1 + (1.0 - b1) * g
        v = v * b2 + (1.0 - b2) * (g * g)
        p = p - step_size * (m / (xp.sqrt(v) / root_bc2 + eps))
        return p, {"exp_avg": m, "exp_avg_sq": v}

    def get_config(self) -> dict:
        return {
            "type": "Adam",
            "lr": self.lr,
            "betas": list(self.betas),
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "decoupled": self.decoupled,
        }


def AdamW(
    lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2
) -> Adam:
    """AdamW (decoupled weight decay), PyTorch's defaults: ``Adam(..., decoupled=True)``."""
    return Adam(lr, betas, eps, weight_decay, decoupled=True)


OPTIMIZERS: dict[str, Callable[..., Optimizer]] = {"sgd": SGD, "adam": Adam, "adamw": AdamW}


def optimizer_from_config(config: dict) -> Optimizer:
    """Rebuild an optimizer (no state) from :meth:`Optimizer.get_config`."""
    settings = dict(config)
    kind = settings.pop("type", None)
    classes = {"SGD": SGD, "Adam": Adam}
    if kind not in classes:
        raise ValueError(f"unknown optimizer type {kind!r}; valid types are {', '.join(classes)}")
    if "betas" in settings:
        settings["betas"] = tuple(settings["betas"])
    return classes[kind](**settings)


def get_optimizer(optimizer: str | Optimizer, lr: float | None = None) -> Optimizer:
    """Resolve ``"sgd"``, ``"adam"``, ``"adamw"`` (default hyperparameters, or ``lr``) or pass
    an Optimizer instance through."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if optimizer not in OPTIMIZERS:
        raise ValueError(
            f"unknown optimizer {optimizer!r}; valid names are {', '.join(OPTIMIZERS)}"
        )
    return OPTIMIZERS[optimizer]() if lr is None else OPTIMIZERS[optimizer](lr=lr)
