"""``Pixelate``: what block averaging must be, beyond the generic operator laws of test_operators.py."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from softdiff.corrupt import CorruptionConfig, Linear, LinearCorruption, Pixelate, build_process

F64 = torch.float64


def block_average(x: torch.Tensor, k: int) -> torch.Tensor:
    """Reference: loop over k x k blocks from the top-left corner, the last ones ragged."""
    out = torch.empty_like(x)
    h, w = x.shape[-2:]
    for i in range(0, h, k):
        for j in range(0, w, k):
            block = x[..., i : i + k, j : j + k]
            out[..., i : i + k, j : j + k] = block.mean(dim=(-2, -1), keepdim=True)
    return out


shapes = st.tuples(st.integers(1, 3), st.integers(1, 13), st.integers(1, 13))


@given(shape=shapes, k=st.integers(1, 15), seed=st.integers(0, 2**31 - 1))
def test_integer_factors_average_blocks_with_ragged_edges(shape: tuple[int, int, int], k: int, seed: int) -> None:
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(seed), dtype=F64)
    op = Pixelate(max_factor=k, schedule=Linear(k, k))  # factor k at every t
    assert torch.allclose(op(x, 0.3), block_average(x, k), rtol=0, atol=1e-12)


@given(shape=shapes, t=st.floats(0, 1), seed=st.integers(0, 2**31 - 1))
def test_real_factors_mix_the_two_neighbouring_block_sizes(shape: tuple[int, int, int], t: float, seed: int) -> None:
    x = torch.randn(1, *shape, generator=torch.Generator().manual_seed(seed), dtype=F64)
    op = Pixelate(max_factor=6.5)
    f = 6.5**t
    lo, hi, a = math.floor(f), math.ceil(f), f - math.floor(f)
    expected = (1 - a) * block_average(x, lo) + a * block_average(x, hi)
    assert torch.allclose(op(x, t), expected, rtol=0, atol=1e-12)


@given(shape=shapes, seed=st.integers(0, 2**31 - 1))
def test_each_level_is_symmetric_and_a_contraction_and_integer_levels_are_projections(
    shape: tuple[int, int, int], seed: int
) -> None:
    op = Pixelate(max_factor=5.0)
    t = float(torch.rand((), generator=torch.Generator().manual_seed(seed)))
    m = op.matrix(shape, t)
    assert torch.allclose(m, m.T, atol=1e-14)
    assert float(torch.linalg.matrix_norm(m, 2)) <= 1 + 1e-12
    p = op.matrix(shape, 1.0)  # factor 5 exactly
    assert torch.allclose(p @ p, p, atol=1e-12)


def test_c0_is_the_identity_and_the_factor_is_continuous_in_t() -> None:
    op = Pixelate(max_factor=8.0)
    x = torch.randn(3, 2, 9, 11, dtype=F64)
    assert torch.equal(op(x, 0.0), x)
    ts = torch.linspace(0, 1, 2001, dtype=F64)
    images = op(x[:1].expand(len(ts), -1, -1, -1), ts)
    jumps = (images.diff(dim=0)).flatten(1).norm(dim=1)
    assert float(jumps.max()) < 0.05 * float(x[0].norm())  # no jump where floor(f) changes


def test_registered_as_a_training_corruption_that_ends_at_the_mean() -> None:
    process = build_process("pixelate", (6, 10))
    assert isinstance(process.operator, Pixelate)
    x = torch.randn(2, 1, 6, 10, dtype=F64)
    assert torch.allclose(process.C(x, 1.0), x.mean(dim=(2, 3), keepdim=True).expand_as(x), atol=1e-12)
    assert CorruptionConfig(spec="blur+pixelate").build((6, 8)).C(x[..., :8], 0.5).shape == (2, 1, 6, 8)


def test_adjoint_is_the_vjp_adjoint_at_tight_tolerance() -> None:
    op = Pixelate(4.0)
    t = torch.tensor([0.0, 0.37, 0.81, 1.0], dtype=F64)
    x, y = torch.randn(2, 4, 2, 7, 9, dtype=F64)
    inner = (op(x, t) * y).flatten(1).sum(1)
    assert torch.allclose(inner, (x * op.adjoint(y, t)).flatten(1).sum(1), rtol=0, atol=1e-12)
    assert torch.allclose(op.adjoint(y, t), LinearCorruption.adjoint(op, y, t), atol=1e-13)


@pytest.mark.parametrize("factor", [0.5, float("nan"), -2.0])
def test_factors_below_one_pixel_are_refused(factor: float) -> None:
    with pytest.raises(ValueError, match="must be >= 1"):
        Pixelate(factor)
