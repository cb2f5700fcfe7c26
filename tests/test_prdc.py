"""Precision, recall, density and coverage against cases with a known answer."""

from __future__ import annotations

import pytest
import torch

from softdiff.eval import fid_kid_from_features, prdc
from softdiff.eval.prdc import kth_neighbour_radii


def clusters(modes: list[int], per_mode: int, seed: int, dim: int = 8) -> torch.Tensor:
    """``per_mode`` points around each of 10 far-apart centres (only the centres in ``modes``)."""
    centres = torch.eye(10, dim, dtype=torch.float64) * 50.0
    g = torch.Generator().manual_seed(seed)
    return torch.cat([centres[m] + torch.randn(per_mode, dim, generator=g, dtype=torch.float64) for m in modes])


def test_identical_sets_have_full_precision_recall_and_coverage() -> None:
    x = clusters(list(range(10)), 40, seed=0)
    scores = prdc(x, x.clone())
    assert scores["precision"] == scores["recall"] == scores["coverage"] == 1.0
    assert scores["density"] >= 1.0  # every point lies in its own ball, and in k others' on average


def test_half_the_modes_keeps_precision_and_halves_recall_and_coverage() -> None:
    real = clusters(list(range(10)), 100, seed=1)
    fake = clusters([0, 1, 2, 3, 4] * 2, 100, seed=2)  # as many points, all in 5 of the 10 modes
    scores = prdc(real, fake)
    assert scores["precision"] > 0.9 and scores["density"] > 0.6
    assert scores["recall"] == pytest.approx(0.5, abs=0.06)
    assert scores["coverage"] == pytest.approx(0.5, abs=0.06)


def test_samples_off_the_data_lose_precision_not_recall_of_what_they_cover() -> None:
    real = clusters(list(range(10)), 50, seed=3)
    fake = torch.cat([clusters(list(range(10)), 25, seed=4), real[:250] + 25.0])  # half of them far away
    scores = prdc(real, fake)
    assert scores["precision"] == pytest.approx(0.5, abs=0.06)


def test_radii_exclude_the_point_itself() -> None:
    x = torch.tensor([[0.0], [1.0], [3.0]], dtype=torch.float64)
    torch.testing.assert_close(kth_neighbour_radii(x, 1), torch.tensor([1.0, 1.0, 2.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="k must lie"):
        kth_neighbour_radii(x, 3)


def test_fid_kid_results_carry_precision_and_recall() -> None:
    from softdiff.eval import get_extractor

    real, fake = clusters(list(range(10)), 20, seed=5, dim=128), clusters(list(range(10)), 20, seed=6, dim=128)
    out = fid_kid_from_features(get_extractor("fashion"), real.float(), fake.float(), kid_subsets=5)
    assert out["precision"] > 0.9 and out["recall"] > 0.9 and out["prdc_k"] == 5
