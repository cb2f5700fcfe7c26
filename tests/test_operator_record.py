"""Identity by recorded arguments (issue 20, item 4): a run knows exactly which operator it trained with."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_train import DATA, config
from typer.testing import CliRunner

from softdiff.cli import app
from softdiff.corrupt import GaussianBlur, LevelTable, LinearCorruption, Mask, MotionBlur, compose
from softdiff.corrupt.record import operator_identity, operator_record, record_difference
from softdiff.corrupt.reference import reference_of
from softdiff.train import load_run, read_checkpoint, train
from softdiff.train.corruption import rebuild_process


class Scaled(GaussianBlur):
    """A subclass whose constructor calls its parent's: the record holds the subclass's own arguments."""

    def __init__(self, width: float = 2.0, gain: float = 0.5) -> None:
        super().__init__(0.01, width)
        self.gain = gain


def test_the_record_is_the_constructor_arguments_with_defaults() -> None:
    assert operator_record(Mask(max_fraction=0.5)) == {
        "class": "softdiff.corrupt.mask:Mask",
        "args": {"kind": "pixels", "max_fraction": 0.5, "schedule": None, "seed": 0},
    }
    assert operator_record(Scaled(3.0)) == {
        "class": f"{__name__}:Scaled",
        "args": {"width": 3, "gain": 0.5},
    }
    chain = Mask() @ GaussianBlur(0.01, 3.0)
    assert [part["class"] for part in operator_record(chain)["compose"]] == [
        "softdiff.corrupt.blur:GaussianBlur",
        "softdiff.corrupt.mask:Mask",
    ]  # the order they are applied
    assert operator_identity(GaussianBlur(0.01, 3)) == operator_identity(GaussianBlur(0.01, 3.0))  # one value


def test_a_changed_interior_tensor_value_is_a_different_operator() -> None:
    """``repr`` shows a 20-value schedule by its shape only; the record digests it."""
    levels = torch.linspace(0, 1, 20, dtype=torch.float64)
    moved = levels.clone()
    moved[7] += 1e-9
    a, b = (MotionBlur(5.0, schedule=LevelTable(v * 5)) for v in (levels, moved))
    assert repr(a) == repr(b) and operator_identity(a) != operator_identity(b)
    difference = record_difference(operator_record(b), operator_record(a))
    assert difference is not None and difference.startswith("operator.args.schedule.state.values")
    assert "the tensor's values differ" in difference
    assert (
        record_difference(operator_record(a), operator_record(MotionBlur(5.0, schedule=LevelTable(levels * 5)))) is None
    )


def test_every_changed_value_names_itself() -> None:
    here, there = (
        operator_record(Mask(max_fraction=0.4) @ GaussianBlur()),
        operator_record(Mask(max_fraction=0.5) @ GaussianBlur()),
    )
    assert record_difference(here, there) == "operator.compose[1].args.max_fraction: 0.4 here, 0.5 recorded"
    assert (
        record_difference(operator_record(GaussianBlur()), there)
        == "operator: args, class only here; compose only in the record"
    )


def test_a_run_refuses_an_operator_with_a_changed_interior_tensor(tmp_path: Path) -> None:
    levels = torch.linspace(0, 1, 12, dtype=torch.float64) ** 2
    op = MotionBlur(3.0, schedule=LevelTable(levels * 3))
    with pytest.warns(UserWarning, match="cannot be recorded in config.json"):  # a schedule object is no JSON value
        train(config(steps=2), tmp_path / "run", data=DATA, progress=False, corruption=op)
    assert read_checkpoint(tmp_path / "run").config.operator_record == operator_record(op)
    assert load_run(tmp_path / "run", corruption=MotionBlur(3.0, schedule=LevelTable(levels * 3))).step == 2
    changed = levels.clone()
    changed[5] *= 1.001
    with pytest.raises(ValueError, match=r"not the one the run trained with.*schedule\.state\.values: the tensor's"):
        load_run(tmp_path / "run", corruption=MotionBlur(3.0, schedule=LevelTable(changed * 3)))


def test_a_composition_built_in_python_round_trips_through_the_cli(tmp_path: Path) -> None:
    op = Mask(max_fraction=0.5) @ GaussianBlur(0.01, 3.0, border="reflect")
    found = reference_of(op)
    assert not isinstance(found, str), found
    spec, params = found
    assert spec.startswith("softdiff.corrupt.blur:GaussianBlur:") and "+softdiff.corrupt.mask:Mask:" in spec
    assert params == {}
    train(config(steps=2), tmp_path / "run", data=DATA, progress=False, corruption=op)
    stored = read_checkpoint(tmp_path / "run").config
    assert stored.corruption.spec == spec and stored.corruption.spec != "custom"
    assert operator_identity(load_run(tmp_path / "run").process.operator) == operator_identity(op)
    result = CliRunner().invoke(
        app,
        [
            "sample",
            "--ckpt",
            str(tmp_path / "run"),
            "-n",
            "2",
            "--steps",
            "2",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "s"),
        ],
    )
    assert result.exit_code == 0, result.output
    three = compose(Mask(max_fraction=0.5), GaussianBlur(0.01, 3.0), Mask(kind="box"))
    assert operator_identity(load_op(reference_of(three))) == operator_identity(three)


def load_op(found: tuple[str, dict] | str) -> LinearCorruption:
    from softdiff.corrupt import CorruptionConfig

    assert not isinstance(found, str), found
    return CorruptionConfig(spec=found[0], params=found[1]).operator((12, 12))


def test_a_run_from_before_the_record_still_loads_and_checks_the_repr(tmp_path: Path) -> None:
    train(config(steps=2), tmp_path / "run", data=DATA, progress=False)
    old = read_checkpoint(tmp_path / "run").config.model_copy(update={"operator_record": None})
    assert repr(rebuild_process(old, (12, 12)).operator) == old.operator
    with pytest.raises(ValueError, match=r"the operator is GaussianBlur\(.*but the run's config.json records"):
        rebuild_process(old, (12, 12), GaussianBlur(0.01, 2.0))


def test_an_operator_keeps_its_identity_after_running_on_other_dtypes() -> None:
    """The level table's device copies live beside it: a run's record is not what it has run on."""
    op = MotionBlur(5.0, schedule=LevelTable(torch.linspace(0, 5, 20, dtype=torch.float64)))
    before = operator_identity(op)
    x = torch.rand(2, 1, 8, 8)
    for dtype in (torch.float32, torch.float64):
        op(x.to(dtype), torch.tensor([0.3, 0.7], dtype=dtype))
    assert operator_identity(op) == before
    assert record_difference(operator_record(op), operator_record(MotionBlur(5.0, schedule=op.schedule))) is None
