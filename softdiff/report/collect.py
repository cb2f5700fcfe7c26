"""Everything a run folder holds that a person looks at, read into one typed record.

A run folder is one with a ``config.json`` that is a softdiff run config (what ``train``
writes before its first step). Everything else is optional and, when absent, named in
``RunRecord.missing`` with the command that makes it: ``metrics.jsonl``, the previews, every
``eval.json`` below the folder (``softdiff eval``), every restoration folder (one holding
``restored.npz``, from ``softdiff restore``), every sample folder (``grid.png`` beside
``samples.npz``, from ``softdiff sample``). A file that exists but cannot be read is
named there too; it never stops the report.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from ..eval import load_results
from ..train import RunConfig, find_checkpoint, run_folder
from ..train.metrics import METRICS
from ..train.previews import PREVIEW_LOG, PREVIEWS

__all__ = ["EvalTable", "Restoration", "SampleGrid", "RunRecord", "read_run", "MAX_STRIPS"]

MAX_STRIPS = 4  # restoration strips shown per folder
SKIP_FOLDERS = {"checkpoints", "report", "tb", PREVIEWS}  # never searched for evals or restorations


@dataclass(frozen=True)
class EvalTable:
    """One ``eval.json``: its cells (sampler, grid, steps, nfe, fid, kid, ... as ``softdiff eval`` wrote them)."""

    path: Path
    results: list[dict[str, Any]]


@dataclass(frozen=True)
class Restoration:
    """One ``softdiff restore`` output folder: its settings, metrics (with ``--from-dataset``) and strips."""

    folder: Path
    meta: dict[str, Any]
    metrics: dict[str, Any] | None
    strips: list[Path]


@dataclass(frozen=True)
class SampleGrid:
    """One ``softdiff sample`` output folder: its grid.png and the settings stored in samples.npz."""

    folder: Path
    grid: Path
    meta: dict[str, Any]


@dataclass
class RunRecord:
    path: Path
    name: str
    config: RunConfig
    config_data: dict[str, Any]
    step: int | None  # of the latest checkpoint (None: none written yet)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    previews: list[tuple[int, Path]] = field(default_factory=list)
    preview_log: dict[int, dict[str, Any]] = field(default_factory=dict)
    evals: list[EvalTable] = field(default_factory=list)
    restorations: list[Restoration] = field(default_factory=list)
    samples: list[SampleGrid] = field(default_factory=list)
    corruption_png: Path | None = None  # RUN/corruption.png, written by `make run`
    missing: list[str] = field(default_factory=list)

    @property
    def last_loss(self) -> tuple[int, float] | None:
        """``(step, loss)`` of the last metrics line with a finite loss."""
        for record in reversed(self.metrics):
            loss = record.get("loss")
            if isinstance(loss, (int, float)) and math.isfinite(loss):
                return int(record["step"]), float(loss)
        return None


def read_run(path: str | Path) -> RunRecord:
    """The record of run folder ``path``; ``ValueError`` when it is not a softdiff run folder."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path} does not exist; give a run folder (runs/NAME, the --out of softdiff train)")
    if not path.is_dir():
        raise ValueError(f"{path} is a file, not a run folder (runs/NAME, the --out of softdiff train)")
    if (path / "manifest.json").is_file():
        raise ValueError(f"{path} is a checkpoint folder; give the run folder it belongs to ({run_folder(path)})")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ValueError(f"{path} is not a softdiff run folder: it has no config.json (the --out of softdiff train)")
    try:
        config_data = json.loads(config_file.read_text())
        config = RunConfig.model_validate(config_data)
    except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError and ValidationError are ValueErrors
        first = _first_line(err)
        raise ValueError(f"{path} is not a softdiff run folder: config.json is not a run config ({first})") from None
    try:
        checkpoint, problem = find_checkpoint(path), "no checkpoint yet: the run has not reached its first checkpoint"
    except ValueError as err:
        checkpoint, problem = None, str(err)
    record = RunRecord(path, path.resolve().name, config, config_data, _checkpoint_step(checkpoint))
    if checkpoint is None:
        record.missing.append(problem)
    _read_metrics(record)
    _read_previews(record)
    _read_outputs(record)
    corruption = path / "corruption.png"
    record.corruption_png = corruption if corruption.is_file() else None
    return record


def _first_line(err: BaseException) -> str:
    if isinstance(err, ValidationError):
        e = err.errors()[0]
        return f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def _checkpoint_step(checkpoint: Path | None) -> int | None:
    if checkpoint is None:
        return None
    try:
        return int(checkpoint.name.removeprefix("step-"))
    except ValueError:
        return None


def _read_metrics(record: RunRecord) -> None:
    file = record.path / METRICS
    if not file.is_file():
        record.missing.append(f"no {METRICS}: no loss, learning-rate or gradient-norm curves")
        return
    for line in file.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash
        if isinstance(entry, dict) and isinstance(entry.get("step"), int):
            record.metrics.append(entry)
    if not record.metrics:
        record.missing.append(f"{METRICS} holds no complete line yet")


def _read_previews(record: RunRecord) -> None:
    folder = record.path / PREVIEWS
    for png in folder.glob("step-*.png") if folder.is_dir() else []:
        try:
            record.previews.append((int(png.stem.removeprefix("step-")), png))
        except ValueError:
            continue
    record.previews.sort()
    log = folder / PREVIEW_LOG
    if log.is_file():
        for line in log.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
                record.preview_log[int(entry["step"])] = entry
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
    if not record.previews:
        record.missing.append(
            "no previews: the run was trained without train.preview_every (or before its first preview)"
        )


def _outputs(root: Path, name: str) -> list[Path]:
    """Files called ``name`` below ``root``, outside the folders the trainer and the report write."""
    found = []
    for file in sorted(root.rglob(name)):
        parts = file.relative_to(root).parts[:-1]
        if not any(part in SKIP_FOLDERS for part in parts):
            found.append(file)
    return found


def _read_outputs(record: RunRecord) -> None:
    for file in _outputs(record.path, "eval.json"):
        try:
            record.evals.append(EvalTable(file, load_results(file)))
        except ValueError as err:
            record.missing.append(f"{file} could not be read: {err}")
    if not record.evals:
        hint = f"run `softdiff eval --ckpt {record.path}` for FID against NFE"
        record.missing.append(f"no evaluation (eval.json): {hint}")
    for file in _outputs(record.path, "restored.npz"):
        folder = file.parent
        metrics = None
        metrics_file = folder / "metrics.json"
        if metrics_file.is_file():
            try:
                metrics = json.loads(metrics_file.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                record.missing.append(f"{metrics_file} could not be read: {err}")
        strips = sorted((folder / "strips").glob("*.png"))[:MAX_STRIPS] if (folder / "strips").is_dir() else []
        record.restorations.append(Restoration(folder, _restore_meta(file, metrics), metrics, strips))
    if not record.restorations:
        record.missing.append("no restorations (a folder with restored.npz from softdiff restore --out RUN/...)")
    for file in _outputs(record.path, "samples.npz"):
        grid = file.parent / "grid.png"
        if grid.is_file() and not (file.parent / "restored.npz").exists():
            record.samples.append(SampleGrid(file.parent, grid, _npz_meta(file)))


def _restore_meta(npz: Path, metrics: dict[str, Any] | None) -> dict[str, Any]:
    """A restoration's settings: from metrics.json when there is one, else from the meta in restored.npz."""
    if isinstance(metrics, dict) and isinstance(metrics.get("meta"), dict):
        return metrics["meta"]
    return _npz_meta(npz)


def _npz_meta(npz: Path) -> dict[str, Any]:
    """The JSON ``meta`` entry that ``sample`` and ``restore`` store in their ``.npz`` files ({} if none)."""
    try:
        with np.load(npz, allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))
        return meta if isinstance(meta, dict) else {}
    except (OSError, ValueError, KeyError):
        return {}
