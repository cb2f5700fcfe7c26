"""``grid = "auto"``: the exact error of a sampler on a Gaussian fit, the optimised grid, and the CLI's use of it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from softdiff.cli import app
from softdiff.corrupt import CorruptionProcess, GaussianBlur, GeometricNoise, Identity, Mask
from softdiff.corrupt.dct import dct_matrix
from softdiff.samplers import GaussianFit, auto_grid, get, grid_error, resolve_grid, time_grid
from softdiff.samplers.autogrid import ScriptedNoise
from softdiff.score import GaussianData
from softdiff.stats import frechet_distance, moments

SHAPE = (1, 4, 4)
BLUR = CorruptionProcess(GaussianBlur(0.01, 2.0), GeometricNoise(0.02, 0.2))


def dct_diagonal_data(seed: int = 0) -> GaussianData:
    """``N(m, U^T diag(p) U)``: a Gaussian the DCT-diagonal fit describes exactly."""
    g = torch.Generator().manual_seed(seed)
    n = SHAPE[1] * SHAPE[2]
    basis = torch.kron(dct_matrix(SHAPE[1], dtype=torch.float64), dct_matrix(SHAPE[2], dtype=torch.float64))
    variance = torch.rand(n, generator=g, dtype=torch.float64) * 0.3 + 0.01
    return GaussianData(
        torch.randn(n, generator=g, dtype=torch.float64) * 0.3, basis.T @ variance.diag() @ basis, SHAPE
    )


def exact_prior_draws(data: GaussianData, process: CorruptionProcess, n: int, seed: int = 1) -> torch.Tensor:
    _, mean1, cov1 = data.marginal(process, 1.0)
    z = torch.randn(n, data.dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (mean1 + z @ torch.linalg.cholesky(cov1).T).reshape(n, *SHAPE)


@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m", "heun"])
def test_grid_error_is_the_exact_frechet_distance_of_a_deterministic_sampler(sampler: str) -> None:
    """Independent route: the affine map of the sampler with the dense exact denoiser, probed column by column."""
    data = dct_diagonal_data()
    fit = GaussianFit.from_covariance(data.mean, data.cov, SHAPE)
    ts = time_grid("edm", BLUR, 6)
    _, mean1, cov1 = data.marginal(BLUR, 1.0)
    probes = torch.cat([mean1[None], mean1[None] + torch.eye(data.dim, dtype=torch.float64)]).reshape(-1, *SHAPE)
    out = get(sampler)(data.denoiser(BLUR), BLUR, probes, ts).reshape(len(probes), -1)
    offset, linear = out[0], (out[1:] - out[0]).T  # output = offset + linear (x_1 - mean1)
    expected = frechet_distance(offset, linear @ cov1 @ linear.T, data.mean, data.cov)
    assert grid_error(sampler, BLUR, fit, ts) == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("sampler", ["momentum", "dpmpp_2m_sde", "naive"])
def test_grid_error_matches_monte_carlo_for_stochastic_samplers(sampler: str) -> None:
    data = dct_diagonal_data(1)
    fit = GaussianFit.from_covariance(data.mean, data.cov, SHAPE)
    ts = time_grid("uniform", BLUR, 8)
    x1 = exact_prior_draws(data, BLUR, 40_000)
    out = get(sampler)(data.denoiser(BLUR), BLUR, x1, ts, generator=torch.Generator().manual_seed(2))
    monte_carlo = frechet_distance(*moments(out), data.mean, data.cov)
    floor = frechet_distance(*moments(data.sample(40_000, torch.Generator().manual_seed(3))), data.mean, data.cov)
    assert abs(grid_error(sampler, BLUR, fit, ts) - monte_carlo) < 0.03 * monte_carlo + 3 * floor


def test_vanilla_case_reduces_to_the_scalar_gaussian_channel() -> None:
    """``C = I``: one-step Euler from ``x_1`` at ``t = 1`` returns the Wiener estimate, whose law is closed-form."""
    process = CorruptionProcess(Identity(), GeometricNoise(0.01, 5.0))
    data = dct_diagonal_data(2)
    fit = GaussianFit.from_covariance(data.mean, data.cov, SHAPE)
    p, s2 = fit.dct_variance.flatten(), 25.0
    # x0_hat = m + p / (p + s^2) (x_1 - m): mean m, variance (p / (p + s^2))^2 (p + s^2) = p^2 / (p + s^2)
    expected = float(((p**2 / (p + s2)).sqrt() - p.sqrt()).square().sum())
    assert grid_error("euler", process, fit, torch.tensor([1.0, 0.0], dtype=torch.float64)) == pytest.approx(expected)


def test_auto_grid_is_a_grid_and_beats_the_named_grids() -> None:
    data = GaussianData.random(SHAPE, torch.Generator().manual_seed(4))
    fit = GaussianFit.from_covariance(data.mean, data.cov, SHAPE)
    ts = auto_grid("dpmpp_2m_sde", BLUR, fit, 6)
    assert len(ts) == 7 and float(ts[0]) == 1.0 and float(ts[-1]) == 0.0 and bool((ts.diff() < 0).all())
    named = min(grid_error("dpmpp_2m_sde", BLUR, fit, time_grid(g, BLUR, 6)) for g in ("uniform", "edm", "log-noise"))
    assert grid_error("dpmpp_2m_sde", BLUR, fit, ts) < 0.9 * named


def test_auto_grid_in_the_pixel_basis_of_a_mask() -> None:
    process = CorruptionProcess(Mask("pixels"), GeometricNoise(0.01, 2.0))
    data = GaussianData.random(SHAPE, torch.Generator().manual_seed(5))
    fit = GaussianFit.from_covariance(data.mean, data.cov, SHAPE)
    ts = resolve_grid("auto", process, 5, sampler="dpmpp_2m", fit=fit)
    assert grid_error("dpmpp_2m", process, fit, ts) <= grid_error(
        "dpmpp_2m", process, fit, time_grid("uniform", process, 5)
    )


def test_auto_needs_a_sampler_a_fit_and_a_diagonal_operator() -> None:
    fit = GaussianFit(torch.zeros(SHAPE, dtype=torch.float64), torch.ones(SHAPE, dtype=torch.float64))
    with pytest.raises(ValueError, match="optimised for one sampler"):
        time_grid("auto", BLUR, 5)
    with pytest.raises(ValueError, match="takes no stop|optimised for one sampler"):
        time_grid("auto:0.2", BLUR, 5)
    with pytest.raises(ValueError, match="data fit"):
        resolve_grid("auto", BLUR, 5, sampler="dpmpp_2m")
    both = CorruptionProcess(Mask("pixels") @ GaussianBlur(0.01, 2.0), GeometricNoise(0.01, 2.0))
    with pytest.raises(ValueError, match="diagonal in the DCT or pixel basis"):
        resolve_grid("auto", both, 5, sampler="dpmpp_2m", fit=fit)
    with pytest.raises(ValueError, match="Gaussian fit"):
        GaussianFit(torch.zeros(SHAPE), -torch.ones(SHAPE))


def test_scripted_noise_puts_one_pattern_per_draw() -> None:
    noise = ScriptedNoise(4, torch.ones(1, 2, 2))
    draws = [noise.randn((4, 1, 2, 2)) for _ in range(3)]
    assert [int(d.sum()) for d in draws] == [4, 4, 0] and draws[1][3].sum() == 4 and noise.draws == 3


runner = CliRunner()


def _sample(run: Path, out: Path, *extra: str) -> dict:
    args = ["sample", "--ckpt", str(run), "--steps", "4", "-n", "3", "--out", str(out), "--device", "cpu"]
    result = runner.invoke(app, [*args, "--no-progress", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(str(np.load(out / "samples.npz")["meta"]))


def test_sample_optimises_and_caches_the_auto_grid(run_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    meta = _sample(run, tmp_path / "a", "--sampler", "dpmpp_2m_sde", "--grid", "auto")
    assert meta["grid"] == "auto" and len(meta["times"]) == 5 and meta["times"][0] == 1.0
    assert meta["times"] != [round(t, 6) for t in time_grid("uniform", BLUR, 4).tolist()]
    cache = next(run.glob("checkpoints/*/auto-grids.json"))
    stored = json.loads(cache.read_text())["grids"]["dpmpp_2m_sde/4"]
    assert [round(t, 6) for t in stored] == meta["times"]
    cache.write_text(json.dumps({"grids": {"dpmpp_2m_sde/4": [1.0, 0.1, 0.0]}}))  # malformed: recomputed
    assert _sample(run, tmp_path / "b", "--sampler", "dpmpp_2m_sde", "--grid", "auto")["times"] == meta["times"]
    assert _sample(run, tmp_path / "c", "--sampler", "dpmpp_2m_sde")["grid"] == "uniform"


def test_eval_and_sample_refuse_auto_where_the_operator_has_no_diagonal_form(tmp_path: Path) -> None:
    out = tmp_path / "bm"
    args = ["train", "--dataset", "synthetic", "--corruption", "blur+mask", "--steps", "1", "--batch-size", "4"]
    trained = runner.invoke(app, [*args, "--width", "8", "--device", "cpu", "--no-progress", "--out", str(out)])
    assert trained.exit_code == 0, trained.output
    for command in (["sample", "-n", "2", "--out", str(tmp_path / "s")], ["eval", "-n", "2", "--steps", "2"]):
        result = runner.invoke(app, [command[0], "--ckpt", str(out), "--grid", "auto", *command[1:], "--no-progress"])
        assert result.exit_code == 2 and "diagonal in the DCT or pixel basis" in result.output, result.output
        assert "Traceback" not in result.output
