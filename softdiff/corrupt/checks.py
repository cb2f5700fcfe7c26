"""``check_operator``: the laws every ``C_t`` must obey, measured on random data or your images.

Soft score matching, the score ``(C_t h - x_t) / s_t^2`` and every sampler assume that
``C_t`` is linear, that ``adjoint`` is its transpose, that each sample sees its own ``t``
and nothing of the other samples, and that ``C_0`` is (close to) the identity. Breaking
any of these raises no error anywhere: training and sampling just go quietly wrong. So the
laws are measured here, each as a relative size that is ~1e-16 for a correct float64
operator and of order 1 for a broken one:

* **linearity**: ``|C(ax + by) - (a Cx + b Cy)| / (|a| |Cx| + |b| |Cy|)`` (whole batch, 2-norms);
* **adjointness**: ``|<Cx, y> - <x, C^T y>| / (|Cx| |y| + |x| |C^T y|)`` over the whole
  batch, which lies in [0, 1] by Cauchy-Schwarz;
* **adjoint = vjp**: ``|C^T y - vjp(y)| / |C^T y|``, the closed-form adjoint against the
  vector-Jacobian product of ``forward`` from ``torch.func`` (exactly ``C_t^T`` for a linear
  map; 0 when the operator has no closed form and uses the vjp itself);
* **per-sample t**: a batch against one sample at a time, forward and adjoint, relative
  2-norm: catches maps that use one ``t`` for the whole batch or mix samples;
* **C_0 = I**: ``max |C_0 x - x| / max |x|`` and the same for ``C_0^T``;
* **shape/dtype/device** and **finite output** of both maps: these stop the check at once,
  since nothing else can be measured on a wrong shape or on NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .base import LinearCorruption
from .plugins import plugin_failure

__all__ = ["check_operator", "check_structure", "OperatorReport", "Law", "DEFAULT_TOLERANCES", "IDENTITY_TOLERANCE"]

DEFAULT_TOLERANCES: dict[torch.dtype, float] = {
    torch.float64: 1e-10,  # correct operators measure ~1e-16; the built-ins stay below 1e-13
    torch.float32: 1e-4,  # ~1e-7 per operation, summed over up to ~1e5 pixels
    torch.float16: 2e-2,
    torch.bfloat16: 2e-2,
}
# C_0 need only be close to I: the paper's blur starts at sigma = 0.01 px, which the exact
# (DCT) heat blur turns into a change of up to ~1e-3 of the largest pixel.
IDENTITY_TOLERANCE = 1e-2


@dataclass(frozen=True)
class Law:
    """One measured law: ``size`` (relative, see the module notes) against its tolerance."""

    name: str
    size: float
    tol: float
    measure: str

    @property
    def ok(self) -> bool:
        return self.size <= self.tol  # NaN is never ok


@dataclass(frozen=True)
class OperatorReport:
    """What :func:`check_operator` measured: one :class:`Law` per law, in a fixed order."""

    operator: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    device: str
    times: tuple[float, ...]
    closed_form_adjoint: bool
    laws: tuple[Law, ...]

    @property
    def ok(self) -> bool:
        return all(law.ok for law in self.laws)

    @property
    def failures(self) -> tuple[Law, ...]:
        return tuple(law for law in self.laws if not law.ok)

    def sizes(self) -> dict[str, float]:
        return {law.name: law.size for law in self.laws}

    def __getitem__(self, name: str) -> float:
        return self.sizes()[name]

    def raise_on_failure(self) -> OperatorReport:
        """Raise a one-line ``ValueError`` naming the first broken law and its size; else return self."""
        for law in self.failures:
            raise ValueError(_failure(self.operator, law, self.shape, self.dtype))
        return self

    def __str__(self) -> str:
        rows = [f"{law.name}: {law.size:.3g} (tol {law.tol:.1g}){'' if law.ok else '  FAILED'}" for law in self.laws]
        head = f"{self.operator} on {tuple(self.shape)} {str(self.dtype).removeprefix('torch.')} {self.device}"
        return head + "\n  " + "\n  ".join(rows)


def _failure(operator: str, law: Law, shape: Sequence[int], dtype: torch.dtype) -> str:
    where = f"{tuple(shape)} {str(dtype).removeprefix('torch.')}"
    return f"{operator} breaks {law.name}: {law.measure} is {law.size:.3g} > {law.tol:.1g} on {where}"


def _norm(a: Tensor) -> float:
    return float(a.double().norm())


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else (0.0 if num == 0 else math.inf)


def _describe(t: Tensor) -> str:
    return f"{tuple(t.shape)} {str(t.dtype).removeprefix('torch.')} on {t.device}"


_DTYPE_WORDS = ("dtype", "Double", "Float", "Half", "BFloat16", "device", "cuda", "scalar type")


def _apply(op: LinearCorruption, operator: str, name: str, x: Tensor, t: Tensor | float) -> Tensor:
    """``op.forward`` or ``op.adjoint`` of ``x``; an exception from the operator's code is a one-line law failure.

    A float64 constant used on float32 images raises a ``RuntimeError`` inside the
    operator: that is a broken shape/dtype/device law, reported as one.
    """
    try:
        return op(x, t) if name == "forward" else op.adjoint(x, t)
    except ValueError as err:  # the operator's own refusal of these images (desaturate on 5 channels)
        first = str(err).splitlines()[0] if str(err) else "ValueError"
        raise ValueError(f"{operator} refuses {tuple(x.shape)} images: {first}") from err
    except Exception as err:
        first = str(err).splitlines()[0] if str(err) else ""
        images = f"{tuple(x.shape)} {str(x.dtype).removeprefix('torch.')} images"
        if any(word in first for word in _DTYPE_WORDS):
            raise ValueError(
                f"{operator} breaks shape/dtype/device: {name} raised {type(err).__name__} on {images}: {first} "
                "(a constant of another dtype or device? build it with .to(x))"
            ) from err
        where = plugin_failure(err)  # a plugin's code: its class, file and line
        raise ValueError(where or f"{operator}: {name} raised {type(err).__name__} on {images}: {first}") from err


def _structure(operator: str, name: str, out: object, x: Tensor) -> None:
    """Shape, dtype and device preserved, every value finite; else a ``ValueError`` at once."""
    if not isinstance(out, Tensor):
        raise ValueError(f"{operator} breaks shape/dtype/device: {name} returned a {type(out).__name__}, not a tensor")
    if (out.shape, out.dtype, out.device) != (x.shape, x.dtype, x.device):
        raise ValueError(f"{operator} breaks shape/dtype/device: {name} maps {_describe(x)} to {_describe(out)}")
    bad = int((~torch.isfinite(out)).sum())
    if bad:
        raise ValueError(f"{operator} breaks finite output: {name} gives {bad} NaN/inf of {out.numel()} values")


def check_structure(op: LinearCorruption, x: Tensor) -> None:
    """The cheap part of :func:`check_operator`: forward and adjoint keep shape, dtype and device, and stay finite.

    Run on ``x`` (real images, or any batch) at times spread over ``[0, 1]``, before a command
    spends minutes on an operator that returns the wrong shape or NaN (a plugin, typically).
    """
    picks = torch.arange(3) % x.shape[0]
    x = x[picks]
    t = torch.linspace(0, 1, 3, dtype=torch.float64).to(x)
    name = _short(op)
    _structure(name, "forward", _apply(op, name, "forward", x, t), x)
    _structure(name, "adjoint", _apply(op, name, "adjoint", x, t), x)


def check_operator(
    op: LinearCorruption,
    shape: Sequence[int] | None = None,
    *,
    x: Tensor | None = None,
    y: Tensor | None = None,
    t: Tensor | Sequence[float] | None = None,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
    tol: float | None = None,
    identity_tol: float | None = IDENTITY_TOLERANCE,
    raise_on_failure: bool = True,
) -> OperatorReport:
    """Measure the operator laws of ``op`` (see the module notes) and raise on the first broken one.

    ``shape`` is ``(B, C, H, W)`` or ``(C, H, W)`` (then ``B = 4``); random ``x`` and ``y``
    are drawn from ``seed`` unless given (``x`` may be real images). ``t`` defaults to ``0``,
    ``1`` and random times, one per sample. ``dtype`` (default float64, or that of ``x``)
    picks the tolerance of :data:`DEFAULT_TOLERANCES` unless ``tol`` is given.
    ``identity_tol=None`` skips ``C_0 = I`` for operators that are not the identity at
    ``t = 0``. With ``raise_on_failure=False`` the report is returned either way (shape,
    dtype, device and NaN errors always raise: nothing else can be measured then).
    """
    if not isinstance(op, LinearCorruption):
        raise TypeError(f"check_operator needs a LinearCorruption, got {type(op).__name__}")
    g = torch.Generator().manual_seed(seed)
    x, y, t = _inputs(g, shape, x, y, t, dtype, device)
    if tol is None and x.dtype not in DEFAULT_TOLERANCES:
        raise ValueError(f"no default tolerance for {x.dtype}; pass tol=")
    tol = DEFAULT_TOLERANCES[x.dtype] if tol is None else float(tol)
    name = _short(op)

    cx = _apply(op, name, "forward", x, t)
    _structure(name, "forward", cx, x)  # before the adjoint, whose vjp would fail on a wrong shape
    cy, cty = _apply(op, name, "forward", y, t), _apply(op, name, "adjoint", y, t)
    _structure(name, "forward", cy, y)
    _structure(name, "adjoint", cty, y)
    laws = [
        Law("shape/dtype/device", 0.0, 0.0, "mismatches"),
        Law("finite output", 0.0, 0.0, "NaN/inf values"),
        _linearity(op, name, x, y, t, cx, cy, g, tol),
        _adjointness(x, y, cx, cty, tol),
        _closed_form_vs_vjp(op, name, y, t, cty, tol),
        _per_sample(op, x, y, t, cx, cty, tol),
    ]
    if identity_tol is not None:
        peak = float(x.abs().max())
        c0 = max(
            float((_apply(op, name, "forward", x, 0.0) - x).abs().max()),
            float((_apply(op, name, "adjoint", x, 0.0) - x).abs().max()),
        )
        laws.append(Law("C_0 = I", _ratio(c0, peak), float(identity_tol), "max|C_0 x - x| / max|x|"))
    report = OperatorReport(
        operator=name,
        shape=tuple(x.shape),
        dtype=x.dtype,
        device=str(x.device),
        times=tuple(float(v) for v in t),
        closed_form_adjoint=type(op).adjoint is not LinearCorruption.adjoint,
        laws=tuple(laws),
    )
    return report.raise_on_failure() if raise_on_failure else report


def _inputs(
    g: torch.Generator,
    shape: Sequence[int] | None,
    x: Tensor | None,
    y: Tensor | None,
    t: Tensor | Sequence[float] | None,
    dtype: torch.dtype | None,
    device: str | torch.device | None,
) -> tuple[Tensor, Tensor, Tensor]:
    """``x``, ``y`` (random unless given) and one time per sample (``0``, ``1``, then random)."""
    if x is None:
        if shape is None:
            raise ValueError("check_operator needs a shape (B, C, H, W) or images x")
        shape = tuple(int(s) for s in shape)
        shape = (4, *shape) if len(shape) == 3 else shape
        if len(shape) != 4:
            raise ValueError(f"shape must be (B, C, H, W) or (C, H, W), got {shape}")
        x = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype=dtype or torch.float64, device=device)
    else:
        x = x.to(dtype=dtype or x.dtype, device=device if device is not None else x.device)
    if x.ndim != 4 or x.shape[0] < 2:
        raise ValueError(f"need a batch of at least 2 images (B, C, H, W) to test per-sample t, got {tuple(x.shape)}")
    if y is None:
        y = torch.randn(x.shape, generator=g, dtype=torch.float64)
    elif y.shape != x.shape:
        raise ValueError(f"y has shape {tuple(y.shape)} but x has shape {tuple(x.shape)}")
    if t is None:
        t = torch.cat([torch.tensor([0.0, 1.0]), torch.rand(x.shape[0], generator=g, dtype=torch.float64)])
        t = t[: x.shape[0]]
    return x, y.to(x), torch.as_tensor(t, dtype=torch.float64).to(x)


def _linearity(
    op: LinearCorruption,
    name: str,
    x: Tensor,
    y: Tensor,
    t: Tensor,
    cx: Tensor,
    cy: Tensor,
    g: torch.Generator,
    tol: float,
) -> Law:
    a, b = (float(v) for v in torch.rand(2, generator=g, dtype=torch.float64) * 3 + 0.5)
    b = -b  # one coefficient of each sign: an offset C(0) != 0 cannot cancel
    mixed = _apply(op, name, "forward", a * x + b * y, t)
    _structure(name, "forward", mixed, x)
    size = _ratio(_norm(mixed - (a * cx + b * cy)), a * _norm(cx) - b * _norm(cy))
    return Law("linearity", size, tol, "|C(ax+by) - aCx - bCy| / (|a||Cx| + |b||Cy|)")


def _adjointness(x: Tensor, y: Tensor, cx: Tensor, cty: Tensor, tol: float) -> Law:
    cx64, y64, x64, cty64 = (v.double() for v in (cx, y, x, cty))
    gap = abs(float((cx64 * y64).sum() - (x64 * cty64).sum()))
    size = _ratio(gap, _norm(cx64) * _norm(y64) + _norm(x64) * _norm(cty64))
    return Law("adjointness", size, tol, "|<Cx,y> - <x,C^T y>| / (|Cx||y| + |x||C^T y|)")


def _closed_form_vs_vjp(op: LinearCorruption, name: str, y: Tensor, t: Tensor, cty: Tensor, tol: float) -> Law:
    try:
        vjp = LinearCorruption.adjoint(op, y, t)
    except Exception as err:  # torch.func cannot trace some forward maps (in-place ops, .item(), numpy)
        raise ValueError(f"{name}: torch.func.vjp of forward failed ({type(err).__name__}: {err})") from None
    _structure(name, "the vjp of forward", vjp, y)
    size = _ratio(_norm(cty - vjp), max(_norm(cty), _norm(vjp)))
    return Law("adjoint = vjp", size, tol, "|C^T y - vjp(y)| / |C^T y|")


def _per_sample(op: LinearCorruption, x: Tensor, y: Tensor, t: Tensor, cx: Tensor, cty: Tensor, tol: float) -> Law:
    batch = range(x.shape[0])
    name = _short(op)
    alone = torch.cat([_apply(op, name, "forward", x[i : i + 1], t[i : i + 1]) for i in batch])
    alone_adjoint = torch.cat([_apply(op, name, "adjoint", y[i : i + 1], t[i : i + 1]) for i in batch])
    size = max(
        _ratio(_norm(cx - alone), max(_norm(cx), _norm(alone))),
        _ratio(_norm(cty - alone_adjoint), max(_norm(cty), _norm(alone_adjoint))),
    )
    return Law("per-sample t", size, tol, "|batch - one sample at a time| / |batch|")


def _short(op: LinearCorruption, limit: int = 120) -> str:
    text = repr(op)
    return text if len(text) <= limit else text[: limit - 3] + "..."
