"""Collective input checks: before training every rank checks its own input and options, then
one ``allgather`` tells every rank whether any rank refused its input or the ranks disagree
(feature shape, dtypes, network, options), so that all of them raise the same error or none.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from ..training import EarlyStopping, _early_stopping


def _positive_int(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _describe(x: Any) -> Any:
    """What must agree between the ranks about an array: its shape past the rows, its dtype."""
    shape = getattr(x, "shape", None)
    if shape is None:
        return type(x).__name__
    return (tuple(int(s) for s in shape[1:]), str(x.dtype).rsplit(".", 1)[-1])


def _network_fact(net: Any) -> str:
    layers = json.dumps(net.get_config()["layers"], sort_keys=True)
    return f"{net!r} (layer configs {hashlib.sha1(layers.encode()).hexdigest()[:10]})"


def _agree(comm: Any, local_error: BaseException | None, facts: dict) -> None:
    """Allgather each rank's error and facts; raise on every rank when any rank failed or a
    fact differs between ranks."""
    message = None if local_error is None else f"{type(local_error).__name__}: {local_error}"
    gathered = comm.allgather((message, facts))
    if local_error is not None:
        raise local_error
    failed = [(r, m) for r, (m, _) in enumerate(gathered) if m is not None]
    if failed:
        raise ValueError(
            f"nnxp.distributed.fit: rank {failed[0][0]} refused its input ({failed[0][1]})"
        )
    for key in facts:
        values = [f[key] for _, f in gathered]
        if any(v != values[0] for v in values):
            listing = ", ".join(f"rank {r}: {v!r}" for r, v in enumerate(values))
            raise ValueError(
                f"nnxp.distributed.fit: every rank must have the same {key}; {listing}"
            )


def _resolve_early_stopping(option: Any, keys: list[str]) -> EarlyStopping | None:
    """``early_stopping=`` as single-process ``fit`` reads it; its monitor must be in ``keys``."""
    option = _early_stopping(option, "val_loss" in keys)
    if option is not None and option.monitor not in keys:
        raise ValueError(
            f"early_stopping monitors {option.monitor!r}, which this fit never records: its "
            f"history holds {keys}"
        )
    return option
