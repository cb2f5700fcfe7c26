"""``check_operator`` and ``softdiff check-operator`` catch each broken law, and pass correct operators."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor
from typer.testing import CliRunner

from softdiff.cli import app
from softdiff.corrupt import (
    GaussianBlur,
    Identity,
    Law,
    Linear,
    LinearCorruption,
    Mask,
    MotionBlur,
    OperatorReport,
    check_operator,
    compose,
    register_corruption,
)
from softdiff.corrupt.checks import DEFAULT_TOLERANCES

F64 = torch.float64


class SymmetricReflectBlur(GaussianBlur):
    """A planted bug: assumes the reflect-border blur is symmetric (it is not at the edges)."""

    def __init__(self) -> None:
        super().__init__(0.01, 3.0, backend="kornia", border="reflect")

    def adjoint(self, y: Tensor, t: Tensor) -> Tensor:
        return self.forward(y, t)


class Squash(LinearCorruption):
    """Nonlinear: a soft clip that is nearly linear near zero."""

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return torch.tanh(x * (1 + t[:, None, None, None]))


class Offset(LinearCorruption):
    """Affine, not linear: adds t."""

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return x + t[:, None, None, None]


class BatchCentred(LinearCorruption):
    """Linear, but its samples interact: subtracts the batch mean (times t)."""

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return x - t[:, None, None, None] * x.mean(0, keepdim=True)


class FirstTime(LinearCorruption):
    """Uses the first sample's time for the whole batch."""

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return (1 - t[0]) * x


class Crop(LinearCorruption):
    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return x[..., 1:, :]


class HeldWeights(LinearCorruption):
    """Holds a float64 tensor; ``forget=True`` plants the bug of not moving it to the input."""

    def __init__(self, forget: bool = False) -> None:
        self.forget = forget
        self._gain = torch.linspace(0.5, 1.0, 5, dtype=F64)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        gain = self._gain if self.forget else self._gain.to(x)
        return x * (1 - t[:, None, None, None] * gain[: x.shape[-1]])


class DivideByTime(LinearCorruption):
    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return x / t[:, None, None, None]


PLANTED: dict[str, tuple[LinearCorruption, str]] = {
    "wrong adjoint": (SymmetricReflectBlur(), "breaks adjointness"),
    "nonlinear": (Squash(), "breaks linearity"),
    "affine": (Offset(), "breaks linearity"),
    "samples interact": (BatchCentred(), "breaks per-sample t"),
    "one time for the batch": (FirstTime(), "breaks per-sample t"),
    "shape change": (
        Crop(),
        r"breaks shape/dtype/device: forward maps \(4, 2, 6, 5\) float64 on cpu to \(4, 2, 5, 5\)",
    ),
    "tensor left in float64": (
        HeldWeights(forget=True),
        "breaks shape/dtype/device: forward maps .* float32 .* float64",
    ),
    "NaN at t = 0": (DivideByTime(), "breaks finite output: forward gives"),
    "C_0 is not I": (Mask(schedule=Linear(0.3, 1.0)), "breaks C_0 = I"),
}


@pytest.mark.parametrize("name", list(PLANTED))
def test_each_broken_law_is_named_in_one_line(name: str) -> None:
    op, message = PLANTED[name]
    dtype = torch.float32 if "float64" in name else F64
    with pytest.raises(ValueError, match=message) as err:
        check_operator(op, (4, 2, 6, 5), dtype=dtype)
    assert "\n" not in str(err.value)


def test_a_failure_reports_its_size_above_the_tolerance() -> None:
    report = check_operator(SymmetricReflectBlur(), (3, 1, 8, 9), raise_on_failure=False)
    assert not report.ok and [law.name for law in report.failures] == ["adjointness", "adjoint = vjp"]
    assert report["adjointness"] > 1e-3 and report["linearity"] < 1e-14  # the forward map is fine
    with pytest.raises(ValueError, match=f"is {report['adjointness']:.3g} > 1e-10"):
        report.raise_on_failure()


def test_correct_operators_pass_with_sizes_near_rounding() -> None:
    op = compose(Mask("box"), MotionBlur(4.0, centred=False, border="constant"), GaussianBlur(backend="kornia"))
    report = check_operator(op, (3, 2, 9, 11))
    assert isinstance(report, OperatorReport) and report.ok and report.closed_form_adjoint
    assert [law.name for law in report.laws] == [
        "shape/dtype/device",
        "finite output",
        "linearity",
        "adjointness",
        "adjoint = vjp",
        "per-sample t",
        "C_0 = I",
    ]
    assert all(isinstance(law, Law) and law.size < 1e-13 for law in report.laws)
    assert report.times[:2] == (0.0, 1.0) and len(set(report.times)) == 3  # ends and a random time


def test_an_operator_without_closed_form_is_its_own_vjp() -> None:
    class Shift(LinearCorruption):
        def forward(self, x: Tensor, t: Tensor) -> Tensor:
            return torch.roll(x, 1, dims=-1) * t[:, None, None, None]

    report = check_operator(Shift(), (2, 1, 4, 4), identity_tol=None)
    assert not report.closed_form_adjoint and report["adjoint = vjp"] == 0.0 and "C_0 = I" not in report.sizes()


def test_float32_has_its_own_tolerance() -> None:
    op = compose(Mask(), MotionBlur(6.0), GaussianBlur())
    report = check_operator(op, (4, 3, 16, 12), dtype=torch.float32)
    assert report.ok and report.dtype == torch.float32
    worst = max(report["linearity"], report["adjointness"], report["adjoint = vjp"])
    assert DEFAULT_TOLERANCES[F64] < worst < DEFAULT_TOLERANCES[torch.float32]  # rounding float64 would reject


def test_images_can_be_given_and_bad_arguments_are_refused() -> None:
    images = torch.rand(3, 1, 7, 7) * 2 - 1
    report = check_operator(Identity(), x=images, t=[0.2, 0.5, 0.9])
    assert report.dtype == torch.float32 and report.times == pytest.approx((0.2, 0.5, 0.9))
    with pytest.raises(ValueError, match="at least 2 images"):
        check_operator(Identity(), (1, 1, 4, 4))
    with pytest.raises(ValueError, match="needs a shape"):
        check_operator(Identity())
    with pytest.raises(ValueError, match="y has shape"):
        check_operator(Identity(), x=images, y=torch.zeros(3, 1, 7, 6))
    with pytest.raises(TypeError, match="needs a LinearCorruption"):
        check_operator(lambda x, t: x, (2, 1, 4, 4))  # type: ignore[arg-type]


def test_held_tensors_follow_the_input_device() -> None:
    """The meta device stands in for a GPU: an operator that forgets ``.to(x)`` mixes devices."""
    x, t = torch.zeros(2, 1, 3, 5, device="meta"), torch.zeros(2, device="meta")
    assert HeldWeights().forward(x, t).device.type == "meta"
    with pytest.raises(RuntimeError):
        HeldWeights(forget=True).forward(x, t)


def test_repr_is_short_and_hides_underscored_state() -> None:
    class Big(LinearCorruption):
        def __init__(self) -> None:
            self.kernel, self.small, self._cache = torch.zeros(100, 100), torch.tensor([0.5, 2.0]), torch.zeros(50)

        def forward(self, x: Tensor, t: Tensor) -> Tensor:
            return x

    assert repr(Big()) == "Big(kernel=tensor(shape=(100, 100), dtype=float32), small=tensor([0.5, 2.0]))"
    assert repr(HeldWeights()) == "HeldWeights(forget=False)"


# --- the command ---------------------------------------------------------------------------------


def test_check_operator_command_prints_every_law_for_random_data_and_images() -> None:
    result = CliRunner().invoke(app, ["check-operator", "blur+motion", "--dataset", "synthetic", "-n", "3"])
    assert result.exit_code == 0, result.output
    for text in ("linearity", "adjointness", "adjoint = vjp", "per-sample t", "C_0 = I", "random (1, 16, 16)"):
        assert text in result.output
    assert "synthetic x 3" in result.output and "obeys every law (float64 and float32, 4 checks)" in result.output
    assert "blur+motion in float64" in result.output and "blur+motion in float32" in result.output


def test_check_operator_command_fails_with_one_error_line() -> None:
    register_corruption("plantedwrongadjoint", lambda config, size: SymmetricReflectBlur())
    result = CliRunner().invoke(app, ["check-operator", "plantedwrongadjoint", "--dataset", "synthetic"])
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "breaks adjointness" in errors[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["blurr"], "unknown corruption 'blurr'"),
        (["blur", "--dtype", "float16"], "--dtype must be float64 or float32 (or both, the default)"),
        (["blur", "--shape", "3,32"], "--shape must be C,H,W"),
        (["blur", "--dataset", "nope"], "unknown dataset 'nope'"),
    ],
)
def test_check_operator_command_bad_input(args: list[str], message: str) -> None:
    extra = [] if "--dataset" in args else ["--dataset", "synthetic"]
    result = CliRunner().invoke(app, ["check-operator", *args, *extra])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
