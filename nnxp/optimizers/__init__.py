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

from collections.abc import Callable

from .adam import Adam, AdamW
from .base import Optimizer, Params, State
from .sgd import SGD

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "Optimizer",
    "Params",
    "State",
    "get_optimizer",
    "optimizer_from_config",
]


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
