"""The process a run trains with, from its config or from an operator object, and its record.

``config.json`` must be enough to rebuild the operator in a fresh process. A config names
it by spec (built-in names and plugins, ``module:Class`` / ``file.py:Class``, with
``corruption.params``). An operator *object* given to ``train(corruption=...)`` is
written down as such a reference when it can be: its class importable, its constructor
parameters kept as public attributes (the house rule). Otherwise the spec is ``custom``
and only Python can load the run, given the same object again.

Either way the trainer records the operator's constructor arguments
(:func:`~softdiff.corrupt.record.operator_record`, tensors by digest) in
``RunConfig.operator_record``; loading a run compares the operator it rebuilds with it, so a
launcher that registers a name with other parameters, plugin code that changed, or one
changed value of a kernel cannot sample silently with the wrong ``C_t``. Runs from before
the record compare ``repr(operator)``.
"""

from __future__ import annotations

import warnings
from typing import Any

from ..corrupt import CorruptionConfig, CorruptionProcess, GeometricNoise, LevelTable, LinearCorruption, LinearNoise
from ..corrupt.config import CUSTOM
from ..corrupt.plugins import plugin_roots
from ..corrupt.record import operator_record, record_difference
from ..corrupt.reference import reference_of
from .config import RunConfig

__all__ = ["Corruption", "record_corruption", "run_process", "rebuild_process", "plugin_pythonpath"]

Corruption = LinearCorruption | CorruptionProcess
ImageSize = tuple[int, int]


def _recorded(config: CorruptionConfig, corruption: Corruption) -> tuple[CorruptionConfig, str | None]:
    """``config`` re-written to name ``corruption``, and the reason when it cannot be (spec ``custom``)."""
    if not isinstance(corruption, (LinearCorruption, CorruptionProcess)):
        kind = type(corruption).__name__
        raise ValueError(f"corruption must be a LinearCorruption or a CorruptionProcess, got {kind}")
    op = corruption.operator if isinstance(corruption, CorruptionProcess) else corruption
    data: dict[str, Any] = config.model_dump(mode="json")
    found = reference_of(op)
    why = found if isinstance(found, str) else None
    spec, params = (CUSTOM, {}) if isinstance(found, str) else found
    data.update(spec=spec, params=params)
    if isinstance(corruption, CorruptionProcess):
        noise = corruption.noise
        if isinstance(noise, (GeometricNoise, LinearNoise)):
            kind = "geometric" if isinstance(noise, GeometricNoise) else "linear"
            data["noise"] = {"schedule": kind, "s_min": noise.lo, "s_max": noise.hi}
        else:
            why = why or f"its noise schedule {noise!r} is neither GeometricNoise nor LinearNoise"
            data.update(spec=CUSTOM, params={})
        data["levels"] = corruption.warp.to_list() if corruption.warp is not None else None
    return CorruptionConfig.model_validate(data), why


def record_corruption(config: RunConfig, corruption: Corruption) -> RunConfig:
    """``config`` whose corruption section names ``corruption`` (warns when only ``custom`` can)."""
    recorded, why = _recorded(config.corruption, corruption)
    if why is not None:
        warnings.warn(
            f"the operator given to train() cannot be recorded in config.json ({why}); `softdiff sample` and "
            "the other commands cannot rebuild it: load the run in Python with load_run(path, corruption=...)",
            stacklevel=3,
        )
    return RunConfig.model_validate({**config.model_dump(), "corruption": recorded.model_dump()})


def run_process(
    config: RunConfig, size: ImageSize, corruption: Corruption | None = None, trained: RunConfig | None = None
) -> tuple[RunConfig, CorruptionProcess]:
    """The process to train with, and ``config`` with its operator recorded.

    ``corruption``: an operator (with the config's noise and levels) or a whole process, used
    as given; ``config`` already names it (:func:`record_corruption`). ``trained``: the
    config of a resumed checkpoint; an operator other than the one it records is an error
    (its code, registration or parameters changed since).
    """
    if corruption is None:
        process = config.corruption.build(size)
    elif isinstance(corruption, CorruptionProcess):
        process = corruption
    else:
        process = _with_noise(config.corruption, corruption)
    _check_same(trained, process, "the checkpoint being resumed")
    update: dict[str, Any] = {"operator": repr(process.operator), "operator_record": operator_record(process.operator)}
    if not isinstance(corruption, CorruptionProcess):  # the noise defaults it got, written down for good
        noise = config.corruption.resolved_noise(process.operator)
        update["corruption"] = config.corruption.model_copy(update={"noise": noise})
    return config.model_copy(update=update), process


def _with_noise(config: CorruptionConfig, op: LinearCorruption) -> CorruptionProcess:
    """``op`` with the noise schedule and levels of ``config``."""
    warp = LevelTable(config.levels) if config.levels is not None else None
    return CorruptionProcess(op, config.noise_schedule(op), warp)


def rebuild_process(config: RunConfig, size: ImageSize, corruption: Corruption | None = None) -> CorruptionProcess:
    """The process of a trained run: from its config, or from ``corruption`` (the same operator, given again).

    The rebuilt operator must be the one the run trained with (its recorded arguments).
    """
    if corruption is None:
        if config.corruption.spec == CUSTOM:
            raise ValueError(
                f"this run trained with an operator object that could not be recorded ({config.operator}); only "
                "Python can load it: load_run(path, corruption=<the same operator>)"
            )
        process = config.corruption.build(size)
    elif isinstance(corruption, CorruptionProcess):
        process = corruption
    else:
        process = _with_noise(config.corruption, corruption)
    _check_same(config, process, "the run's config.json")
    return process


def _check_same(trained: RunConfig | None, process: CorruptionProcess, where: str) -> None:
    """Refuse ``process`` unless its operator is the one ``trained`` records (by arguments; old runs by ``repr``)."""
    if trained is None:
        return
    if trained.operator_record is not None:
        found = record_difference(operator_record(process.operator), trained.operator_record)
        if found is not None:
            raise ValueError(
                f"the operator is not the one the run trained with, as {where} records it ({found}); the "
                "operator's code, registration or parameters changed since training"
            )
        return
    built = repr(process.operator)
    if trained.operator is not None and built != trained.operator:
        raise ValueError(
            f"the operator is {built}, but {where} records that the run trained with {trained.operator}; the "
            "operator's code, registration or parameters changed since training"
        )


def plugin_pythonpath(config: CorruptionConfig) -> list[str]:
    """Folders a relaunched ``python -m softdiff`` needs on ``PYTHONPATH`` to import ``config``'s plugins."""
    return plugin_roots(config.plugin_refs())
