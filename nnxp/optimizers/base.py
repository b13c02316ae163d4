"""The optimizer base class (functional ``init_state``/``update`` and the object API
over them) and the helpers every optimizer shares; see :mod:`nnxp.optimizers`."""

from __future__ import annotations

import math
import numbers
from typing import Any

from array_api_compat import array_namespace

from ..backend import array_library, asarray

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
