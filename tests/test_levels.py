"""Level selection: exact Fréchet distances, fewest-hop paths, bisection, the JSON table."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from softdiff.corrupt import CorruptionConfig, CorruptionProcess, Identity, LinearCorruption, LinearNoise, build_process
from softdiff.schedule import (
    DataMoments,
    LevelSelection,
    fewest_hop_path,
    level_distances,
    read_levels,
    retime,
    select_levels,
    select_path,
)
from softdiff.score import GaussianData
from softdiff.stats import frechet_distance, sqrtm_psd

SHAPE = (1, 4, 4)
DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(scope="module")
def gauss() -> GaussianData:
    return GaussianData.random(SHAPE, torch.Generator().manual_seed(0))


def exact_moments(g: GaussianData) -> DataMoments:
    return DataMoments.from_gaussian(g.mean, g.cov, g.shape)


def analytic(g: GaussianData, process: CorruptionProcess, u: float, v: float) -> float:
    _, m1, s1 = g.marginal(process, u)
    _, m2, s2 = g.marginal(process, v)
    return frechet_distance(m1, s1, m2, s2)


def hops_of(sel: LevelSelection) -> list[tuple[float, float, float]]:
    return list(zip(sel.times[:-1], sel.times[1:], sel.distances, strict=True))


def check_path(sel: LevelSelection, k: int) -> None:
    t = np.array(sel.times)
    assert len(t) == k and t[0] == 0.0 and t[-1] == 1.0
    assert np.all(np.diff(t) > 0)
    assert len(sel.distances) == k - 1
    assert max(sel.distances) <= sel.epsilon
    assert sel.epsilon == pytest.approx(max(sel.distances))


# ------------------------------------------------------------------------------ stats


def test_frechet_distance_closed_form_for_commuting_covariances() -> None:
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(6, generator=g, dtype=torch.float64) + 0.1, torch.rand(6, generator=g, dtype=torch.float64) + 0.1
    m1, m2 = torch.randn(6, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    q = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64)).Q  # common rotation
    s1, s2 = q @ torch.diag(a) @ q.T, q @ torch.diag(b) @ q.T
    expected = float(((m1 - m2) ** 2).sum() + ((a.sqrt() - b.sqrt()) ** 2).sum())
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(expected, rel=1e-10)
    assert frechet_distance(m1, s1, m1, s1) == pytest.approx(0.0, abs=1e-10)
    root = sqrtm_psd(s1)
    torch.testing.assert_close(root @ root, s1)


def test_frechet_distance_is_symmetric_for_general_covariances() -> None:
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(5, 5, generator=g, dtype=torch.float64), torch.randn(5, 5, generator=g, dtype=torch.float64)
    s1, s2, m = a @ a.T, b @ b.T, torch.zeros(5, dtype=torch.float64)
    assert frechet_distance(m, s1, m, s2) == pytest.approx(frechet_distance(m, s2, m, s1), rel=1e-9)
    with pytest.raises(ValueError, match="covariances"):
        frechet_distance(m, s1, m, s2[:4, :4])


# ---------------------------------------------------------------- fitted distances are exact


@pytest.mark.parametrize("spec", ["blur", "blur+mask", "noise"])
def test_fitted_distances_equal_analytic_frechet_between_marginals(gauss: GaussianData, spec: str) -> None:
    process = CorruptionConfig(spec=spec, noise={"s_max": 1.0}).build(SHAPE[1:])
    sel = select_levels(process, exact_moments(gauss), candidates=17, k=5)
    check_path(sel, 5)
    for u, v, d in hops_of(sel):
        assert d == pytest.approx(analytic(gauss, process, u, v), rel=1e-8, abs=1e-10)


def test_sample_fit_approaches_the_analytic_distances(gauss: GaussianData) -> None:
    process = build_process("blur", SHAPE[1:])
    images = gauss.sample(40_000, torch.Generator().manual_seed(3)).float()
    sel = select_levels(process, images, candidates=9, k=4)
    check_path(sel, 4)
    for u, v, d in hops_of(sel):
        assert d == pytest.approx(analytic(gauss, process, u, v), rel=0.05)


def test_pruned_search_matches_the_full_distance_matrix(gauss: GaussianData) -> None:
    """The bounds only skip work: the path equals the one chosen from every pair computed exactly."""
    process = build_process("blur", SHAPE[1:])
    n, k = 21, 6
    u = torch.linspace(0, 1, n, dtype=torch.float64).tolist()
    full = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            full[i, j] = full[j, i] = analytic(gauss, process, u[i], u[j])
    path, eps = select_path(full, k)
    sel = select_levels(process, exact_moments(gauss), candidates=n, k=k)
    assert sel.times == pytest.approx([u[i] for i in path], abs=1e-12)
    assert sel.epsilon == pytest.approx(eps, rel=1e-8)
    assert sel.pairs_computed < n * (n - 1) // 2


def test_more_candidates_never_need_a_larger_epsilon(gauss: GaussianData) -> None:
    process = build_process("blur", SHAPE[1:])
    moments = exact_moments(gauss)
    eps = []
    for n in (9, 17, 33):  # nested grids: linspace(0, 1, 9) is inside linspace(0, 1, 17)
        sel = select_levels(process, moments, candidates=n, k=5)
        check_path(sel, 5)
        eps.append(sel.epsilon)
    assert eps[1] <= eps[0] * (1 + 1e-6) and eps[2] <= eps[1] * (1 + 1e-6)


def test_deterministic_for_a_fixed_seed(gauss: GaussianData) -> None:
    process = build_process("blur", SHAPE[1:])
    images = gauss.sample(600, torch.Generator().manual_seed(4)).float()
    a = select_levels(process, images, candidates=17, k=6, samples=300, seed=7)
    b = select_levels(process, images, candidates=17, k=6, samples=300, seed=7)
    assert a.to_json() == b.to_json()
    assert a.samples == 300


# -------------------------------------------------------------- operators, strengths, errors


class Fade(LinearCorruption):
    """A user-defined operator: uniform fade to 10% with a named strength."""

    def strength(self, t: torch.Tensor) -> torch.Tensor:
        return 1 - 0.9 * t

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x * self.strength(t).to(x.dtype)[:, None, None, None]


def test_user_defined_operator(gauss: GaussianData) -> None:
    process = CorruptionProcess(Fade(), LinearNoise(0.01, 0.2))
    sel = select_levels(process, exact_moments(gauss), candidates=33, k=7)
    check_path(sel, 7)
    assert set(sel.strengths) == {"fade", "noise_s"}
    assert sel.strengths["fade"] == pytest.approx([1 - 0.9 * t for t in sel.times])
    u, v = sel.times[2], sel.times[3]
    assert sel.distances[2] == pytest.approx(analytic(gauss, process, u, v), rel=1e-8)


def test_blur_mask_strengths_are_a_vector(gauss: GaussianData) -> None:
    sel = select_levels(build_process("blur+mask", SHAPE[1:]), exact_moments(gauss), candidates=33, k=6)
    check_path(sel, 6)
    assert {"blur_sigma", "mask_fraction", "noise_s"} == set(sel.strengths)
    assert sel.strengths["mask_fraction"] == pytest.approx(list(sel.times))  # default Linear(0, 1)


def test_infeasible_requests_fail_clearly(gauss: GaussianData) -> None:
    process = build_process("blur", SHAPE[1:])
    moments = exact_moments(gauss)
    with pytest.raises(ValueError, match="cannot choose k=20 levels from 16 candidates"):
        select_levels(process, moments, candidates=16, k=20)
    with pytest.raises(ValueError, match="k must be at least 2"):
        select_levels(process, moments, candidates=16, k=1)
    flat = CorruptionProcess(Identity(), LinearNoise(0.1, 0.1))  # every level is the same distribution
    with pytest.raises(ValueError, match=r"degenerate.*nearest achievable: k=2"):
        select_levels(flat, moments, candidates=16, k=4)


def test_projection_full_basis_is_exact_and_truncation_is_a_lower_bound(gauss: GaussianData) -> None:
    process = build_process("blur", SHAPE[1:])
    moments = exact_moments(gauss)
    full = select_levels(process, moments, candidates=9, k=3)
    dct_full = select_levels(process, moments, candidates=9, k=3, projection=4)  # all 4x4 frequencies
    assert dct_full.times == full.times
    assert dct_full.distances == pytest.approx(full.distances, rel=1e-8)
    q = torch.linalg.qr(torch.randn(16, 5, generator=torch.Generator().manual_seed(5), dtype=torch.float64)).Q
    low = select_levels(process, moments, candidates=9, k=3, projection=q)
    for u, v, d in hops_of(low):
        assert d <= analytic(gauss, process, u, v) * (1 + 1e-9)
    with pytest.raises(ValueError, match="orthonormal"):
        select_levels(process, moments, candidates=9, k=3, projection=2 * q)
    with pytest.raises(ValueError, match="GiB; project onto low frequencies"):
        select_levels(process, DataMoments.from_images(torch.zeros(2, 3, 128, 128)), candidates=9, k=3)
    with pytest.raises(ValueError, match="1 <= r <= 4"):
        select_levels(process, moments, candidates=9, k=3, projection=5)


# ------------------------------------------------------------------- the graph search itself


def brute_hops(dist: np.ndarray, eps: float) -> int | None:
    n = len(dist)
    best = [math.inf] * n
    best[0] = 0
    for j in range(1, n):
        best[j] = min([best[i] + 1 for i in range(j) if dist[i, j] <= eps], default=math.inf)
    return None if math.isinf(best[-1]) else int(best[-1])


@given(st.integers(3, 8), st.integers(2, 6), st.integers(0, 2**31 - 1))
def test_select_path_is_the_minimax_path_or_reports_infeasible(n: int, k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    dist = rng.random((n, n))
    dist = np.round(dist + dist.T, 2)  # non-monotone, with ties
    np.fill_diagonal(dist, 0)
    thresholds = sorted({float(v) for v in dist[np.triu_indices(n, 1)]})
    hops = [brute_hops(dist, e) for e in thresholds]
    achievable = {h + 1 for h in hops if h is not None}
    if k > n:
        with pytest.raises(ValueError, match="candidates"):
            select_path(dist, k)
        return
    if k not in achievable:
        with pytest.raises(ValueError, match="nearest achievable"):
            select_path(dist, k)
        return
    path, eps = select_path(dist, k)
    best = min(e for e, h in zip(thresholds, hops, strict=True) if h is not None and h + 1 <= k)
    assert eps == pytest.approx(best)
    assert len(path) == k and path[0] == 0 and path[-1] == n - 1 and path == sorted(set(path))
    assert all(dist[a, b] <= eps for a, b in zip(path, path[1:], strict=False))
    assert fewest_hop_path(dist, eps) is not None and len(fewest_hop_path(dist, eps)) == k


def test_fewest_hop_path_handles_non_monotone_distances() -> None:
    # 0 -> 2 is far but 0 -> 3 is near: a greedy "stop at the first too-far level" walk would miss it
    dist = np.array([[0, 1, 5, 1, 9], [1, 0, 1, 5, 9], [5, 1, 0, 1, 1], [1, 5, 1, 0, 1], [9, 9, 1, 1, 0]], float)
    assert fewest_hop_path(dist, 1.0) == [0, 3, 4]
    assert fewest_hop_path(dist, 0.5) is None


# ------------------------------------------------------------------------- the JSON table


def test_saved_table_loads_as_a_time_warp(gauss: GaussianData, tmp_path) -> None:
    process = build_process("blur", SHAPE[1:])
    sel = select_levels(CorruptionConfig(spec="blur"), exact_moments(gauss), candidates=17, k=5)
    from_process = select_levels(process, exact_moments(gauss), candidates=17, k=5)
    # a config is its process, built for the images' size, plus a record of what it was
    assert sel == dataclasses.replace(from_process, spec=sel.spec, config=sel.config, data=sel.data)
    path = sel.save(tmp_path / "levels.json")
    data = json.loads(path.read_text())
    assert data["format"] == "softdiff.levels/1" and data["k"] == 5 and data["candidates"] == 17
    assert set(data) >= {"t", "distances", "epsilon", "strengths", "operator", "noise"}
    assert data["spec"] == "blur" and data["data"] == {"shape": list(SHAPE)} and data["config"]["blur"]["sigma_min"]
    assert LevelSelection.load(path) == sel
    assert level_distances(process, exact_moments(gauss), sel.times) == pytest.approx(sel.distances, rel=1e-9)
    warped = retime(CorruptionConfig(spec="blur"), path, shape=SHAPE).build(SHAPE[1:])
    x = gauss.sample(2, torch.Generator().manual_seed(6))
    for k, u in enumerate(sel.times):
        t = k / (len(sel.times) - 1)
        assert float(warped.time(t, x)[0]) == pytest.approx(u, abs=1e-12)
        torch.testing.assert_close(warped.C(x, t), process.C(x, u))
        assert float(warped.s(torch.tensor(t, dtype=torch.float64))) == pytest.approx(float(process.s(u)))
    even = torch.linspace(0, 1, 5).tolist()  # the warped process at even t is the selected table again
    assert level_distances(warped, exact_moments(gauss), even) == pytest.approx(sel.distances, rel=1e-6)


def test_a_selection_that_does_not_know_its_corruption_is_not_saved(gauss: GaussianData, tmp_path: Path) -> None:
    sel = select_levels(build_process("blur", SHAPE[1:]), exact_moments(gauss), candidates=9, k=3)
    assert sel.spec is None
    with pytest.raises(ValueError, match="does not record the corruption"):
        sel.save(tmp_path / "levels.json")
    assert not (tmp_path / "levels.json").exists()
    path = dataclasses.replace(sel, spec="blur").save(tmp_path / "levels.json")
    assert json.loads(path.read_text())["spec"] == "blur"


@pytest.fixture(scope="module")
def blur_pixelate_table(gauss: GaussianData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    sel = select_levels(CorruptionConfig(spec="blur+pixelate"), exact_moments(gauss), candidates=9, k=3)
    return sel.save(tmp_path_factory.mktemp("levels") / "levels.json")


@pytest.mark.parametrize("spec", ["noise", "mask", "blur", "pixelate+blur"])
def test_a_table_chosen_for_one_corruption_is_refused_for_another(blur_pixelate_table: Path, spec: str) -> None:
    with pytest.raises(ValueError, match="was chosen for corruption 'blur\\+pixelate', not"):
        retime(CorruptionConfig(spec=spec), blur_pixelate_table)
    assert retime(CorruptionConfig(spec="blur + pixelate"), blur_pixelate_table).levels == list(
        read_levels(blur_pixelate_table).times
    )


def test_a_table_is_refused_for_other_settings_data_or_shape(blur_pixelate_table: Path) -> None:
    other = CorruptionConfig.model_validate({"spec": "blur+pixelate", "blur": {"sigma_min": 0.5}})
    with pytest.raises(ValueError, match="blur.sigma_min = 0.01"):
        retime(other, blur_pixelate_table)
    with pytest.raises(ValueError, match=r"shape \(1, 4, 4\), not \(1, 8, 8\)"):
        retime(CorruptionConfig(spec="blur+pixelate"), blur_pixelate_table, shape=(1, 8, 8))
    data = json.loads(blur_pixelate_table.read_text())
    data["data"]["dataset"] = "fashion-mnist"
    path = blur_pixelate_table.with_name("fashion.json")
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="fitted on 'fashion-mnist', not on 'cifar10'"):
        read_levels(path).check(CorruptionConfig(spec="blur+pixelate"), dataset="cifar10")
    read_levels(path).check(CorruptionConfig(spec="blur+pixelate"), dataset="fashion-mnist", shape=(1, 4, 4))


def test_tables_that_record_no_origin_are_taken_as_they_are(tmp_path: Path) -> None:
    """The documented rule: a bare list, ``{"t": [...]}`` or a record with ``"spec": null`` fits any corruption."""
    old = json.loads((DOCS / "levels-blur-fashion-mnist.json").read_text())
    old.update(spec=None, config=None, data=None)  # as LevelSelection.save wrote from Python before
    for i, content in enumerate(([0.0, 0.3, 1.0], {"t": [0.0, 0.3, 1.0]}, old)):
        path = tmp_path / f"{i}.json"
        path.write_text(json.dumps(content))
        for spec in ("noise", "mask", "blur+pixelate"):
            assert retime(CorruptionConfig(spec=spec), path).levels == list(read_levels(path).times)


def test_the_shipped_blur_table_loads_for_a_blur_run_only() -> None:
    path = DOCS / "levels-blur-fashion-mnist.json"
    config = retime(CorruptionConfig(spec="blur"), path, dataset="fashion-mnist", shape=(1, 28, 28))
    assert config.levels is not None and len(config.levels) == 32 == LevelSelection.load(path).k
    with pytest.raises(ValueError, match="chosen for corruption 'blur', not 'mask'"):
        retime(CorruptionConfig(spec="mask"), path)


BAD_FILES = {
    "missing": (None, "does not exist"),
    "not json": ("{not json", "not valid JSON"),
    "binary": (b"\xff\xfe\x00", "not a text"),
    "other format": ({"format": "softdiff.levels/9", "t": [0, 1]}, "this version reads 'softdiff.levels/1'"),
    "no times": ({"spec": "blur"}, "no times under 't'"),
    "nested times": ({"t": [[0, 1]]}, "flat list of numbers"),
    "booleans": ({"t": [False, True]}, "flat list of numbers"),
    "one time": ({"t": [0.5]}, "at least 2 finite times"),
    "decreasing": ({"t": [0.0, 0.6, 0.4, 1.0]}, "non-decreasing times in \\[0, 1\\]"),
    "beyond one": ({"t": [0.0, 1.5]}, "non-decreasing times in \\[0, 1\\]"),
    "spec not a string": ({"t": [0, 1], "spec": 3}, "malformed 'spec'"),
    "record without distances": ({"format": "softdiff.levels/1", "t": [0, 1]}, "not a valid softdiff.levels/1"),
    "a number": (3, "must be a JSON object"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_a_bad_level_file_is_one_clear_value_error(name: str, tmp_path: Path) -> None:
    content, message = BAD_FILES[name]
    path = tmp_path / "levels.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content)
    elif content is not None:
        path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=message):
        read_levels(path)
