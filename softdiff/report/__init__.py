"""The run report: one self-contained HTML page per run (or several side by side), for the browser."""

from .build import default_out, write_report
from .collect import EvalTable, Restoration, RunRecord, read_run
from .page import config_differences

__all__ = ["write_report", "default_out", "read_run", "RunRecord", "EvalTable", "Restoration", "config_differences"]
