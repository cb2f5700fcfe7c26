"""What each zoo operator promises beyond the generic laws (those run in test_operators.py).

desaturate, fademean, strokes and motion: their defining property, their closed-form
adjoint against an independent construction, their spec names, and level selection
(``softdiff schedule``) on each of them and on composites.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor
from typer.testing import CliRunner

from softdiff.cli.app import app
from softdiff.corrupt import (
    CorruptionConfig,
    Desaturate,
    FadeToMean,
    MotionBlur,
    Strokes,
    build_process,
    check_operator,
)
from softdiff.corrupt.desaturate import REC601
from softdiff.schedule import level_strengths, retime, select_levels

F64 = torch.float64
times = st.floats(0, 1)


def images(c: int, h: int = 9, w: int = 7, b: int = 3, seed: int = 0) -> Tensor:
    return torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(seed), dtype=F64)


# --- desaturate ---------------------------------------------------------------------------------


@given(t=times, seed=st.integers(0, 99))
def test_desaturate_leaves_grey_alone_and_ends_at_the_luminance(t: float, seed: int) -> None:
    op = Desaturate()
    grey = images(1, seed=seed)
    assert torch.equal(op(grey, t), grey)
    rgb_grey = grey.expand(-1, 3, -1, -1)
    assert torch.allclose(op(rgb_grey, t), rgb_grey, atol=1e-14)  # equal channels: a fixed point
    x = images(3, seed=seed)
    luma = sum(w * x[:, i] for i, w in enumerate(REC601))
    end = op(x, 1.0)
    assert all(torch.allclose(end[:, i], luma, atol=1e-14) for i in range(3))
    assert torch.allclose(op(x, t), (1 - t) * x + t * end, atol=1e-14)  # a linear blend in t


def test_desaturate_adjoint_is_the_transposed_blend() -> None:
    x, t = images(3), torch.tensor([0.2, 0.7, 1.0], dtype=F64)
    w = torch.tensor(REC601, dtype=F64)
    ones = torch.ones(3, dtype=F64)
    for i in range(3):
        f = float(t[i])
        blend = (1 - f) * torch.eye(3, dtype=F64) + f * torch.outer(ones, w)  # per pixel, over channels
        expected = torch.einsum("dc,chw->dhw", blend.T, x[i])
        assert torch.allclose(Desaturate().adjoint(x[i : i + 1], t[i : i + 1])[0], expected, atol=1e-14)
    assert not torch.allclose(Desaturate().adjoint(x, t), Desaturate()(x, t))  # luma weights: not symmetric
    uniform = Desaturate(weights=(1 / 3, 1 / 3, 1 / 3))
    assert torch.allclose(uniform.adjoint(x, t), uniform(x, t), atol=1e-14)
    halves = Desaturate(weights=(0.5, 0.5))
    assert torch.allclose(halves(images(2), 1.0)[:, 0], images(2).mean(1), atol=1e-14)  # 2 channels: given weights


@pytest.mark.parametrize("channels", [2, 4, 5])
def test_desaturate_refuses_images_without_a_luminance(channels: int) -> None:
    x = torch.zeros(2, channels, 4, 4, dtype=F64)
    with pytest.raises(ValueError, match=f"images of {channels} channels have none"):
        Desaturate()(x, 0.5)


# --- fade to the mean ---------------------------------------------------------------------------


@given(t=times, seed=st.integers(0, 99))
def test_fademean_keeps_the_mean_and_ends_flat(t: float, seed: int) -> None:
    x = images(3, seed=seed)
    out = FadeToMean()(x, t)
    assert torch.allclose(out.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)), atol=1e-14)
    flat = FadeToMean()(x, 1.0)
    assert torch.allclose(flat, x.mean(dim=(1, 2, 3), keepdim=True).expand_as(x), atol=1e-14)
    per_channel = FadeToMean(per_channel=True)(x, 1.0)
    assert torch.allclose(per_channel, x.mean(dim=(2, 3), keepdim=True).expand_as(x), atol=1e-14)
    assert torch.allclose(FadeToMean(0.5)(x, 1.0), (x + flat) / 2, atol=1e-14)


# --- strokes ------------------------------------------------------------------------------------


@settings(max_examples=max(5, settings().max_examples // 2))
@given(h=st.integers(3, 40), w=st.integers(3, 40), t1=times, t2=times, seed=st.integers(0, 1000))
def test_strokes_are_nested_in_time_binary_and_reproducible(h: int, w: int, t1: float, t2: float, seed: int) -> None:
    t1, t2 = min(t1, t2), max(t1, t2)
    op = Strokes(seed=seed)
    m = op.weights(torch.tensor([0.0, t1, t2, 1.0], dtype=F64), h, w)
    assert bool(((m == 0) | (m == 1)).all()) and bool((m[0] == 1).all())  # C_0 = I
    assert bool((m[1:] <= m[:-1]).all())  # what is hidden stays hidden
    assert torch.equal(m, Strokes(seed=seed).weights(torch.tensor([0.0, t1, t2, 1.0], dtype=F64), h, w))


def test_strokes_are_painted_progressively_and_depend_on_the_seed() -> None:
    t = torch.linspace(0, 1, 9, dtype=F64)
    hidden = 1 - Strokes().weights(t, 64, 64).mean(dim=(1, 2, 3))
    assert hidden[0] == 0 and bool((hidden.diff() > 0).all())  # each step of t paints more
    assert 0.2 < float(hidden[-1]) < 0.7  # a substantial but partial inpainting mask
    first = Strokes().weights(t[1:2], 64, 64)[0, 0] == 0  # the first eighth of the brush path
    ys, xs = first.nonzero(as_tuple=True)
    assert len(ys) > 0 and (ys.max() - ys.min()) + (xs.max() - xs.min()) < 64  # one local stroke, not noise
    assert not torch.equal(Strokes(seed=0).ink_times(32, 32), Strokes(seed=1).ink_times(32, 32))
    thick = Strokes(brush=0.2).weights(t[-1:], 64, 64).mean()
    assert thick < Strokes().weights(t[-1:], 64, 64).mean()  # a wider brush hides more


# --- motion blur --------------------------------------------------------------------------------


def impulse(h: int = 11, w: int = 11, r: int = 5, c: int = 3) -> Tensor:
    x = torch.zeros(1, 1, h, w, dtype=F64)
    x[0, 0, r, c] = 1.0
    return x


def test_a_trail_is_the_bilinear_line_in_the_direction_of_motion() -> None:
    """A point moving right by 4 px (9 points at 0, 0.5, ..., 4) leaves [1.5, 2, 2, 2, 1.5] / 9."""
    trail = torch.tensor([1.5, 2, 2, 2, 1.5], dtype=F64) / 9
    right = MotionBlur(4.0, angle=0.0, centred=False)(impulse(), 1.0)[0, 0]
    assert torch.allclose(right[5, 3:8], trail, atol=1e-14) and right.sum() == pytest.approx(1.0, abs=1e-14)
    assert float(right[5, 3:8].sum()) == pytest.approx(1.0, abs=1e-14)  # nothing elsewhere
    up = MotionBlur(4.0, angle=90.0, centred=False)(impulse(), 1.0)[0, 0]  # y points down: up is -row
    assert torch.allclose(up[1:6, 3].flip(0), trail, atol=1e-12)
    centred = MotionBlur(4.0, angle=0.0)(impulse(), 1.0)[0, 0]
    assert torch.allclose(centred[5, 1:6], trail, atol=1e-14)  # the same trail, centred on the point


@given(
    t=st.lists(times, min_size=3, max_size=3),
    angle=st.floats(-180, 180),
    border=st.sampled_from(["circular", "constant"]),
)
def test_motion_adjoint_is_the_blur_with_the_flipped_kernel(t: list[float], angle: float, border: str) -> None:
    tt, x = torch.tensor(t, dtype=F64), images(2, 13, 10)
    trail = MotionBlur(5.0, angle=angle, centred=False, border=border)
    reverse = MotionBlur(5.0, angle=angle + 180.0, centred=False, border=border)  # the flipped trail
    assert torch.allclose(trail.adjoint(x, tt), reverse(x, tt), atol=1e-12)
    centred = MotionBlur(5.0, angle=angle, border=border)
    assert torch.allclose(centred.adjoint(x, tt), centred(x, tt), atol=1e-12)  # its own flip


def test_motion_keeps_the_mean_with_a_circular_border_and_grows_with_t() -> None:
    x = images(1, 16, 16)
    op = MotionBlur(8.0, angle=25.0)
    out = op(x, torch.tensor([0.3, 0.6, 1.0], dtype=F64))
    assert torch.allclose(out.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=1e-14)
    change = [float((op(x, t) - x).norm()) for t in (0.0, 0.01, 0.1, 0.5, 1.0)]
    assert change[0] < 1e-12 and all(a < b for a, b in zip(change, change[1:], strict=False))
    assert change[1] < 0.1 * change[-1]  # continuous in t: a short blur changes little


# --- spec names and level selection -------------------------------------------------------------

ZOO_SPECS = ["desaturate", "fademean", "strokes", "motion", "motion+strokes", "blur+desaturate", "fademean+mask"]


def colour_images(n: int = 64, size: int = 8) -> Tensor:
    """Coloured blobs: random tints of smooth random fields, so desaturation and fades change them."""
    g = torch.Generator().manual_seed(0)
    base = torch.nn.functional.interpolate(torch.rand(n, 1, 3, 3, generator=g), size=size, mode="bilinear")
    tint = torch.rand(n, 3, 1, 1, generator=g)
    return (base * tint * 2 - 1).to(F64)


@pytest.mark.parametrize("spec", ZOO_SPECS)
def test_zoo_specs_build_pass_the_laws_and_get_selected_levels(spec: str) -> None:
    x0 = colour_images()
    process = build_process(spec, (8, 8))
    check_operator(process.operator, x=x0[:4])
    sel = select_levels(process, x0, candidates=16, k=4)
    assert sel.k == 4 and sel.times[0] == 0 and sel.times[-1] == 1
    assert all(a < b for a, b in zip(sel.times, sel.times[1:], strict=False))
    names = {
        "desaturate": "desaturate_fraction",
        "fademean": "fade_fraction",
        "strokes": "strokes_drawn",
        "motion": "motion_length",
        "blur": "blur_sigma",
        "mask": "mask_fraction",
    }
    assert set(sel.strengths) == {names[part] for part in spec.split("+")} | {"noise_s"}


def test_level_strengths_come_from_each_operators_strength_method() -> None:
    process = build_process("blur+motion+strokes+motion", (10, 10))
    s = level_strengths(process, [0.0, 0.5, 1.0])
    assert list(s) == ["blur_sigma", "motion_length", "strokes_drawn", "motion_length_2", "noise_s"]
    assert s["motion_length"] == pytest.approx([0.0, 2.5, 5.0])  # 0.5 * min(H, W) at t = 1
    assert s["strokes_drawn"] == pytest.approx([0.0, 0.5, 1.0])


def test_schedule_command_derives_levels_for_a_zoo_composite(tmp_path: Path) -> None:
    out = tmp_path / "levels.json"
    args = ["schedule", "-c", "motion+strokes", "--dataset", "synthetic", "-k", "4", "--candidates", "12"]
    result = CliRunner().invoke(app, [*args, "--samples", "48", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["spec"] == "motion+strokes" and set(data["strengths"]) == {"motion_length", "strokes_drawn", "noise_s"}
    process = retime(CorruptionConfig(spec="motion+strokes"), out).build((16, 16))
    assert process.warp is not None and process.warp.to_list() == data["t"]
    assert math.isclose(data["strengths"]["motion_length"][-1], 8.0)
