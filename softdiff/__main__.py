"""``python -m softdiff ...``: the CLI, also the entry point torchrun starts (``torchrun ... -m softdiff train``)."""

from .cli.app import main

main()
