"""``softdiff check-operator``: measure the operator laws of a spec on random data and real images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.markup import escape
from rich.table import Table

from ..corrupt import OperatorReport, check_operator
from ..data import load_dataset
from ..resources import check_memory
from ..seeding import MAX_SEED
from .common import console, corruption_config, user_errors

DTYPES = {"float64": torch.float64, "float32": torch.float32}
BOTH = "both"
LIVE_BATCHES = 12  # x, y, their images under C and C^T, the mixed input, the vjp, one sample at a time, ...


def _shape(text: str | None, default: tuple[int, int, int]) -> tuple[int, int, int]:
    if text is None:
        return default
    try:
        c, h, w = (int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--shape must be C,H,W (three integers), got {text!r}") from None
    if min(c, h, w) < 1:
        raise ValueError(f"--shape needs positive sizes, got {text!r}")
    return c, h, w


def _dtypes(text: str) -> list[str]:
    if text == BOTH:
        return list(DTYPES)
    if text not in DTYPES:
        raise ValueError(f"--dtype must be float64 or float32 (or both, the default), got {text!r}")
    return [text]


def _check_sizes(n: int, shape: tuple[int, int, int], dtypes: list[str]) -> None:
    """Refuse a batch (or an image side) whose tensors cannot fit, before any is allocated."""
    c, h, w = shape
    check_memory(LIVE_BATCHES * 8 * n * c * h * w, f"checking {n} images of shape {shape}")
    check_memory(8 * 2 * (h * h + w * w), f"an exact blur basis for {h}x{w} images")  # the DCT operators' matrices


@user_errors
def check_operator_command(
    spec: Annotated[str, typer.Argument(help="Operator spec: blur, mask, blur+mask, motion, mymod:Class, ...")],
    set_fields: Annotated[
        list[str] | None,
        typer.Option("--set", help="Plugin arguments and corruption settings: --set corruption.params.NAME=VALUE."),
    ] = None,
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Data set whose test images are checked.")] = (
        "fashion-mnist"
    ),
    n: Annotated[int, typer.Option("-n", min=2, help="Images per check (the batch, one time per image).")] = 4,
    shape: Annotated[
        str | None, typer.Option(help="C,H,W of the random data (default: the data set's), e.g. 3,32,32.")
    ] = None,
    dtype: Annotated[
        str,
        typer.Option(
            help="both (default: float64 at tolerance 1e-10, then float32, what training uses, at 1e-4), "
            "float64 or float32."
        ),
    ] = BOTH,
    identity_tol: Annotated[float, typer.Option(help="Tolerance of C_0 = I (relative, max norm).")] = 1e-2,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Folder holding the data set files.")] = None,
    seed: Annotated[
        int, typer.Option(min=0, max=MAX_SEED, help="Seed for the random data, the times and the images picked.")
    ] = 0,
) -> None:
    """Check linearity, adjointness, per-sample t, C_0 = I, shapes, dtypes and finiteness of an operator.

    By default in float64 and in float32, the dtype training uses: an operator that turns
    float32 images into float64 (a constant without .to(x)) fails here, not in train.
    """
    dtypes = _dtypes(dtype)
    config = corruption_config(spec, set_fields or [])
    data = load_dataset(dataset, "test", data_dir)
    random_shape = _shape(shape, data.shape)
    _check_sizes(n, random_shape, dtypes)
    _check_sizes(min(n, len(data)), data.shape, dtypes)
    images = data.subset(n, seed).batch(slice(None))
    tables = {}  # measured first: a shape, dtype or NaN failure (which stops a check) is then one line alone
    for name in dtypes:
        options = {"dtype": DTYPES[name], "seed": seed, "identity_tol": identity_tol, "raise_on_failure": False}
        tables[name] = {
            f"random {random_shape}": check_operator(config.operator(random_shape[1:]), (n, *random_shape), **options),
            f"{dataset} x {len(images)}": check_operator(config.operator(tuple(images.shape[2:])), x=images, **options),
        }
    for name, checks in tables.items():
        console.print(_table(spec, name, checks))
    reports = [report for checks in tables.values() for report in checks.values()]
    for report in reports:
        report.raise_on_failure()
    console.print(f"{spec!r} obeys every law ({' and '.join(dtypes)}, {len(reports)} checks)")


def _table(spec: str, dtype: str, reports: dict[str, OperatorReport]) -> Table:
    first = next(iter(reports.values()))
    adjoint = "closed-form adjoint" if first.closed_form_adjoint else "adjoint from torch.func.vjp"
    table = Table(title=escape(f"{spec} in {dtype}: {first.operator} ({adjoint})"), title_justify="left")
    table.add_column("law (relative size)")
    for name in reports:
        table.add_column(escape(name), justify="right")
    table.add_column("tolerance", justify="right")
    for i, law in enumerate(first.laws):
        cells = []
        for report in reports.values():
            measured = report.laws[i]
            cells.append(f"{measured.size:.3g}" if measured.ok else f"[bold red]{measured.size:.3g}[/]")
        table.add_row(law.name, *cells, f"{law.tol:.1g}")
    return table
