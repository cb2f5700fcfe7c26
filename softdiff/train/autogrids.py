"""A trained run's time grids: ``"auto"`` optimised on the run's own data fit, cached beside its checkpoint.

``auto`` grids (:mod:`softdiff.samplers.autogrid`) take seconds to optimise, and depend
only on the checkpoint (its process and data statistics), the sampler and the step count.
So the first ``softdiff sample`` or ``softdiff eval`` that needs one writes it to the
checkpoint folder's ``auto-grids.json``, and later ones read it back. The cache is not part
of the checkpoint's manifest: a missing, unreadable or malformed entry is recomputed, and a
read-only checkpoint folder only means the grid is optimised again next time.
"""

from __future__ import annotations

import json
from pathlib import Path

from torch import Tensor

from ..imageio import atomic_write_bytes
from ..samplers import check_grid, resolve_grid
from ..samplers.autogrid import GaussianFit, auto_grid_problem
from .loading import TrainedRun

__all__ = ["run_grid", "run_fit", "check_run_grid", "CACHE_FILE"]

CACHE_FILE = "auto-grids.json"
_MAX_CACHE_BYTES = 1 << 20


def run_fit(run: TrainedRun) -> GaussianFit | None:
    """The run's Gaussian data fit (mean and DCT variances), or None if it stores no statistics."""
    stats = getattr(run.denoiser.precond, "stats", None)
    return GaussianFit.from_statistics(stats) if stats is not None else None


def _checks(run: TrainedRun) -> dict:
    """What a level file given as a grid is checked against: the run's corruption, data set and shape."""
    return {"corruption": run.config.corruption, "dataset": run.config.data.dataset, "shape": run.image_shape}


def check_run_grid(run: TrainedRun, grid: str, steps: int) -> None:
    """Raise the error ``run_grid`` would, without optimising an ``auto`` grid."""
    if grid != "auto":
        resolve_grid(grid, run.process, steps, **_checks(run))
        return
    problem = auto_grid_problem(run.process, run_fit(run))
    if problem is not None:
        raise ValueError(problem)


def _read_cache(path: Path) -> dict[str, list[float]]:
    try:
        if not path.is_file() or path.stat().st_size > _MAX_CACHE_BYTES:
            return {}
        grids = json.loads(path.read_bytes()).get("grids", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return grids if isinstance(grids, dict) else {}


def run_grid(run: TrainedRun, grid: str, sampler: str, steps: int) -> Tensor:
    """The grid ``grid`` of ``steps`` steps for ``sampler`` on this run (``"auto"`` from or into the cache)."""
    if grid != "auto":
        return resolve_grid(grid, run.process, steps, **_checks(run))
    path = Path(run.path) / CACHE_FILE
    cache = _read_cache(path)
    key = f"{sampler}/{steps}"
    stored = cache.get(key)
    if isinstance(stored, list) and len(stored) == steps + 1:
        try:
            ts = check_grid(stored)
            if float(ts[0]) == 1.0 and float(ts[-1]) == 0.0:
                return ts
        except (TypeError, ValueError):
            pass  # a malformed entry: optimise it again
    ts = resolve_grid("auto", run.process, steps, sampler=sampler, fit=run_fit(run))
    cache[key] = ts.tolist()
    try:
        atomic_write_bytes(path, (json.dumps({"format": 1, "grids": cache}, indent=1) + "\n").encode())
    except (OSError, ValueError):
        pass  # a read-only checkpoint: the grid is optimised again next time
    return ts
