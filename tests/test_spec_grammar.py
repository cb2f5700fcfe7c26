"""One spec grammar (issue 20, item 2): training corruptions and restoration operators read the same specs."""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from softdiff.corrupt import (
    CORRUPTIONS,
    CorruptionConfig,
    Desaturate,
    FadeToMean,
    GaussianBlur,
    MotionBlur,
    Strokes,
    corruption_names,
)
from softdiff.corrupt.config import DesaturateParams, FadeParams, MotionParams, StrokesParams, spec_parts
from softdiff.corrupt.spec import SpecPart, format_part, split_spec
from softdiff.restore import build_operator, parse_operator

F64 = torch.float64
SHAPE = (3, 16, 16)  # colour, so desaturate is not the identity

values = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.booleans(),
    st.none(),
    st.sampled_from(["box", "reflect", "pixels", "a b", "x:y", "1+2", "[", "10", "true", ""]),
    st.lists(st.floats(-10, 10, allow_nan=False), max_size=4),
)
keys = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
refs = st.sampled_from(["blur", "mask", "mymod:MyOp", "/tmp/ops dir/my.py:MyOp", "pkg.sub:Op"])


@given(parts=st.lists(st.tuples(refs, st.dictionaries(keys, values, max_size=4)), min_size=1, max_size=4))
def test_a_written_spec_reads_back_as_the_same_parts(parts: list[tuple[str, dict]]) -> None:
    text = "+".join(format_part(ref, params) for ref, params in parts)
    assert split_spec(text) == [SpecPart(ref, params) for ref, params in parts]


def test_parameters_follow_the_last_colon_before_the_first_equals_sign() -> None:
    assert split_spec("ops/my.py:MyOp:k=3,t=0.3+blur") == [
        SpecPart("ops/my.py:MyOp", {"k": 3, "t": 0.3}),
        SpecPart("blur"),
    ]
    assert split_spec("desaturate:weights=[0.3,0.6,0.1],max_fraction=0.5") == [
        SpecPart("desaturate", {"weights": [0.3, 0.6, 0.1], "max_fraction": 0.5})
    ]
    assert split_spec("mask:kind=box") == [SpecPart("mask", {"kind": "box"})]


@pytest.mark.parametrize(
    "spec, message",
    [
        ("blur+", "empty part"),
        ("blur:=2", "is not key=value"),
        ("blur:sigma=2,sigma=3", "sigma is given twice"),
        ("blur:sigma=nan", "must be finite"),
        ("sigma=2", "parameters follow the name after ':'"),
        ("blur:sigma_max=5:t=1", "sigma_max: Input should be a valid number"),
    ],
)
def test_malformed_specs_are_one_line_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        split_spec(spec) if "t=1" not in spec else spec_parts(spec, time=True)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "model, cls, skip",
    [
        (DesaturateParams, Desaturate, ()),
        (FadeParams, FadeToMean, ()),
        (StrokesParams, Strokes, ()),
        (MotionParams, MotionBlur, ("max_length",)),
    ],
)
def test_spec_parameters_are_the_constructor_arguments_with_its_defaults(model, cls, skip) -> None:
    """One home for each default: a zoo operator's spec parameters default to what its constructor does."""
    signature = inspect.signature(cls.__init__).parameters
    for name, field in model.model_fields.items():
        assert name in signature, (cls, name)
        if name not in skip:
            assert field.default == signature[name].default, (cls, name)
    assert set(signature) - {"self", "schedule"} == set(model.model_fields), cls


def test_part_parameters_override_the_config_section_for_that_part_only() -> None:
    config = CorruptionConfig(
        spec="blur:sigma_max=2+blur", blur={"sigma_max": 5.0, "backend": "kornia", "border": "circular"}
    )
    second, first = config.operator((16, 16)).parts()[::-1]
    assert (first.sigma_max, first.border) == (2.0, "circular")
    assert (second.sigma_max, second.border) == (5.0, "circular")
    assert CorruptionConfig(spec="motion:angle=10,max_length=3").operator((16, 16)).angle == 10.0
    assert CorruptionConfig(spec="blur:sigma_max=5+mask:fraction=0.5").label == "blur-mask"


def test_a_training_spec_refuses_a_time() -> None:
    with pytest.raises(ValueError, match="t= freezes an operator at one time, which is for restoration"):
        CorruptionConfig(spec="motion:t=0.5")


@pytest.mark.parametrize("name", [n for n in corruption_names() if n != "custom"])
def test_every_training_corruption_is_a_restoration_operator_at_any_time(name: str) -> None:
    x = torch.rand(2, *SHAPE, dtype=F64, generator=torch.Generator().manual_seed(0))
    op = CorruptionConfig(spec=name).operator(SHAPE[1:])
    for t in (0.3, 1.0):
        A = build_operator(f"{name}:t={t}", SHAPE)
        assert (A.t, A.spec) == (t, f"{name}:t={t}")
        torch.testing.assert_close(A(x), op(x, t), rtol=0, atol=0)
        torch.testing.assert_close(A.adjoint(x), op.adjoint(x, t), rtol=0, atol=0)
    assert build_operator(name, SHAPE).t == 1.0


def test_a_chain_is_frozen_at_one_time() -> None:
    x = torch.rand(1, *SHAPE, dtype=F64)
    A = build_operator("blur:sigma=1+mask:fraction=0.3,t=0.5", SHAPE)
    assert A.t == 0.5 and parse_operator("blur:sigma=1+mask:fraction=0.3,t=0.5").parts[1].params == {"fraction": 0.3}
    expected = CorruptionConfig(spec="blur:sigma=1+mask:fraction=0.3").operator(SHAPE[1:])(x, 0.5)
    torch.testing.assert_close(A(x), expected, rtol=0, atol=0)
    with pytest.raises(ValueError, match="frozen at different times"):
        build_operator("blur:t=0.5+mask:t=0.3", SHAPE)


def test_blur_sigma_is_one_fixed_width_in_both_grammars() -> None:
    op = CorruptionConfig(spec="blur:sigma=2").operator((16, 16))
    assert (op.sigma_min, op.sigma_max) == (2.0, 2.0)
    x = torch.rand(1, *SHAPE, dtype=F64)
    torch.testing.assert_close(build_operator("blur:sigma=2", SHAPE)(x), GaussianBlur(2.0, 2.0)(x, 1.0), rtol=0, atol=0)


def test_a_plugin_part_carries_its_arguments_in_training_and_restoration(tmp_path: Path) -> None:
    path = tmp_path / "grammar_ops.py"
    path.write_text(
        textwrap.dedent(
            """
            from softdiff.corrupt import LinearCorruption

            class Scale(LinearCorruption):
                def __init__(self, k: float = 1.0) -> None:
                    self.k = k

                def forward(self, x, t):
                    return x * (1 - t[:, None, None, None] * (1 - self.k))
            """
        )
    )
    x = torch.rand(1, *SHAPE, dtype=F64)
    op = CorruptionConfig(spec=f"{path}:Scale:k=0.25").operator((16, 16))
    assert op.k == 0.25
    A = build_operator(f"{path}:Scale:k=0.25,t=0.5", SHAPE)
    torch.testing.assert_close(A(x), x * (1 - 0.5 * 0.75))
    with pytest.raises(ValueError, match="has no parameter 'j'"):
        CorruptionConfig(spec=f"{path}:Scale:j=1").operator((16, 16))
    assert "box" in CORRUPTIONS and "level" not in CORRUPTIONS  # level is the model's own C_t: restoration only
