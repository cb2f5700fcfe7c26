"""The Typer application: one module per command, registered here."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from . import check, corrupt, eval, features, report, restore, sample, schedule, train
from .common import fail


def _click_classes(name: str) -> tuple[type[BaseException], ...]:
    """``name`` from click and from the copy of click that newer Typer versions carry inside."""
    found = []
    for module in ("click.exceptions", "typer._click.exceptions"):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


USAGE_ERRORS = _click_classes("UsageError")
HELP_REQUESTS = _click_classes("NoArgsIsHelpError")


class OneLineErrors(TyperGroup):
    """Click's usage errors (unknown option, bad value, missing argument) as one ``error:`` line, exit 2.

    Click and Typer print a boxed "Usage ... Error" block; every other refusal of softdiff is
    one line, so a script or a user reads all of them the same way. Help screens (``--help``,
    a bare command) are shown as before.
    """

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, standalone_mode=False, **extra)
        except HELP_REQUESTS as err:
            err.show()  # type: ignore[attr-defined]
            sys.exit(err.exit_code)  # type: ignore[attr-defined]
        except USAGE_ERRORS as err:
            where = err.ctx.command_path if err.ctx is not None else "softdiff"
            message = " ".join(err.format_message().split())  # click's messages may span lines
            fail(f"{message} (see `{where} --help`)", err.exit_code)
            sys.exit(err.exit_code)
        except typer.Abort:
            fail("aborted", 1)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    name="softdiff",
    cls=OneLineErrors,
    help="Soft Diffusion: train, sample and compare diffusion models with any linear corruption.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts are plain: "[corruption]" and "softdiff[inception]" must survive
)


@app.callback()
def _root() -> None:
    """Soft Diffusion: train, sample and compare diffusion models with any linear corruption."""


app.command("corrupt")(corrupt.corrupt)
app.command("check-operator")(check.check_operator_command)
app.command("schedule")(schedule.schedule)
app.command("train")(train.train_command)
app.command("sample")(sample.sample)
app.command("eval")(eval.evaluate)
app.command("restore")(restore.restore_command)
app.command("report")(report.report)
app.add_typer(features.app, name="features")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
