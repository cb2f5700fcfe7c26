"""A training step never reads a device value on the host, nor copies a constant again (a GPU would wait).

On a GPU each ``.item()`` / ``bool()`` of a device tensor, and each copy of a CPU constant to the
device, waits for the GPU's queue to drain. The CPU shows both as dispatched ops: a host read is
``aten._local_scalar_dense``, and a float64 constant (level tables, the data's mean) moved to a
float32 batch is a ``_to_copy`` from float64. ``bench/speed/gpu_scale.py`` counts the real
synchronisations on CUDA.
"""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from softdiff.corrupt.times import check_time_range, deferred_time_checks
from softdiff.data import synthetic_shapes
from softdiff.score import T_SAMPLERS, TimeLaw, register_t_sampler
from softdiff.train import RunConfig, read_checkpoint, train
from softdiff.train import trainer as trainer_module

DATA = synthetic_shapes(64, size=8, seed=0)


class _Ops(TorchDispatchMode):
    """Counts host reads and float64 -> other copies (where they came from is in the test's failure)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: collections.Counter[str] = collections.Counter()
        self.copies = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        name = str(func.overloadpacket)
        if name == "aten._local_scalar_dense":
            self.reads[name] += 1
        if name == "aten._to_copy" and args[0].dtype == torch.float64 and (kwargs or {}).get("dtype") != torch.float64:
            self.copies += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("parameterisation", ["precond", "precond_dct"])
def test_a_training_step_reads_nothing_back_and_copies_no_constant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parameterisation: str
) -> None:
    seen: list[_Ops] = []
    step = trainer_module._Step.__call__

    def counted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not seen:  # the first step builds what later ones reuse (device copies of the constants)
            seen.append(_Ops())
            return step(self, *args, **kwargs)
        with _Ops() as ops:
            out = step(self, *args, **kwargs)
        seen.append(ops)
        return out

    monkeypatch.setattr(trainer_module._Step, "__call__", counted)
    config = RunConfig.model_validate(
        {
            "corruption": {"spec": "blur"},  # selected levels: the blur's schedule is a level table
            "objective": {"parameterisation": parameterisation},
            "data": {"dataset": "synthetic", "prior_images": 64, "prior_rank": 4},
            "model": {"base_channels": 8, "channel_mults": [1, 2]},
            "train": {"batch_size": 8, "steps": 4, "preview_every": None, "device": "cpu"},
        }
    )
    train(config, tmp_path / "run", data=DATA, progress=False)
    assert len(seen) == 4
    for ops in seen[1:]:
        assert not ops.reads, ops.reads
        assert ops.copies == 0


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
