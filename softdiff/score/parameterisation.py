"""Network parameterisations of the denoiser ``h_theta(x_t, t) ~ x_0`` and the score it implies.

The network is any ``nn.Module`` called as ``net(x_t, t)`` with ``t`` of shape ``(B,)``.
``"residual"`` (the paper's choice, it stabilises training) predicts a correction,
``h = x_t + net(x_t, t)``; ``"x0"`` predicts the clean image directly, ``h = net(x_t, t)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

from ..corrupt import CorruptionProcess

__all__ = ["Denoiser", "score_from_denoiser", "Parameterisation", "PARAMETERISATIONS"]

Parameterisation = Literal["residual", "x0"]
PARAMETERISATIONS: tuple[str, ...] = ("residual", "x0")
DenoiserFn = Callable[[Tensor, Tensor], Tensor]


class Denoiser(nn.Module):
    """``forward(x_t, t) -> x0_hat`` built from a network and a parameterisation.

    ``autocast`` (e.g. ``torch.bfloat16``) runs only the network in reduced precision;
    the residual sum, the operator and the loss stay in the input's precision, which
    matters because the noise at small t (``s_t ~ 0.01``) is below bf16's resolution.
    """

    def __init__(
        self,
        net: nn.Module,
        process: CorruptionProcess,
        parameterisation: Parameterisation = "residual",
        autocast: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if parameterisation not in PARAMETERISATIONS:
            raise ValueError(
                f"unknown parameterisation {parameterisation!r}; choose one of {', '.join(PARAMETERISATIONS)}"
            )
        self.net = net
        self.process = process
        self.parameterisation = parameterisation
        self.autocast = autocast

    def forward(self, x_t: Tensor, t: Tensor) -> Tensor:
        t = _as_batch_time(t, x_t)
        if self.autocast is not None:
            with torch.autocast(x_t.device.type, dtype=self.autocast):
                out = self.net(x_t, t)
            out = out.to(x_t.dtype)
        else:
            out = self.net(x_t, t)
        if out.shape != x_t.shape:
            raise ValueError(f"the network returned shape {tuple(out.shape)} for an input of shape {tuple(x_t.shape)}")
        return x_t + out if self.parameterisation == "residual" else out

    def extra_repr(self) -> str:
        return f"parameterisation={self.parameterisation!r}"


def _as_batch_time(t: Tensor | float, x: Tensor) -> Tensor:
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    return t.expand(x.shape[0]) if t.ndim == 0 else t


def score_from_denoiser(denoiser: DenoiserFn, process: CorruptionProcess) -> DenoiserFn:
    """The score estimate ``(C_t h(x_t, t) - x_t) / s_t^2`` of any denoiser (Soft Diffusion eq. 3.3)."""

    def score(x_t: Tensor, t: Tensor | float) -> Tensor:
        t = _as_batch_time(t, x_t)
        s2 = process.s(t).to(x_t.dtype)[:, None, None, None] ** 2
        return (process.C(denoiser(x_t, t), t) - x_t) / s2

    return score
