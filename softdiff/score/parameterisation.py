"""The denoiser ``D(x_t, t) ~ x_0`` built from a network and a preconditioning, and the score it implies.

The network is any ``nn.Module`` called as ``net(x_t, t)`` with ``t`` of shape ``(B,)``
(``net(x_t, t, cond=cond)`` when the denoiser is given a ``cond``, :mod:`softdiff.conditioning`).
How its input is scaled and its output combined with ``x_t`` is the *parameterisation*
(:mod:`softdiff.score.precondition`): ``"residual"`` (the paper's, ``D = x_t + net``),
``"x0"`` (``D = net``), or EDM's preconditioning generalised to the process, ``"precond"``
(scalar, any operator) and ``"precond_dct"`` (per DCT frequency, for the heat blur).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..conditioning import Cond, DenoiserFn, call_denoiser
from ..corrupt import CorruptionProcess
from .precondition import (
    DEFAULT_PARAMETERISATION,
    PARAMETERISATIONS,
    DataStatistics,
    Parameterisation,
    build_preconditioning,
)

__all__ = ["Denoiser", "score_from_denoiser", "Parameterisation", "PARAMETERISATIONS"]


class Denoiser(nn.Module):
    """``forward(x_t, t) -> x0_hat = mean + skip(x~) + out(net(c_in x~, t))``, ``x~ = x_t - C_t mean``.

    ``stats`` (data statistics under the process) is needed by the ``precond`` forms. Left
    unset, ``parameterisation`` is the run's default (``precond``) given ``stats`` and the
    paper's ``residual`` without them (nothing to precondition with).
    ``autocast`` (e.g. ``torch.bfloat16``) runs only the network in reduced precision;
    the preconditioning, the operator and the loss stay in the input's precision, which
    matters because the noise at small t (``s_t ~ 0.01``) is below bf16's resolution.
    """

    def __init__(
        self,
        net: nn.Module,
        process: CorruptionProcess,
        parameterisation: Parameterisation | None = None,
        autocast: torch.dtype | None = None,
        stats: DataStatistics | None = None,
    ) -> None:
        super().__init__()
        if parameterisation is None:
            parameterisation = DEFAULT_PARAMETERISATION if stats is not None else "residual"
        self.net = net
        self.process = process
        self.parameterisation = parameterisation
        self.precond = build_preconditioning(parameterisation, process, stats)
        self.autocast = autocast

    def forward(self, x_t: Tensor, t: Tensor, cond: Cond = None) -> Tensor:
        """``x0_hat``; ``cond`` goes untouched to the network (which is called without it when None)."""
        t = _as_batch_time(t, x_t)
        x = self.precond.centre(x_t, t)
        x_in = self.precond.c_in(x, t)[:, None, None, None] * x
        if self.autocast is not None:
            with torch.autocast(x_t.device.type, dtype=self.autocast):
                out = call_denoiser(self.net, x_in, t, cond)
            out = out.to(x_t.dtype)
        else:
            out = call_denoiser(self.net, x_in, t, cond)
        if out.shape != x_t.shape:
            raise ValueError(f"the network returned shape {tuple(out.shape)} for an input of shape {tuple(x_t.shape)}")
        return self.precond.combine(x, out, t)

    @torch.no_grad()
    def linear(self, x_t: Tensor, t: Tensor) -> Tensor:
        """The network-free denoiser (its output set to 0): the skip path alone.

        For ``precond`` this is the best linear estimate of ``x_0`` under the data statistics;
        it defines the loss scale ``L_0(t)`` of the ``normalised`` weighting.
        """
        t = _as_batch_time(t, x_t)
        x = self.precond.centre(x_t, t)
        return self.precond.combine(x, torch.zeros_like(x), t)

    def extra_repr(self) -> str:
        return f"parameterisation={self.parameterisation!r}"


def _as_batch_time(t: Tensor | float, x: Tensor) -> Tensor:
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    return t.expand(x.shape[0]) if t.ndim == 0 else t


def score_from_denoiser(denoiser: DenoiserFn, process: CorruptionProcess) -> DenoiserFn:
    """The score estimate ``(C_t h(x_t, t) - x_t) / s_t^2`` of any denoiser (Soft Diffusion eq. 3.3)."""

    def score(x_t: Tensor, t: Tensor | float, cond: Cond = None) -> Tensor:
        t = _as_batch_time(t, x_t)
        s2 = process.s(t).to(x_t.dtype)[:, None, None, None] ** 2
        return (process.C(call_denoiser(denoiser, x_t, t, cond), t) - x_t) / s2

    return score
