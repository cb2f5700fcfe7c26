"""A training step never reads a device value on the host, nor copies a constant again (a GPU would wait).

On a GPU each ``.item()`` / ``bool()`` of a device tensor, and each copy of a CPU constant to the
device, waits for the GPU's queue to drain. The CPU shows both as dispatched ops: a host read is
``aten._local_scalar_dense``, and a float64 constant (level tables, the data's mean) moved to a
float32 batch is a ``_to_copy`` from float64. ``bench/speed/gpu_scale.py`` counts the real
synchronisations on CUDA.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.speed.step_syncs import PARAMETERISATIONS, count
from softdiff.corrupt import build_process
from softdiff.corrupt.times import DeferredTimeChecks, check_time_range, deferred_time_checks
from softdiff.data import synthetic_shapes
from softdiff.samplers import uniform_grid
from softdiff.samplers.core import SAMPLERS
from softdiff.score import T_SAMPLERS, DataStatistics, Denoiser, TimeLaw, register_t_sampler
from softdiff.train import RunConfig, read_checkpoint, train

DATA = synthetic_shapes(64, size=8, seed=0)


@pytest.mark.parametrize("parameterisation", PARAMETERISATIONS)
def test_a_training_step_reads_nothing_back_and_copies_no_constant(parameterisation: str) -> None:
    steps = count(parameterisation, steps=4)  # every step after the first (which makes the device copies)
    assert steps == [{"reads": 0, "copies": 0}] * 3


def test_deferred_checks_raise_the_same_error_when_settled() -> None:
    with deferred_time_checks() as checks:
        check_time_range(torch.tensor([0.0, 0.5]))
        check_time_range(torch.tensor([0.2, float("nan")]))
        check_time_range(torch.tensor([1.0]))
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\], but the test passed times outside it"):
        checks.settle("the test")
    checks.settle()  # settled: the flags start afresh
    with pytest.raises(ValueError, match=r"got values from -0\.5 to 0\.5"):  # outside the context: at once
        check_time_range(torch.tensor([-0.5, 0.5]))


def test_the_same_times_are_checked_once_but_a_write_to_them_is_seen() -> None:
    t = torch.tensor([0.25, 0.5])
    with deferred_time_checks() as checks:
        check_time_range(t)
        check_time_range(t.expand(2))  # a view in the same layout: not checked again
        t[1] = 2.0  # written after its check: checked again
        check_time_range(t)
    with pytest.raises(ValueError, match="outside"):
        checks.settle()
    with deferred_time_checks() as checks:
        check_time_range(torch.tensor([0.5, 0.5]))
        check_time_range(torch.tensor([0.5, -1.0]))  # another tensor (held: never at a reused address)
    with pytest.raises(ValueError, match="outside"):
        checks.settle()


def test_a_t_sampler_that_leaves_0_1_stops_the_run_before_any_checkpoint(tmp_path: Path) -> None:
    def beyond(batch: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
        return 1.5 * torch.ones(batch, device=device)

    register_t_sampler("beyond_test", TimeLaw("t = 1.5, a bug", lambda params, context: beyond))
    try:
        config = RunConfig.model_validate(
            {
                "objective": {"t_sampler": "beyond_test"},
                "data": {"dataset": "synthetic", "prior_images": 64, "prior_rank": 4},
                "model": {"base_channels": 8, "channel_mults": [1, 2]},
                "train": {"batch_size": 8, "steps": 6, "log_every": 3, "preview_every": None, "device": "cpu"},
            }
        )
        with pytest.raises(ValueError, match=r"a training step up to 3 \(objective.t_sampler 'beyond_test'\)"):
            train(config, tmp_path / "run", data=DATA, progress=False)
    finally:
        T_SAMPLERS.remove("beyond_test")
    with pytest.raises(ValueError):
        read_checkpoint(tmp_path / "run")  # nothing was written


class _MetaNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * t[:, None, None, None]


@pytest.mark.parametrize("spec", ["blur", "blur+mask", "noise"])
@pytest.mark.parametrize("parameterisation", ["precond", "precond_dct", "x0"])
def test_every_sampler_runs_without_reading_a_device_value(
    monkeypatch: pytest.MonkeyPatch, spec: str, parameterisation: str
) -> None:
    """On the meta device any host read raises: a sampler that runs there reads nothing but its final
    settle (switched off here) while it steps, whatever the operator and preconditioning."""
    monkeypatch.setattr(DeferredTimeChecks, "settle", lambda self, where="": None)
    process = build_process(spec, (8, 8))
    if parameterisation == "precond_dct" and process.dct_gains(0.5, torch.zeros(1, 1, 8, 8)) is None:
        pytest.skip(f"{spec} is not diagonal in the DCT basis")
    stats = DataStatistics.estimate(process, torch.rand(16, 1, 8, 8) * 2 - 1)
    denoiser = Denoiser(_MetaNet().to("meta"), process, parameterisation, stats=stats)
    names = [name for name in SAMPLERS if name != "ancestral" or spec != "blur+mask"]  # ancestral: diagonal only
    assert len(names) >= 7
    for name in names:
        x = torch.randn(4, 1, 8, 8, device="meta")
        out = SAMPLERS[name].sampler(denoiser, process, x, uniform_grid(5), generator=None)
        assert out.device.type == "meta" and out.shape == x.shape, name
