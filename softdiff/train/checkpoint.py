"""Checkpoints: written atomically, verified by SHA-256, never unpickled.

Layout of a run folder::

    runs/NAME/
      latest                       text: "checkpoints/step-00001500" (replaced atomically)
      metrics.jsonl                one JSON object per logged step
      checkpoints/step-00001500/
        net.safetensors            raw weights
        ema.safetensors            EMA weights
        prior.safetensors          the Gaussian prior at t = 1
        class_prior.safetensors    one prior per class (class-conditional runs; older ones lack it)
        precond.safetensors        data statistics of the preconditioning and the loss scale (when used)
        state.pt                   optimizer state, RNG states, step (torch.load(weights_only=True))
        config.json                the full resolved RunConfig
        manifest.json              format, step, the components present and the SHA-256 of every file above

A checkpoint is a set of named components (:data:`COMPONENTS`, the one list of its files):
the network, its EMA, the prior, the preconditioning statistics (optional) and the training
state (optimiser, RNG states, step). Manifests written before the component list existed
have no ``components`` key and still load.

A checkpoint is assembled in a hidden temporary folder and renamed into place, so a crash
(even ``kill -9``) leaves either the previous checkpoint or the complete new one. Older
checkpoints are pruned only once the new one and ``latest`` are durable (folders fsynced),
a failed write removes its temporary folder (a full disk stays no fuller), and
:func:`clean_temporaries` removes what a killed writer left behind. Non-finite weights are
never written and never read back, and a checkpoint whose parts do not agree with its
``config.json`` is refused (:mod:`.consistency`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import Tensor

from ..imageio import atomic_write_bytes
from ..resources import fsync_dir
from .config import RunConfig
from .consistency import (
    IDENTITY_KEY,
    check_class_prior,
    check_identity,
    check_precond,
    check_prior,
    check_twins,
    config_identity,
    tensor_metadata,
)

__all__ = [
    "Checkpoint",
    "Component",
    "COMPONENTS",
    "save_checkpoint",
    "step_folder",
    "read_checkpoint",
    "resolve_checkpoint",
    "run_folder",
    "find_checkpoint",
    "clean_temporaries",
    "nonfinite_tensors",
    "FORMAT",
]

FORMAT = 1
CHECKPOINTS = "checkpoints"
LATEST = "latest"
MANIFEST = "manifest.json"
CONFIG = "config.json"


@dataclass(frozen=True)
class Component:
    """One named part of a checkpoint: its file, and whether every checkpoint holds it."""

    name: str
    file: str
    required: bool = True

    @property
    def tensors(self) -> bool:
        """A safetensors file of plain tensors (else a weights-only torch file)."""
        return self.file.endswith(".safetensors")


COMPONENTS: tuple[Component, ...] = (
    Component("net", "net.safetensors"),
    Component("ema", "ema.safetensors"),
    Component("prior", "prior.safetensors"),
    Component("precond", "precond.safetensors", required=False),  # runs that need no data statistics lack it
    Component("class_prior", "class_prior.safetensors", required=False),  # class-conditional runs only
    Component("state", "state.pt"),  # optimiser, RNG states, step, logging window
)
_BY_NAME = {c.name: c for c in COMPONENTS}
REQUIRED = tuple(c.file for c in COMPONENTS if c.required) + (CONFIG,)
OPTIONAL = tuple(c.file for c in COMPONENTS if not c.required)


def step_folder(run_dir: str | Path, step: int) -> Path:
    """The folder of the checkpoint of ``step`` in a run folder (the one place its name is made)."""
    return Path(run_dir) / CHECKPOINTS / f"step-{step:08d}"


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
    class_prior: dict[str, Tensor] | None = None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _tensors(state: dict[str, Tensor], identity: str) -> bytes:
    """safetensors bytes that record the identity of the config they belong to (see :mod:`.consistency`)."""
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    return save_safetensors(tensors, metadata={IDENTITY_KEY: identity})


def _encode(component: Component, state: dict, identity: str) -> bytes:
    if component.tensors:
        return _tensors(state, identity)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def nonfinite_tensors(state: dict[str, Tensor]) -> list[str]:
    """Names of the floating-point tensors holding a NaN or an infinity."""
    return [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def _refuse_nonfinite(parts: dict[str, dict[str, Tensor]], what: str) -> None:
    for part, state in parts.items():
        bad = nonfinite_tensors(state)
        if bad:
            more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
            raise ValueError(f"{what}: {part} holds NaN or infinite values (in {bad[0]}{more})")


def save_checkpoint(
    run_dir: str | Path, step: int, config: RunConfig, parts: dict[str, dict], *, keep: int = 2
) -> Path:
    """Write ``checkpoints/step-NNNNNNNN`` atomically, point ``latest`` at it, then prune to ``keep``.

    ``parts`` maps component names (:data:`COMPONENTS`) to their state: tensors for the
    safetensors ones, a plain dict for ``state``. Refuses (``ValueError``) a missing required
    component, an unknown one, and weights or a prior holding NaN/inf. On any failure (a full
    disk: ``OSError``) the temporary folder is removed and ``latest`` still names the previous
    checkpoint.
    """
    unknown = sorted(set(parts) - set(_BY_NAME))
    missing = [c.name for c in COMPONENTS if c.required and c.name not in parts]
    if unknown or missing:
        raise ValueError(f"a checkpoint's components are {', '.join(_BY_NAME)}; unknown {unknown}, missing {missing}")
    present = [c for c in COMPONENTS if c.name in parts and parts[c.name] is not None]
    _refuse_nonfinite(
        {c.name: parts[c.name] for c in present if c.tensors}, f"refusing to write the checkpoint of step {step}"
    )
    run_dir = Path(run_dir)
    final = step_folder(run_dir, step)
    root, name = final.parent, final.name
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        config_json = config.model_dump_json(indent=2).encode()
        identity = config_identity(config_json)
        files = {c.file: _encode(c, parts[c.name], identity) for c in present}
        files[CONFIG] = config_json
        for filename, data in files.items():
            _write(tmp / filename, data)
        components = [c.name for c in present]
        manifest = {
            "format": FORMAT,
            "step": step,
            "components": components,
            "sha256": {k: _sha256(v) for k, v in files.items()},
        }
        _write(tmp / MANIFEST, json.dumps(manifest, indent=2).encode())
        fsync_dir(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_dir(root)
        atomic_write_bytes(run_dir / LATEST, f"{CHECKPOINTS}/{name}\n".encode())
        fsync_dir(run_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(root, keep, final)
    return final


def _prune(root: Path, keep: int, current: Path) -> None:
    steps = sorted(p for p in root.glob("step-*") if p.is_dir())
    for old in steps[:-keep]:
        if old != current:
            shutil.rmtree(old, ignore_errors=True)


def clean_temporaries(run_dir: str | Path) -> list[Path]:
    """Remove what a killed or failed writer left in a run folder; returns what was removed.

    Call it only when no other process writes to ``run_dir`` (the trainer does, once, as it
    starts): ``checkpoints/.tmp-*`` folders and the ``.NAME.*.tmp`` files of atomic writes.
    """
    run_dir = Path(run_dir)
    stale = [*(run_dir / CHECKPOINTS).glob(".tmp-*"), *run_dir.glob(".*.tmp")]
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return stale


def find_checkpoint(run_dir: str | Path) -> Path | None:
    """The checkpoint a resume would continue from, or None when the run has none yet.

    That is the one ``latest`` names; without ``latest`` (a kill between the rename of the
    first checkpoint and the pointer's write) the newest complete ``step-*`` folder. A
    ``latest`` that names a missing checkpoint is an error, never a reason to start afresh.
    """
    run_dir = Path(run_dir)
    if (run_dir / LATEST).exists():
        return resolve_checkpoint(run_dir)
    if (run_dir / MANIFEST).is_file():
        return run_dir
    complete = sorted(p for p in (run_dir / CHECKPOINTS).glob("step-*") if (p / MANIFEST).is_file())
    return complete[-1] if complete else None


def run_folder(checkpoint: str | Path) -> Path:
    """The run folder a checkpoint folder belongs to (``RUN/checkpoints/step-N`` -> ``RUN``)."""
    checkpoint = Path(checkpoint)
    return checkpoint.parent.parent if checkpoint.parent.name == CHECKPOINTS else checkpoint.parent


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
        manifest = json.loads((folder / MANIFEST).read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError(f"checkpoint {folder} has a corrupt {MANIFEST}") from None
    hashes = manifest.get("sha256") if isinstance(manifest, dict) else None
    if not isinstance(hashes, dict) or not all(isinstance(v, str) for v in hashes.values()):
        raise ValueError(f"checkpoint {folder} has a corrupt {MANIFEST}: 'sha256' must map file names to hashes")
    if manifest.get("format") != FORMAT:
        raise ValueError(f"checkpoint {folder} has format {manifest.get('format')!r}, this softdiff reads {FORMAT}")
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


def _check_state(state: object, folder: Path) -> dict:
    """``state.pt`` must hold a step, an optimizer state and the CPU RNG state, each of the right type."""
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {folder} has no training state in state.pt")
    step = state.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"checkpoint {folder} has no valid step in state.pt")
    optimizer = state.get("optimizer")
    if not isinstance(optimizer, dict) or not {"state", "param_groups"} <= set(optimizer):
        raise ValueError(f"checkpoint {folder} has no valid optimizer state in state.pt")
    rng = state.get("rng")
    cpu_rng = rng.get("torch") if isinstance(rng, dict) else None
    expected = torch.get_rng_state()
    if not isinstance(cpu_rng, Tensor) or cpu_rng.dtype != expected.dtype or cpu_rng.shape != expected.shape:
        raise ValueError(f"checkpoint {folder} has no valid random-number state in state.pt")
    return state


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read and verify a checkpoint (a run folder's latest, or a checkpoint folder).

    Every problem with the files (missing, truncated, tampered, of another format, holding
    NaN/inf weights) is a one-line ``ValueError``; anything else is a bug and propagates.
    """
    folder = resolve_checkpoint(path)
    files = _verified(folder)
    what = f"checkpoint {folder} cannot be read"
    try:
        config = RunConfig.model_validate_json(files["config.json"])
    except ValidationError as err:  # say which field and why, not "1 validation error for RunConfig"
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise ValueError(f"{what}: config.json is invalid ({where + ': ' if where else ''}{message})") from None
    try:
        state = torch.load(io.BytesIO(files["state.pt"]), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:  # a bad zip is a RuntimeError in torch
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{what}: state.pt is not a weights-only torch file ({first})") from None
    try:
        names = tuple(c.name for c in COMPONENTS if c.tensors and c.file in files)
        tensors = {k: load_safetensors(files[f"{k}.safetensors"]) for k in names}
    except SafetensorError as err:
        raise ValueError(f"{what}: {str(err).splitlines()[0]}") from None
    state = _check_state(state, folder)
    _refuse_nonfinite(tensors, f"checkpoint {folder} cannot be used")
    where = f"checkpoint {folder}"
    check_identity(
        {f"{k}.safetensors": tensor_metadata(files[f"{k}.safetensors"]) for k in names}, files["config.json"], where
    )
    check_twins(tensors["net"], tensors["ema"], where)
    check_prior(tensors["prior"], config, where)
    check_precond(tensors.get("precond"), config, where)
    check_class_prior(tensors.get("class_prior"), config, where)
    return Checkpoint(
        folder, config, state["step"], tensors["net"], tensors["ema"], tensors["prior"], state, tensors.get("precond"),
        tensors.get("class_prior"),
    )  # fmt: skip
