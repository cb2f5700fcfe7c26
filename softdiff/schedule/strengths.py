"""Named strengths of a process at given times (blur sigma, mask fraction, noise s), for reports.

Each operator reports its own through ``strength(t)`` and ``strength_name``: there is no
dispatch on operator types here, so a user's operator shows up as soon as it has one.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..corrupt import CorruptionProcess

__all__ = ["level_strengths"]


def level_strengths(process: CorruptionProcess, times: Tensor | list[float]) -> dict[str, list[float]]:
    """Named strengths of the un-warped process at source times: blur sigma, mask fraction, noise s.

    Every operator of the chain whose ``strength(t)`` is not None contributes one, named by its
    ``strength_name`` (default: its class name in lower case); repeated names get ``_2``, ...
    """
    u = torch.as_tensor(times, dtype=torch.float64)
    out: dict[str, list[float]] = {}

    def put(name: str, values: Tensor) -> None:
        key, i = name, 2
        while key in out:
            key, i = f"{name}_{i}", i + 1
        out[key] = [float(v) for v in values]

    for part in process.operator.parts():  # in the order they are applied
        values = part.strength(u)
        if values is not None:
            put(part.strength_name or type(part).__name__.lower(), values)
    put("noise_s", process.noise(u))
    return out
