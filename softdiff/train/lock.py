"""One writer per run folder: ``train.lock``, created atomically and held by the kernel.

Two ``softdiff train --out X`` (or a ``train`` and a ``--resume`` of it) would interleave
checkpoints, ``latest`` and ``metrics.jsonl`` of two different runs. The first process
creates ``X/train.lock`` with ``O_CREAT | O_EXCL`` (so exactly one creator wins), writes
its PID into it and holds an exclusive ``flock`` on it for as long as it trains. A second
process finds the file, fails to take the ``flock`` and is refused with the holder's PID.

A lock left by a killed run (``kill -9``, a crash, a lost machine) is stale: the kernel
dropped its ``flock`` when the process died, so the next process takes the lock over in
place, without deleting anything a live holder could be using. No PID is trusted for that
decision (PIDs are reused); where ``flock`` is not available (no ``fcntl``, or a file
system that refuses it) the PID decides: a lock whose PID is not alive on this host is stale.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: the PID alone decides
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK", "run_lock", "lock_holder"]

LOCK = "train.lock"
_ATTEMPTS = 20  # a lock removed or replaced under us between open and flock: try again


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def lock_holder(path: Path) -> dict[str, object]:
    """What a lock file says about its holder (``{}`` when it is empty or unreadable)."""
    try:
        holder = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _written_holder(path: Path, wait: float = 1.0) -> dict[str, object]:
    """The holder's record, waiting a moment for a holder that has the lock but has not written it yet."""
    deadline = time.monotonic() + wait
    while not (holder := lock_holder(path)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return holder


def _refusal(run_dir: Path, holder: dict[str, object]) -> ValueError:
    pid, host = holder.get("pid", "?"), holder.get("host")
    where = f" on {host}" if host and host != socket.gethostname() else ""
    since = f" since {holder['started']}" if holder.get("started") else ""
    return ValueError(
        f"run folder {run_dir} is in use by another softdiff train (PID {pid}{where}{since}); wait for it to end, "
        f"stop it (kill {pid}), or choose another --out"
    )


def _try_flock(fd: int) -> bool | None:
    """True: we hold it; False: another process does; None: this file system cannot lock."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as err:
        if err.errno in (errno.EAGAIN, errno.EACCES):
            return False
        return None  # ENOLCK, EOPNOTSUPP, ...: fall back to the PID
    return True


def _same_file(fd: int, path: Path) -> bool:
    """The open file is still the one at ``path`` (not unlinked or replaced by a releasing holder)."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _claim(path: Path, run_dir: Path) -> int:
    """An open descriptor of ``path`` that this process now holds; raises the refusal when it is held."""
    for _ in range(_ATTEMPTS):
        created = True
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
        except FileExistsError:
            created = False
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:  # its holder released it just now
                continue
        locked = _try_flock(fd)
        if locked is False:
            os.close(fd)
            raise _refusal(run_dir, _written_holder(path))
        if locked is None and not created:
            holder = lock_holder(path)
            pid = holder.get("pid")
            mine = holder.get("host") in (None, socket.gethostname())
            if isinstance(pid, int) and (not mine or _pid_alive(pid)) and pid != os.getpid():
                os.close(fd)
                raise _refusal(run_dir, holder)
        if _same_file(fd, path):
            return fd
        os.close(fd)  # we locked a file its holder had just removed: start again with the one now there
    raise ValueError(f"could not lock run folder {run_dir}: {path} keeps changing; is another process restarting?")


@contextlib.contextmanager
def run_lock(run_dir: str | Path) -> Iterator[Path]:
    """Hold ``run_dir/train.lock`` for the ``with`` block; a live holder elsewhere is a one-line ``ValueError``."""
    run_dir = Path(run_dir)
    path = run_dir / LOCK
    fd = _claim(path, run_dir)
    try:
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        os.fsync(fd)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # while still held: a process waiting on the old file sees it gone and retries
        os.close(fd)
