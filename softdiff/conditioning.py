"""Pass-through conditioning and classifier-free guidance for any linear corruption.

One optional argument, ``cond``, flows untouched from :func:`~softdiff.samplers.generate`
through the driver loop and every update rule to the denoiser and the network, as
k-diffusion's ``extra_args`` and EDM's ``class_labels`` do. It is a label tensor ``(B,)``
(class indices, :data:`NULL_CLASS` for "no class") or a small dict of per-row tensors
(``{"class": labels, ...}``). ``cond=None`` is the unconditional path: the denoiser is
then called as ``denoiser(x, t)``, exactly as before conditioning existed, so an
unconditional run samples the same images bit for bit.

**Guidance** (:class:`Guided`) extrapolates the denoiser's output ``x0_hat``:

    x0_w = x0_u + w (x0_c - x0_u)

``w = 0`` is the unconditional model, ``w = 1`` the conditional one, ``w > 1`` guidance.
``x0_hat`` is the quantity to extrapolate because every sampler here is written in it,
whatever ``C_t`` is, and because the score of any linear corruption,
``(C_t x0_hat - x_t) / s_t^2``, is affine in ``x0_hat``: extrapolating ``x0_hat`` is the
same as extrapolating the score (and, with ``C = I``, the noise prediction), which is
classifier-free guidance as Ho & Salimans define it. It also guides the part of ``x0_hat``
that ``C_t`` hides, which the samplers read when they apply ``C_t'`` with ``t' < t``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor

__all__ = [
    "Cond",
    "DenoiserFn",
    "NULL_CLASS",
    "call_denoiser",
    "cond_rows",
    "cond_length",
    "class_labels",
    "bind",
    "Guided",
    "check_guidance",
    "guided_calls",
    "DEFAULT_GUIDANCE",
    "resolve_classes",
]

Cond = Tensor | Mapping[str, Any] | None
# What samplers, objectives and restoration methods call: (x_t, t) -> x0_hat, and a conditional
# one also takes cond=. The one name for it; softdiff.score.Denoiser is the nn.Module that is one.
DenoiserFn = Callable[..., Tensor]
NULL_CLASS = -1  # the label of "no class": label dropout in training, the unconditional half of guidance
DEFAULT_GUIDANCE = 1.0  # the conditional model, unguided: the one default of sample, restore and Guided users


def call_denoiser(denoiser: DenoiserFn, x: Tensor, t: Tensor, cond: Cond = None) -> Tensor:
    """``denoiser(x, t)`` without conditioning (the unconditional contract), else ``denoiser(x, t, cond=cond)``."""
    return denoiser(x, t) if cond is None else denoiser(x, t, cond=cond)


def cond_rows(cond: Cond, rows: slice) -> Cond:
    """Rows ``rows`` of a per-row ``cond`` (a tensor, or every tensor value of a dict); other values stay."""
    if cond is None:
        return None
    if isinstance(cond, Tensor):
        return cond[rows]
    return {k: v[rows] if isinstance(v, Tensor) and v.ndim > 0 else v for k, v in cond.items()}


def cond_length(cond: Cond) -> int | None:
    """How many rows a ``cond`` holds (None when it has no per-row tensor)."""
    if cond is None:
        return None
    if isinstance(cond, Tensor):
        return int(cond.shape[0]) if cond.ndim else None
    lengths = {int(v.shape[0]) for v in cond.values() if isinstance(v, Tensor) and v.ndim}
    if len(lengths) > 1:
        raise ValueError(f"the tensors of a cond dict must share one number of rows, got {sorted(lengths)}")
    return lengths.pop() if lengths else None


def class_labels(cond: Cond) -> Tensor | None:
    """The class labels of ``cond``: the tensor itself, or its ``"class"`` entry (None if it has none)."""
    if cond is None:
        return None
    labels = cond if isinstance(cond, Tensor) else cond.get("class")
    if labels is None:
        return None
    if not isinstance(labels, Tensor) or labels.ndim != 1 or labels.is_floating_point():
        raise ValueError(f"class labels must be a 1-D integer tensor, got {labels!r:.80}")
    return labels


def bind(denoiser: Callable[..., Tensor], cond: Cond) -> Callable[..., Tensor]:
    """A ``(x, t)`` denoiser with ``cond`` fixed: for code that calls the plain contract (restoration methods)."""
    if cond is None:
        return denoiser

    def bound(x: Tensor, t: Tensor) -> Tensor:
        return denoiser(x, t, cond=cond)

    return bound


def check_guidance(scale: float) -> float:
    """A guidance weight: a finite number >= 0 (ValueError otherwise)."""
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not (math.isfinite(scale) and scale >= 0):
        raise ValueError(f"the guidance weight must be a finite number >= 0, got {scale!r}")
    return float(scale)


def guided_calls(scale: float) -> int:
    """Network evaluations per guided denoiser call: 1 at ``w = 0`` or ``w = 1`` (one model), else 2."""
    return 1 if check_guidance(scale) in (0.0, 1.0) else 2


class Guided:
    """Classifier-free guidance ``x0_u + w (x0_c - x0_u)`` of a denoiser trained with label dropout.

    ``x0_c = denoiser(x, t, cond=cond)`` and ``x0_u = denoiser(x, t, cond=uncond)`` (``uncond=None``:
    the plain ``denoiser(x, t)``, which a class-conditional U-Net reads as the null class).
    ``w = 0`` and ``w = 1`` make one call, any other weight two (:func:`guided_calls`), not
    batched, so each half sees the batch it would see alone. Without ``cond`` it is the
    unconditional denoiser whatever ``w``.
    """

    def __init__(self, denoiser: Callable[..., Tensor], scale: float, uncond: Cond = None) -> None:
        self.denoiser, self.scale, self.uncond = denoiser, check_guidance(scale), uncond

    def __call__(self, x: Tensor, t: Tensor, cond: Cond = None) -> Tensor:
        if cond is None or self.scale == 0:
            return call_denoiser(self.denoiser, x, t, self.uncond)
        conditional = self.denoiser(x, t, cond=cond)
        if self.scale == 1:
            return conditional
        unconditional = call_denoiser(self.denoiser, x, t, self.uncond)
        return unconditional + self.scale * (conditional - unconditional)

    def __repr__(self) -> str:
        return f"Guided(scale={self.scale})"


def resolve_classes(requested: list[str], classes: list[str] | None, what: str = "the run") -> list[int]:
    """Class indices for ``--class`` values: names or indices of ``classes``, ``all`` for every class, in order.

    ValueError, naming the known classes, for an unknown one, or when ``classes`` is None (unconditional).
    """
    if classes is None:
        raise ValueError(f"{what} is unconditional (trained without --cond class), so it takes no --class")
    known = ", ".join(f"{i}={name}" for i, name in enumerate(classes))
    out: list[int] = []
    for item in requested:
        item = item.strip()
        if item == "all":
            out.extend(range(len(classes)))
        elif item in classes:
            out.append(classes.index(item))
        elif item.isdigit() and int(item) < len(classes):
            out.append(int(item))
        else:
            raise ValueError(f"unknown class {item!r}; {what} has the classes {known} (or all)")
    return out
