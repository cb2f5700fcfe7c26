"""The check that every time lies in [0, 1], at once or deferred to the caller's next sync point.

Checking a GPU tensor's values on the host waits for the GPU to finish its queue; an operator
call checks its times, and a training step makes several such calls. Inside
``deferred_time_checks()`` each check only records its verdict on the device, and
``settle()`` (which the trainer calls where it reads the step's metrics anyway, and before
every checkpoint) raises the error the first bad check would have raised.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

import torch
from torch import Tensor

__all__ = ["check_time_range", "DeferredTimeChecks", "deferred_time_checks"]

_DEFERRED: ContextVar[DeferredTimeChecks | None] = ContextVar("softdiff_deferred_time_checks", default=None)


def check_time_range(t: Tensor) -> None:
    """Raise a ``ValueError`` unless every time is a number in [0, 1] (NaN included in the check).

    Inside :func:`deferred_time_checks` the verdict is recorded on ``t``'s device instead.
    """
    deferred = _DEFERRED.get()
    if deferred is not None:
        deferred.add(t)
        return
    if bool(_inside(t)):
        return
    raise ValueError(_message(t))


def _inside(t: Tensor) -> Tensor:
    return ((t >= 0) & (t <= 1)).all()


def _message(t: Tensor) -> str:
    if bool(torch.isnan(t).any()):
        return "t must lie in [0, 1], got NaN"
    return f"t must lie in [0, 1], got values from {t.min().item():.4g} to {t.max().item():.4g}"


class DeferredTimeChecks:
    """The verdicts of the checks made since the last :meth:`settle`, one flag per device (no host read)."""

    def __init__(self) -> None:
        self._bad: dict[torch.device, Tensor] = {}
        self._last: Tensor | None = None  # held, so a tensor at its address is a view of it, not a new one
        self._last_version = -1  # its version counter when it was checked (views share the counter)

    def add(self, t: Tensor) -> None:
        """Record whether ``t`` leaves [0, 1] (NaN does); the same times checked again are not re-checked."""
        t = t.detach()
        if self._last is not None and t._version == self._last_version and _same_layout(t, self._last):
            return  # a training step checks one t at every operator call: one check (4 kernels) is enough
        self._last, self._last_version = t, t._version
        bad = (t.clamp(0, 1) != t).any()  # NaN != NaN
        seen = self._bad.get(t.device)
        self._bad[t.device] = bad if seen is None else seen | bad

    def settle(self, where: str = "") -> None:
        """Raise the ``ValueError`` of a failed check since the last settle (``where`` says whose times)."""
        flags, self._bad = self._bad, {}
        if any(bool(flag) for flag in flags.values()):
            raise ValueError(f"t must lie in [0, 1], but {where or 'a call'} passed times outside it (or NaN)")

    @contextlib.contextmanager
    def active(self) -> Iterator[DeferredTimeChecks]:
        """Defer the checks made inside (in this thread or task) to this object."""
        token = _DEFERRED.set(self)
        try:
            yield self
        finally:
            _DEFERRED.reset(token)


def _same_layout(t: Tensor, last: Tensor) -> bool:
    """``t`` views ``last``'s memory in the same layout (then it holds the same values, unless written to)."""
    return (
        t.device == last.device
        and t.dtype == last.dtype
        and t.shape == last.shape
        and t.stride() == last.stride()
        and t.data_ptr() == last.data_ptr()
    )


def deferred_time_checks() -> contextlib.AbstractContextManager[DeferredTimeChecks]:
    """``with deferred_time_checks() as checks: ...; checks.settle()``: checks recorded, read later."""
    return DeferredTimeChecks().active()
