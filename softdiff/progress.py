"""Progress for long commands: a rich bar on a terminal, a plain line now and then elsewhere.

Rich draws nothing until the end when its console is not a terminal (a log file, ``nohup``,
SLURM, ``make run | tee``), so a long run would look dead for minutes. :class:`LoggedProgress`
is a rich ``Progress`` that, on such a console, prints one plain line per unfinished task
every ``interval`` seconds (and one when a task finishes) instead of the live bar.
"""

from __future__ import annotations

import time
from typing import Any

from rich.progress import Progress, Task, TaskID

__all__ = ["LoggedProgress", "plain_line"]


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def plain_line(task: Task) -> str:
    """``label 350/1200 (29%) loss 0.0431, 12.5 it/s, 1m08s left``: one task as a log line."""
    parts = [f"{task.description} {task.completed:.0f}"]
    if task.total:
        parts[0] += f"/{task.total:.0f} ({100 * task.completed / task.total:.0f}%)"
    extras = [f"{key} {value}" for key, value in task.fields.items() if value not in (None, "", "--")]
    if task.speed:
        extras.append(f"{task.speed:.3g} it/s")
    if task.time_remaining is not None and not task.finished:
        extras.append(f"{_duration(task.time_remaining)} left")
    elif task.finished and task.finished_time is not None:
        extras.append(f"done in {_duration(task.finished_time)}")
    return " ".join(parts) + (", " + ", ".join(extras) if extras else "")


class LoggedProgress(Progress):
    """A rich ``Progress`` that logs plain lines every ``interval`` seconds when its console is not a terminal."""

    def __init__(self, *columns: Any, interval: float = 30.0, **kwargs: Any) -> None:
        super().__init__(*columns, **kwargs)
        self.interval = float(interval)
        self.plain = not self.disable and not self.console.is_terminal
        self._last = time.monotonic()
        self._reported: set[TaskID] = set()

    def update(self, task_id: TaskID, **kwargs: Any) -> None:
        super().update(task_id, **kwargs)
        self._log()

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._log()

    def _log(self, force: bool = False) -> None:
        if not self.plain:
            return
        now = time.monotonic()
        due = force or now - self._last >= self.interval
        for task in self.tasks:
            finished_now = task.finished and task.id not in self._reported
            if finished_now or (due and not task.finished):
                self.console.print(plain_line(task), highlight=False, markup=False, soft_wrap=True)
                if task.finished:
                    self._reported.add(task.id)
        if due:
            self._last = now

    def start(self) -> None:
        if not self.plain:  # off a terminal the live display would only draw the final state at exit
            super().start()

    def stop(self) -> None:
        self._log(force=True)
        if not self.plain:
            super().stop()
