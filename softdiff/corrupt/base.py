"""The linear-operator protocol that every corruption implements.

A corruption is a family of linear maps ``C_t`` indexed by ``t`` in [0, 1]. Subclasses
implement ``forward(x, t)``; the adjoint ``C_t^T`` comes for free from ``torch.func.vjp``
(exact for a linear map) unless a subclass overrides it with a closed form.

House rules for operators (they are plain objects, not ``nn.Module``s):

* **Attributes.** Public attributes are the constructor's parameters, so ``repr`` reads
  like the call that built the operator. Anything else (caches, precomputed tensors) gets
  a leading underscore and stays out of ``repr``; a public tensor of more than 8 values
  is shown by shape and dtype, never dumped.
* **Tensors follow the input.** Nothing moves an operator to a device, so a tensor it
  holds (kept on the CPU, ideally in float64) is moved to the input's device and dtype
  inside ``forward``/``adjoint``: ``self._kernel.to(x)``. The output then has the input's
  dtype and device on CPU and GPU alike, as :func:`softdiff.corrupt.check_operator` checks.
* **What the noise default needs.** ``hides_pixels`` (a class attribute or property, False
  by default) says that ``C_t`` replaces pixels outright (masks, strokes, block averages)
  rather than attenuating them smoothly, so the samples' diversity must come from the noise: such an
  operator gets noise on the data's scale at t = 1 (:func:`default_s_max`). ``is_identity``
  marks ``C_t = I`` (vanilla diffusion, EDM's noise range). ``Compose`` combines both.
* **Strength.** An operator may define ``strength(t)`` (a tensor of the same shape as
  ``t``, e.g. a blur width; None by default) and a class attribute ``strength_name``;
  level selection reports it per level (``softdiff schedule``).
* **Structure.** ``diagonal_form()`` (None by default) declares ``C_t = U^T diag(g(t)) U`` in
  a known basis (:mod:`softdiff.corrupt.diagonal`); ``dct_gains`` derives from it and
  ``Compose`` composes it. ``is_projection(t)`` declares that ``C_t`` is an orthogonal
  projection (DDRM's SVD of it is a frame). Code outside ``corrupt/`` asks these methods
  and never tests an operator's type.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.func import vjp

from .diagonal import ANY, DCT, DiagonalForm, compose_forms, dct_form, registered_form
from .times import check_time_range

INIT_ARGS = "_init_args"  # where an operator keeps its constructor's arguments (softdiff.corrupt.record)

__all__ = ["LinearCorruption", "Compose", "compose", "as_time", "check_time_range", "default_s_max"]


def capture_init_args(init: Any) -> Any:
    """Wrap ``__init__`` so that an instance keeps its constructor's bound arguments (defaults filled in).

    The outermost constructor writes last, so a subclass that calls ``super().__init__``
    records its own arguments, not its parent's.
    """
    signature = inspect.signature(init)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        try:
            bound = signature.bind(self, *args, **kwargs)
        except TypeError:  # the call succeeded, so this cannot happen; record nothing rather than fail
            return
        bound.apply_defaults()
        recorded: dict[str, Any] = {}
        for name, value in list(bound.arguments.items())[1:]:
            kind = signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_KEYWORD:
                recorded.update(value)
            elif kind is inspect.Parameter.VAR_POSITIONAL:
                recorded[name] = list(value)
            else:
                recorded[name] = value
        object.__setattr__(self, INIT_ARGS, recorded)

    for attribute in ("__module__", "__name__", "__qualname__", "__doc__", "__annotations__"):
        if hasattr(init, attribute):
            setattr(__init__, attribute, getattr(init, attribute))
    __init__.__wrapped__ = init  # type: ignore[attr-defined]  # inspect.signature and get_type_hints see the original
    return __init__


def as_time(t: Tensor | float, x: Tensor) -> Tensor:
    """Validate ``t`` and broadcast it to one time per sample of ``x`` (shape ``(B,)``)."""
    if x.ndim != 4:
        raise ValueError(f"expected images of shape (B, C, H, W), got a {x.ndim}-D tensor of shape {tuple(x.shape)}")
    batch = x.shape[0]
    t = torch.as_tensor(t, dtype=x.dtype if x.is_floating_point() else torch.float32, device=x.device)
    if t.ndim == 0:
        t = t.expand(batch)
    elif t.ndim != 1 or t.shape[0] != batch:
        raise ValueError(
            f"t must be a float or a tensor of shape ({batch},) to match the batch, got shape {tuple(t.shape)}"
        )
    check_time_range(t)
    return t


class LinearCorruption:
    """``C_t``: a linear, shape-preserving map on image batches, indexed by time.

    Implement :meth:`forward`; override :meth:`adjoint` when a closed form exists. Both
    always receive ``t`` validated and broadcast to shape ``(B,)``: ``op(x, t)`` and
    ``op.adjoint(y, t)`` accept a float or a per-sample tensor and check it first.
    ``A @ B`` composes two operators (``B`` is applied first).
    """

    hides_pixels: bool = False  # True: C_t replaces pixels outright (a mask, strokes, block averages, inpainting)
    is_identity: bool = False  # True: C_t = I at every t (vanilla diffusion)
    strength_name: str | None = None  # the name of strength(t) in reports; None: the class name in lower case

    def __init_subclass__(cls, **kwargs: object) -> None:
        # A subclass's closed-form adjoint sees the same validated (B,) time as forward.
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:  # the run's record of the operator is its constructor's arguments
            cls.__init__ = capture_init_args(cls.__dict__["__init__"])  # type: ignore[method-assign]
        if "adjoint" in cls.__dict__:
            closed_form = cls.__dict__["adjoint"]

            @functools.wraps(closed_form)
            def adjoint(self: LinearCorruption, y: Tensor, t: Tensor | float) -> Tensor:
                return closed_form(self, y, as_time(t, y))

            cls.adjoint = adjoint  # type: ignore[method-assign]

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x, t)")

    def __call__(self, x: Tensor, t: Tensor | float) -> Tensor:
        return self.forward(x, as_time(t, x))

    def adjoint(self, y: Tensor, t: Tensor | float) -> Tensor:
        """``C_t^T y`` from the vector-Jacobian product of the (linear) forward map."""
        t = as_time(t, y)
        _, pullback = vjp(lambda x: self.forward(x, t), torch.zeros_like(y))
        return pullback(y)[0]

    def strength(self, t: Tensor) -> Tensor | None:
        """A named strength per time (a blur width, a hidden fraction) for reports; None when there is none."""
        return None

    def parts(self) -> list[LinearCorruption]:
        """The operators of a chain in the order they are applied (``[self]`` unless a composition)."""
        return [self]

    def diagonal_form(self) -> DiagonalForm | None:
        """``C_t = U^T diag(g(t)) U`` in a known orthonormal basis, or None (the default: none known).

        Override it to declare the form (:mod:`softdiff.corrupt.diagonal` has the bases).
        The default also honours the API before issue 20: an overridden ``dct_gains`` or a
        :func:`~softdiff.corrupt.register_spectrum` entry.
        """
        if type(self).dct_gains is not LinearCorruption.dct_gains:
            probe = self.dct_gains(torch.zeros(1, dtype=torch.float64), 1, 1)
            return None if probe is None else _form_from_dct_gains(self)
        return registered_form(self)

    def dct_gains(self, t: Tensor, height: int, width: int) -> Tensor | None:
        """Per-frequency gains ``(B, 1, H, W)`` if ``C_t`` is diagonal in the 2-D DCT-II basis, else None.

        ``t`` is already validated, shape ``(B,)``. Derived from :meth:`diagonal_form`; the
        spectral preconditioning needs it.
        """
        form = self.diagonal_form()
        if form is None or form.basis not in (DCT, ANY):
            return None
        return form.gains(t, (t.shape[0], 1, height, width))

    def is_projection(self, t: float) -> bool:
        """True when ``C_t`` is an orthogonal projection (``C = C^T = C^2``); False when unknown."""
        return False

    def __matmul__(self, other: LinearCorruption) -> Compose:
        return Compose(self, other)

    def matrix(self, shape: Sequence[int], t: float) -> Tensor:
        """Dense ``(n, n)`` matrix of ``C_t`` for images of ``shape = (C, H, W)``; for tests and exact math."""
        n = math.prod(shape)
        eye = torch.eye(n, dtype=torch.float64).reshape(n, *shape)
        return self(eye, t).reshape(n, n).T

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={_short_repr(v)}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


def _short_repr(value: object) -> str:
    """``repr`` of an attribute; a tensor of more than 8 values shows its shape and dtype instead."""
    if isinstance(value, Tensor) and value.numel() <= 8:
        return f"tensor({value.tolist()})"
    if isinstance(value, Tensor):
        return f"tensor(shape={tuple(value.shape)}, dtype={str(value.dtype).removeprefix('torch.')})"
    return repr(value)


class Compose(LinearCorruption):
    """``C_t = outer_t inner_t``; its adjoint is the reversed chain of adjoints."""

    def __init__(self, outer: LinearCorruption, inner: LinearCorruption) -> None:
        self.outer, self.inner = outer, inner

    @property
    def hides_pixels(self) -> bool:  # type: ignore[override]
        return bool(self.outer.hides_pixels or self.inner.hides_pixels)

    @property
    def is_identity(self) -> bool:  # type: ignore[override]
        return bool(self.outer.is_identity and self.inner.is_identity)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.outer.forward(self.inner.forward(x, t), t)

    def adjoint(self, y: Tensor, t: Tensor) -> Tensor:
        return self.inner.adjoint(self.outer.adjoint(y, t), t)

    def parts(self) -> list[LinearCorruption]:
        return self.inner.parts() + self.outer.parts()

    def diagonal_form(self) -> DiagonalForm | None:
        return compose_forms(self.outer.diagonal_form(), self.inner.diagonal_form())

    def __repr__(self) -> str:
        return f"{self.outer!r} @ {self.inner!r}"


def _form_from_dct_gains(op: LinearCorruption) -> DiagonalForm:
    """The DCT form of an operator that overrides ``dct_gains`` (the API before ``diagonal_form``)."""

    def gains(t: Tensor, shape: tuple[int, ...]) -> Tensor:
        g = op.dct_gains(t, shape[-2], shape[-1])
        if g is None:
            raise ValueError(f"{type(op).__name__}.dct_gains returned None: define diagonal_form() instead")
        return g.expand(shape)

    return dct_form(gains)


def compose(*ops: LinearCorruption) -> LinearCorruption:
    """``compose(A, B, C)`` is ``A @ B @ C``: the last operator is applied first."""
    if not ops:
        raise ValueError("compose() needs at least one operator")
    result = ops[-1]
    for op in reversed(ops[:-1]):
        result = Compose(op, result)
    return result


# The noise at t = 1 when a config leaves it out. Hiding operators need noise on the data's
# scale: with s_max = 0.1 mask models sample the mean garment (FID 691), with 2 real images
# (164); docs/benchmarks.md. C = I needs EDM's range; everything else the paper's small noise.
S_MAX_IDENTITY, S_MAX_HIDING, S_MAX_DEFAULT = 80.0, 2.0, 0.1


def default_s_max(op: LinearCorruption) -> float:
    """The default noise at t = 1 for ``op``, read from its ``is_identity`` and ``hides_pixels``."""
    if op.is_identity:
        return S_MAX_IDENTITY
    return S_MAX_HIDING if op.hides_pixels else S_MAX_DEFAULT
