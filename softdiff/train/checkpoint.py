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
        optimizer.pt               the optimiser's state_dict (torch.load(weights_only=True))
        rng.safetensors            the random-number states
        trainer.json               step, world size, the partial logging window
        config.json                the full resolved RunConfig
        manifest.json              format, step, the components present and the SHA-256 of every file above

A checkpoint is a set of named components (:data:`COMPONENTS`, the one list of its files),
each a :class:`Component` that encodes and decodes its own state (``state_dict`` in,
``from_state_dict`` out): safetensors for tensors, a weights-only torch file for the
optimiser's nested state, JSON for plain values. The manifest lists the components present.
Older checkpoints still load: those whose manifest has no ``components`` key, and those
written before the training state was split, whose ``state.pt`` (:data:`LEGACY_STATE`)
held the optimiser, the RNG state and the trainer's values together
(``tests/fixtures/format1-run`` is one).

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
    "TRAINING_STATE",
    "LEGACY_STATE",
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
    """One named part of a checkpoint: its file (the suffix says how it is stored) and whether it is required."""

    name: str
    file: str
    required: bool = True

    @property
    def tensors(self) -> bool:
        """A safetensors file of plain tensors, stamped with the config's identity."""
        return self.file.endswith(".safetensors")

    def state_dict_bytes(self, state: dict, identity: str) -> bytes:
        """The file's bytes for ``state`` (tensors moved to the CPU)."""
        if self.tensors:
            return _tensors(state, identity)
        if self.file.endswith(".json"):
            return json.dumps(state, indent=2, allow_nan=False).encode()
        buffer = io.BytesIO()
        torch.save(state, buffer)
        return buffer.getvalue()

    def from_state_dict_bytes(self, data: bytes, where: str) -> dict:
        """The state back from the file's bytes, never unpickled; a damaged file is a one-line ``ValueError``."""
        try:
            if self.tensors:
                return load_safetensors(data)
            if self.file.endswith(".json"):
                value = json.loads(data)
                if not isinstance(value, dict):
                    raise ValueError("not a JSON object")
                return value
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except SafetensorError as err:
            raise ValueError(f"{where}: {str(err).splitlines()[0]}") from None
        except (pickle.UnpicklingError, RuntimeError, EOFError) as err:  # a bad zip is a RuntimeError in torch
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ValueError(f"{where}: {self.file} is not a weights-only torch file ({first})") from None
        except (ValueError, UnicodeDecodeError) as err:
            raise ValueError(f"{where}: {self.file} is not valid JSON ({str(err).splitlines()[0]})") from None


COMPONENTS: tuple[Component, ...] = (
    Component("net", "net.safetensors"),
    Component("ema", "ema.safetensors"),
    Component("prior", "prior.safetensors"),
    Component("precond", "precond.safetensors", required=False),  # runs that need no data statistics lack it
    Component("class_prior", "class_prior.safetensors", required=False),  # class-conditional runs only
    Component("optimizer", "optimizer.pt"),  # nested lists and numbers around the moments: a torch file
    Component("rng", "rng.safetensors"),
    Component("trainer", "trainer.json"),  # step, world size, the partial logging window
)
TRAINING_STATE = ("optimizer", "rng", "trainer")  # what resume restores beyond the weights
# before the split: one weights-only torch file {"step", "optimizer", "rng", "world_size", "window"}
LEGACY_STATE = Component("state", "state.pt")
_BY_NAME = {c.name: c for c in COMPONENTS}


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
    optimizer: dict
    rng: dict[str, Tensor]
    trainer: dict
    precond: dict[str, Tensor] | None = None
    class_prior: dict[str, Tensor] | None = None

    @property
    def state(self) -> dict:
        """The training state in one dict (``step``, ``optimizer``, ``rng``, ``world_size``, ``window``)."""
        return {**self.trainer, "optimizer": self.optimizer, "rng": self.rng}


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
    safetensors ones, the optimiser's ``state_dict``, and a JSON-able dict for ``trainer``.
    Refuses (``ValueError``) a missing required component, an unknown one, and weights or a
    prior holding NaN/inf. On any failure (a full disk: ``OSError``) the temporary folder is
    removed and ``latest`` still names the previous checkpoint.
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
        files = {c.file: c.state_dict_bytes(parts[c.name], identity) for c in present}
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
    legacy = LEGACY_STATE.file in hashes  # written before the training state was split
    wanted = [
        c.file
        for c in COMPONENTS
        if (c.required and not (legacy and c.name in TRAINING_STATE)) or (not c.required and c.file in hashes)
    ]
    wanted += [LEGACY_STATE.file] if legacy else []
    contents = {}
    for filename in [*wanted, CONFIG]:
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


def _training_state(files: dict[str, bytes], folder: Path, what: str) -> tuple[dict, dict, dict]:
    """``(optimizer, rng, trainer)`` from the split files, or from an older checkpoint's ``state.pt``."""
    if LEGACY_STATE.file in files:
        state = LEGACY_STATE.from_state_dict_bytes(files[LEGACY_STATE.file], what)
        if not isinstance(state, dict):
            raise ValueError(f"checkpoint {folder} has no training state in {LEGACY_STATE.file}")
        trainer = {k: v for k, v in state.items() if k not in ("optimizer", "rng")}
        optimizer, rng, names = state.get("optimizer"), state.get("rng"), (LEGACY_STATE.file,) * 3
    else:
        optimizer, rng, trainer = (
            _BY_NAME[n].from_state_dict_bytes(files[_BY_NAME[n].file], what) for n in TRAINING_STATE
        )
        names = tuple(_BY_NAME[n].file for n in TRAINING_STATE)
    step = trainer.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"checkpoint {folder} has no valid step in {names[2]}")
    if not isinstance(optimizer, dict) or not {"state", "param_groups"} <= set(optimizer):
        raise ValueError(f"checkpoint {folder} has no valid optimizer state in {names[0]}")
    cpu_rng = rng.get("torch") if isinstance(rng, dict) else None
    expected = torch.get_rng_state()
    if not isinstance(cpu_rng, Tensor) or cpu_rng.dtype != expected.dtype or cpu_rng.shape != expected.shape:
        raise ValueError(f"checkpoint {folder} has no valid random-number state in {names[1]}")
    return optimizer, rng, trainer


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read and verify a checkpoint (a run folder's latest, or a checkpoint folder).

    Every problem with the files (missing, truncated, tampered, of another format, holding
    NaN/inf weights) is a one-line ``ValueError``; anything else is a bug and propagates.
    """
    folder = resolve_checkpoint(path)
    files = _verified(folder)
    what = f"checkpoint {folder} cannot be read"
    try:
        config = RunConfig.model_validate_json(files[CONFIG])
    except ValidationError as err:  # say which field and why, not "1 validation error for RunConfig"
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise ValueError(f"{what}: config.json is invalid ({where + ': ' if where else ''}{message})") from None
    names = tuple(c.name for c in COMPONENTS if c.tensors and c.name not in TRAINING_STATE and c.file in files)
    tensors = {k: _BY_NAME[k].from_state_dict_bytes(files[_BY_NAME[k].file], what) for k in names}
    optimizer, rng, trainer = _training_state(files, folder, what)
    _refuse_nonfinite(tensors, f"checkpoint {folder} cannot be used")
    where = f"checkpoint {folder}"
    stamped = [c.file for c in COMPONENTS if c.tensors and c.file in files]
    check_identity({file: tensor_metadata(files[file]) for file in stamped}, files[CONFIG], where)
    check_twins(tensors["net"], tensors["ema"], where)
    check_prior(tensors["prior"], config, where)
    check_precond(tensors.get("precond"), config, where)
    check_class_prior(tensors.get("class_prior"), config, where)
    return Checkpoint(
        folder, config, trainer["step"], tensors["net"], tensors["ema"], tensors["prior"], optimizer, rng, trainer,
        tensors.get("precond"), tensors.get("class_prior"),
    )  # fmt: skip
