"""The level-table JSON (``softdiff.levels/1``) and the one loader that reads it back.

Every level file goes through :func:`read_levels`: it checks the format and the times, and
:meth:`LevelFile.check` refuses a table chosen for another corruption (``spec`` and the
settings under ``config``), data set or image shape, since its levels are spaced for a
different process. The rule for tables that record nothing about their origin (a bare
list of times, ``{"t": [...]}`` written by hand, or a ``softdiff.levels/1`` table saved
before the spec was recorded): they are taken as they are.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..corrupt import CorruptionConfig
from ..resources import read_regular_file

__all__ = ["LEVELS_FORMAT", "LevelSelection", "LevelFile", "read_levels", "retime"]

LEVELS_FORMAT = "softdiff.levels/1"


@dataclass(frozen=True)
class LevelSelection:
    """K chosen source times (a time warp for :class:`CorruptionProcess`) and how they were found."""

    times: tuple[float, ...]
    distances: tuple[float, ...]
    epsilon: float
    candidate_times: tuple[float, ...]
    strengths: dict[str, tuple[float, ...]] = field(default_factory=dict)
    operator: str = ""
    noise: str = ""
    projection: str = "none"
    samples: int | None = None
    pairs_computed: int = 0
    spec: str | None = None  # the corruption spec the levels were chosen for (required to save)
    config: dict[str, object] | None = None  # the CorruptionConfig the levels were chosen for, when known
    data: dict[str, object] | None = None  # the data they were fitted on ({"dataset": ..., "shape": [C, H, W]})

    @property
    def k(self) -> int:
        return len(self.times)

    def to_dict(self) -> dict[str, object]:
        return {
            "format": LEVELS_FORMAT,
            "t": list(self.times),
            "distances": list(self.distances),
            "epsilon": self.epsilon,
            "candidates": len(self.candidate_times),
            "k": self.k,
            "spec": self.spec,
            "config": self.config,
            "data": self.data,
            "operator": self.operator,
            "noise": self.noise,
            "projection": self.projection,
            "samples": self.samples,
            "pairs_computed": self.pairs_computed,
            "strengths": {name: list(values) for name, values in self.strengths.items()},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def save(self, path: str | Path) -> Path:
        """Write the level table JSON (read back by :func:`read_levels`); it must know its ``spec``."""
        from ..imageio import atomic_write_bytes  # imported late: imageio is not needed for selection

        if not self.spec:
            raise ValueError(
                "this level selection does not record the corruption it was chosen for, so no run could check "
                "it; select with a config (select_levels(CorruptionConfig(spec='blur'), images)) or set it: "
                "dataclasses.replace(selection, spec='blur')"
            )
        atomic_write_bytes(path, (self.to_json() + "\n").encode())
        return Path(path)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> LevelSelection:
        if data.get("format") != LEVELS_FORMAT:
            raise ValueError(f"not a {LEVELS_FORMAT} level table (format={data.get('format')!r})")
        n = int(data["candidates"])  # type: ignore[arg-type]
        optional = ("operator", "noise", "projection", "samples", "pairs_computed", "spec", "config", "data")
        return cls(
            times=tuple(float(v) for v in data["t"]),  # type: ignore[union-attr]
            distances=tuple(float(v) for v in data["distances"]),  # type: ignore[union-attr]
            epsilon=float(data["epsilon"]),  # type: ignore[arg-type]
            candidate_times=tuple(torch.linspace(0, 1, n, dtype=torch.float64).tolist()),
            strengths={k: tuple(v) for k, v in data.get("strengths", {}).items()},  # type: ignore[union-attr]
            **{name: data[name] for name in optional if data.get(name) is not None},  # type: ignore[arg-type]
        )

    @classmethod
    def load(cls, path: str | Path) -> LevelSelection:
        """The whole record of a ``softdiff.levels/1`` file (through :func:`read_levels`)."""
        return read_levels(path).selection()


def _spec_key(spec: str) -> str:
    return "+".join(part.strip() for part in spec.split("+"))


@dataclass(frozen=True)
class LevelFile:
    """A level table as read from disk: its times, and what it was chosen for when it says so."""

    path: Path
    times: tuple[float, ...]
    spec: str | None = None
    config: dict[str, object] | None = None
    data: dict[str, object] | None = None
    record: dict[str, object] | None = None  # the full softdiff.levels/1 record; None for a hand-written table

    def selection(self) -> LevelSelection:
        if self.record is None:
            raise ValueError(f"level table {self.path} holds times only, not a {LEVELS_FORMAT} record")
        try:
            return LevelSelection.from_dict(self.record)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"level table {self.path} is not a valid {LEVELS_FORMAT} file ({err})") from None

    def check(
        self, corruption: CorruptionConfig, *, dataset: str | None = None, shape: tuple[int, ...] | None = None
    ) -> None:
        """Refuse this table for another corruption, setting, data set or image shape than it records."""
        if self.spec is not None and _spec_key(self.spec) != _spec_key(corruption.spec):
            raise ValueError(
                f"level table {self.path} was chosen for corruption {self.spec!r}, not {corruption.spec!r}; "
                f"run `softdiff schedule --corruption {corruption.spec}` for it"
            )
        if self.config is not None:
            mine = corruption.model_dump(mode="json", exclude={"levels"})
            for section, values in self.config.items():
                if not isinstance(values, dict) or not isinstance(mine.get(section), dict):
                    continue
                for key, value in values.items():
                    if key in mine[section] and mine[section][key] != value:
                        raise ValueError(
                            f"level table {self.path} was chosen with {section}.{key} = {value!r}, this corruption "
                            f"has {mine[section][key]!r}; run `softdiff schedule` for it"
                        )
        data = self.data or {}
        if dataset is not None and data.get("dataset") not in (None, dataset):
            raise ValueError(f"level table {self.path} was fitted on {data['dataset']!r}, not on {dataset!r}")
        stored = data.get("shape")
        if shape is not None and isinstance(stored, list) and tuple(stored) != tuple(shape):
            raise ValueError(
                f"level table {self.path} was fitted on images of shape {tuple(stored)}, not {tuple(shape)}"
            )

    def retime(
        self, corruption: CorruptionConfig, *, dataset: str | None = None, shape: tuple[int, ...] | None = None
    ) -> CorruptionConfig:
        """A copy of ``corruption`` re-timed by these levels, after :meth:`check`."""
        self.check(corruption, dataset=dataset, shape=shape)
        return CorruptionConfig.model_validate({**corruption.model_dump(), "levels": list(self.times)})


def _read_json(path: Path) -> object:
    if not path.exists() and not path.is_symlink():
        raise ValueError(f"level table {path} does not exist; create one with `softdiff schedule`")
    data = read_regular_file(path, "level table")  # a FIFO or /dev/zero is refused before it is read
    try:
        return json.loads(data.decode())
    except json.JSONDecodeError as err:
        raise ValueError(f"level table {path} is not valid JSON ({err.msg} at line {err.lineno})") from None
    except UnicodeDecodeError:
        raise ValueError(f"level table {path} is not a text (JSON) file") from None
    except RecursionError:
        raise ValueError(f"level table {path} is nested too deeply to be a level table") from None


def _times(values: object, path: Path) -> tuple[float, ...]:
    if not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"level table {path} must hold a flat list of numbers under 't'")
    times = tuple(float(v) for v in values)
    if len(times) < 2 or not all(math.isfinite(v) for v in times):
        raise ValueError(f"level table {path} needs at least 2 finite times under 't', got {len(times)}")
    if any(b < a for a, b in zip(times, times[1:], strict=False)) or not 0 <= times[0] <= times[-1] <= 1:
        raise ValueError(f"level table {path} must hold non-decreasing times in [0, 1] under 't'")
    return times


def _origin(record: dict[str, object], name: str, kind: type, path: Path) -> object:
    value = record.get(name)
    if value is not None and not isinstance(value, kind):
        raise ValueError(f"level table {path} has a malformed {name!r} entry ({type(value).__name__})")
    return value


def read_levels(path: str | Path) -> LevelFile:
    """Read and check a level table: a ``softdiff.levels/1`` record, ``{"t": [...]}`` or a bare list of times."""
    path = Path(path)
    raw = _read_json(path)
    if isinstance(raw, list):
        return LevelFile(path, _times(raw, path))
    if not isinstance(raw, dict):
        raise ValueError(f"level table {path} must be a JSON object with 't' (or a list of times)")
    fmt = raw.get("format")
    if fmt is not None and fmt != LEVELS_FORMAT:
        raise ValueError(f"level table {path} has format {fmt!r}; this version reads {LEVELS_FORMAT!r}")
    if "t" not in raw:
        raise ValueError(f"level table {path} has no times under 't'")
    level_file = LevelFile(
        path,
        _times(raw["t"], path),
        spec=_origin(raw, "spec", str, path),  # type: ignore[arg-type]
        config=_origin(raw, "config", dict, path),  # type: ignore[arg-type]
        data=_origin(raw, "data", dict, path),  # type: ignore[arg-type]
        record=raw if fmt is not None else None,
    )
    if fmt is not None:
        level_file.selection()  # the whole record must parse, not only its times
    return level_file


def retime(
    corruption: CorruptionConfig,
    path: str | Path,
    *,
    dataset: str | None = None,
    shape: tuple[int, ...] | None = None,
) -> CorruptionConfig:
    """``corruption`` re-timed by the level table at ``path``, refused if the table was made for another one."""
    return read_levels(path).retime(corruption, dataset=dataset, shape=shape)
