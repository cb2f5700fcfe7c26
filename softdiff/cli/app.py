"""The Typer application: one module per command, registered here."""

from __future__ import annotations

import typer

from . import corrupt, eval, features, restore, sample, schedule, train

app = typer.Typer(
    name="softdiff",
    help="Soft Diffusion: train, sample and compare diffusion models with any linear corruption.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Soft Diffusion: train, sample and compare diffusion models with any linear corruption."""


app.command("corrupt")(corrupt.corrupt)
app.command("schedule")(schedule.schedule)
app.command("train")(train.train_command)
app.command("sample")(sample.sample)
app.command("eval")(eval.evaluate)
app.command("restore")(restore.restore_command)
app.add_typer(features.app, name="features")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
