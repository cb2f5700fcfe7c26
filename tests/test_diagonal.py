"""One operator model (issue 20, item 1): diagonal forms, strengths and structure live on the operator."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import torch
from torch import Tensor

from softdiff.corrupt import (
    Compose,
    CorruptionConfig,
    CorruptionProcess,
    GaussianBlur,
    GeometricNoise,
    Identity,
    LinearCorruption,
    Mask,
    MotionBlur,
    Pixelate,
    build_process,
    dct_form,
    register_spectrum,
    spectrum,
)
from softdiff.corrupt.diagonal import DiagonalForm
from softdiff.samplers import ancestral, uniform_grid
from softdiff.schedule.strengths import level_strengths

F64 = torch.float64


class WideBlur(GaussianBlur):
    """A subclass: the exact-type registry before issue 20 gave it no diagonal form."""


class Hidden(Mask):
    pass


class NoisyBlur(Compose):
    """A Compose subclass (noise after a blur)."""

    def __init__(self) -> None:
        super().__init__(Identity(), GaussianBlur(0.01, 3.0))


def _reproduces(op: LinearCorruption, shape: tuple[int, ...] = (3, 2, 6, 5)) -> None:
    form = spectrum(op)
    assert form is not None
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(*shape, generator=g, dtype=F64), torch.rand(shape[0], generator=g, dtype=F64)
    rebuilt = form.from_basis(form.gains(t, shape) * form.to_basis(x))
    torch.testing.assert_close(rebuilt, op(x, t), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "op",
    [WideBlur(0.01, 4.0), Hidden("box"), NoisyBlur(), Identity() @ GaussianBlur(), Mask() @ Identity()],
    ids=["blur-subclass", "mask-subclass", "compose-subclass", "noise+blur", "noise+mask"],
)
def test_subclasses_and_compositions_have_a_diagonal_form(op: LinearCorruption) -> None:
    _reproduces(op)


def test_compositions_across_bases_have_none() -> None:
    assert spectrum(Mask() @ GaussianBlur()) is None  # pixels and DCT share no basis
    assert spectrum(GaussianBlur(backend="kornia") @ Identity()) is None
    assert spectrum(MotionBlur() @ Identity()) is None


def test_dct_gains_derive_from_the_form() -> None:
    t = torch.tensor([0.3, 0.8], dtype=F64)
    blur = GaussianBlur(0.01, 3.0)
    both = (Identity() @ blur).dct_gains(t, 6, 5)
    assert both is not None and both.shape == (2, 1, 6, 5)
    torch.testing.assert_close(both, blur.dct_gains(t, 6, 5))
    assert Mask().dct_gains(t, 6, 5) is None  # pixel basis, not DCT


def test_noise_plus_blur_and_a_compose_subclass_get_the_ancestral_sampler() -> None:
    for spec_op in (build_process("noise+blur", (8, 8)).operator, NoisyBlur()):
        process = CorruptionProcess(spec_op, GeometricNoise(0.01, 1.0))
        x = process.s(1.0) * torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
        out = ancestral(lambda x, t: torch.zeros_like(x), process, x, uniform_grid(4))
        assert out.shape == x.shape and bool(torch.isfinite(out).all())


class OldStyle(LinearCorruption):
    """An operator written against the API before issue 20: it overrides ``dct_gains``."""

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return x * 0.5

    def dct_gains(self, t: Tensor, height: int, width: int) -> Tensor:
        return torch.full((t.shape[0], 1, height, width), 0.5, dtype=t.dtype)


class Registered(LinearCorruption):
    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return x * (1 - t[:, None, None, None])


def test_the_api_before_issue_20_still_declares_a_form() -> None:
    _reproduces(OldStyle())
    _reproduces(OldStyle() @ Identity())
    register_spectrum(
        Registered,
        lambda op: DiagonalForm(lambda x: x, lambda x: x, lambda t, shape: (1 - t)[:, None, None, None].expand(shape)),
    )
    _reproduces(Registered())
    _reproduces(Identity() @ Registered())  # a basis of its own composes with the identity only
    assert spectrum(Mask() @ Registered()) is None


def test_strength_and_parts_are_declared_on_the_base_class() -> None:
    assert LinearCorruption().strength(torch.zeros(1)) is None
    assert LinearCorruption.strength_name is None
    op = Mask() @ WideBlur()
    assert op.parts()[0].__class__ is WideBlur and op.parts()[1].__class__ is Mask
    report = level_strengths(CorruptionProcess(op, GeometricNoise(0.01, 0.1)), [0.0, 1.0])
    assert list(report) == ["blur_sigma", "mask_fraction", "noise_s"]


def test_projections_are_declared_by_the_operator() -> None:
    assert Pixelate(4.0).is_projection(1.0) and not Pixelate(4.5).is_projection(1.0)
    assert not GaussianBlur().is_projection(1.0)


def test_a_plugin_that_hides_pixels_gets_the_hiding_noise(tmp_path: Path) -> None:
    file = tmp_path / "hiding.py"
    file.write_text(
        textwrap.dedent(
            """
            from softdiff.corrupt import LinearCorruption

            class Hide(LinearCorruption):
                hides_pixels = True

                def forward(self, x, t):
                    return x * (1 - t[:, None, None, None])
            """
        )
    )
    process = CorruptionConfig(spec=f"{file}:Hide").build((8, 8))
    assert float(process.s(1.0)) == pytest.approx(2.0)


OPERATOR_CLASSES = (
    "LinearCorruption|Compose|GaussianBlur|Mask|Identity|MotionBlur|Pixelate|Strokes|Desaturate|FadeToMean"
)


def test_no_code_outside_corrupt_dispatches_on_operator_types() -> None:
    package = Path(__file__).resolve().parents[1] / "softdiff"
    pattern = re.compile(rf"isinstance\([^)]*\b({OPERATOR_CLASSES})\b")
    found = [
        f"{path.relative_to(package)}:{n}"
        for path in package.rglob("*.py")
        if path.parent.name != "corrupt"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line) and "LinearCorruption, CorruptionProcess" not in line
    ]
    assert not found, found


def test_dct_form_is_public() -> None:
    assert dct_form(lambda t, shape: torch.ones(shape)).basis == "dct"
