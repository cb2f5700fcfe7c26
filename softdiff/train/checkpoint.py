"""Checkpoints: written atomically, verified by SHA-256, never unpickled.

Layout of a run folder::

    runs/NAME/
      latest                       text: "checkpoints/step-00001500" (replaced atomically)
      metrics.jsonl                one JSON object per logged step
      checkpoints/step-00001500/
        net.safetensors            raw weights
        ema.safetensors            EMA weights
        prior.safetensors          the Gaussian prior at t = 1
        precond.safetensors        data statistics of the preconditioning and the loss scale (when used)
        state.pt                   optimizer state, RNG states, step (torch.load(weights_only=True))
        config.json                the full resolved RunConfig
        manifest.json              format, step and the SHA-256 of every file above

A checkpoint is assembled in a hidden temporary folder and renamed into place, so a crash
(even ``kill -9``) leaves either the previous checkpoint or the complete new one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import Tensor

from ..imageio import atomic_write_bytes
from .config import RunConfig

__all__ = ["Checkpoint", "save_checkpoint", "read_checkpoint", "resolve_checkpoint", "FORMAT"]

FORMAT = 1
CHECKPOINTS = "checkpoints"
LATEST = "latest"
MANIFEST = "manifest.json"
REQUIRED = ("net.safetensors", "ema.safetensors", "prior.safetensors", "state.pt", "config.json")
OPTIONAL = ("precond.safetensors",)  # absent from checkpoints of runs that need no data statistics


@dataclass
class Checkpoint:
    """Everything read back from one checkpoint folder (all tensors on the CPU)."""

    path: Path
    config: RunConfig
    step: int
    net: dict[str, Tensor]
    ema: dict[str, Tensor]
    prior: dict[str, Tensor]
    state: dict
    precond: dict[str, Tensor] | None = None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _tensors(state: dict[str, Tensor]) -> bytes:
    return save_safetensors({k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()})


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    config: RunConfig,
    net: dict[str, Tensor],
    ema: dict[str, Tensor],
    prior: dict[str, Tensor],
    state: dict,
    keep: int = 2,
    precond: dict[str, Tensor] | None = None,
) -> Path:
    """Write ``checkpoints/step-NNNNNNNN`` atomically, point ``latest`` at it, prune to ``keep``."""
    run_dir = Path(run_dir)
    root = run_dir / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:08d}"
    tmp = root / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    files = {
        "net.safetensors": _tensors(net),
        "ema.safetensors": _tensors(ema),
        "prior.safetensors": _tensors(prior),
        "state.pt": buffer.getvalue(),
        "config.json": config.model_dump_json(indent=2).encode(),
    }
    if precond is not None:
        files["precond.safetensors"] = _tensors(precond)
    for filename, data in files.items():
        _write(tmp / filename, data)
    manifest = {"format": FORMAT, "step": step, "sha256": {k: _sha256(v) for k, v in files.items()}}
    _write(tmp / MANIFEST, json.dumps(manifest, indent=2).encode())
    final = root / name
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    atomic_write_bytes(run_dir / LATEST, f"{CHECKPOINTS}/{name}\n".encode())
    _prune(root, keep, final)
    return final


def _prune(root: Path, keep: int, current: Path) -> None:
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    steps = sorted(p for p in root.glob("step-*") if p.is_dir())
    for old in steps[:-keep]:
        if old != current:
            shutil.rmtree(old, ignore_errors=True)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder, or the one a run folder's ``latest`` points to."""
    path = Path(path)
    if (path / MANIFEST).is_file():
        return path
    pointer = path / LATEST
    if pointer.is_file():
        target = path / pointer.read_text().strip()
        if not (target / MANIFEST).is_file():
            raise ValueError(f"{pointer} points to {target}, which is not a complete checkpoint")
        return target
    if not path.exists():
        raise ValueError(f"{path} does not exist; pass a run folder (runs/NAME) or one of its checkpoint folders")
    raise ValueError(f"{path} is neither a run folder (no '{LATEST}' file) nor a checkpoint folder (no {MANIFEST})")


def _verified(folder: Path) -> dict[str, bytes]:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        hashes = manifest["sha256"]
        if manifest.get("format") != FORMAT:
            raise ValueError(f"checkpoint {folder} has format {manifest.get('format')!r}, this softdiff reads {FORMAT}")
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        raise ValueError(f"checkpoint {folder} has a corrupt {MANIFEST}") from None
    contents = {}
    for filename in REQUIRED + tuple(name for name in OPTIONAL if name in hashes):
        file = folder / filename
        if filename not in hashes or not file.is_file():
            raise ValueError(f"checkpoint {folder} is incomplete: {filename} is missing")
        data = file.read_bytes()
        if _sha256(data) != hashes[filename]:
            raise ValueError(
                f"checkpoint {folder} is corrupt: {filename} does not match its SHA-256 "
                f"in {MANIFEST} (truncated or modified)"
            )
        contents[filename] = data
    return contents


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read and verify a checkpoint (a run folder's latest, or a checkpoint folder)."""
    folder = resolve_checkpoint(path)
    files = _verified(folder)
    try:
        config = RunConfig.model_validate_json(files["config.json"])
        state = torch.load(io.BytesIO(files["state.pt"]), map_location="cpu", weights_only=True)
        tensors = {k: load_safetensors(files[f"{k}.safetensors"]) for k in ("net", "ema", "prior")}
        precond = load_safetensors(files["precond.safetensors"]) if "precond.safetensors" in files else None
    except (
        ValueError,
        SafetensorError,
        RuntimeError,
        EOFError,
        Exception,
    ) as err:  # incl. weights_only's UnpicklingError
        raise ValueError(f"checkpoint {folder} cannot be read: {str(err).splitlines()[0]}") from None
    step = state.get("step", -1) if isinstance(state, dict) else -1
    if not isinstance(step, int) or step < 0:
        raise ValueError(f"checkpoint {folder} has no valid step in state.pt")
    return Checkpoint(folder, config, step, tensors["net"], tensors["ema"], tensors["prior"], state, precond)
