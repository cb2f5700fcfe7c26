"""Disk and memory checks done before the work, so a bad path or an absurd size fails in one line.

A run that would fail only after minutes of data loading or training (a read-only
folder, an ``--out`` that is a file, a tensor larger than the machine's memory) is
refused up front with a ``ValueError`` naming the path or the size. Full disks and other
``OSError``s met later are described in one line by :func:`describe_os_error`.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

import torch

__all__ = [
    "cache_root",
    "writable_dir",
    "writable_file",
    "read_regular_file",
    "MAX_TEXT_BYTES",
    "fsync_dir",
    "describe_os_error",
    "memory_bytes",
    "check_memory",
    "format_bytes",
]


def describe_os_error(err: OSError, doing: str | None = None) -> str:
    """``"could not write ...: runs/x/latest: No space left on device"``: one line for any ``OSError``."""
    reason = err.strerror or str(err) or type(err).__name__
    if err.errno == errno.ENOSPC:
        reason += " (free some space, or choose another --out)"
    where = f"{err.filename}: {reason}" if err.filename else reason
    return f"{doing}: {where}" if doing else where


def writable_dir(path: str | Path, what: str = "output folder") -> Path:
    """Create ``path`` (and its parents) if needed and prove a file can be written in it.

    Raises a one-line ``ValueError`` when ``path`` is a file, lies under a file (such as
    ``/dev/null/x``), or is not writable: the check a long job makes before its first step.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"the {what} {path} is a file, not a folder; choose another path")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except FileExistsError:
        raise ValueError(f"the {what} {path} cannot be created: a part of that path is a file") from None
    except NotADirectoryError:
        raise ValueError(f"the {what} {path} cannot be created: a part of that path is not a folder") from None
    except OSError as err:
        raise ValueError(f"the {what} {path} is not writable ({err.strerror or err})") from None
    return path


def refuse_special(path: str | Path, what: str = "output file") -> Path:
    """Refuse to replace anything at ``path`` but a regular file: a device (``/dev/null``), FIFO, socket or link.

    An atomic write renames a temporary file over its target, which would replace the device
    node or the link itself (as root, ``/dev/null`` became a regular file).
    """
    path = Path(path)
    if path.is_symlink():
        raise ValueError(f"the {what} {path} is a symbolic link; give the path it points to, or another one")
    if path.exists() and not path.is_file() and not path.is_dir():
        raise ValueError(f"the {what} {path} is not a regular file (a device, FIFO or socket); choose another path")
    return path


MAX_TEXT_BYTES = 4 << 20  # config files and level tables are kilobytes; this is a typo or a device, not a request


def read_regular_file(path: str | Path, what: str, limit: int = MAX_TEXT_BYTES) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes, else a one-line ``ValueError``.

    A FIFO would block the read forever and ``/dev/zero`` would grow it until memory runs
    out, so anything but a regular file (after following links) is refused before it is opened.
    """
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ValueError(f"{what} {path} does not exist") from None
    except OSError as err:
        raise ValueError(f"{what} {path} cannot be read ({err.strerror or err})") from None
    if stat.S_ISDIR(info.st_mode):
        raise ValueError(f"{what} {path} is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{what} {path} is not a regular file (a device, FIFO or socket); give a file")
    if info.st_size > limit:
        raise ValueError(f"{what} {path} is {format_bytes(info.st_size)}, more than the {format_bytes(limit)} allowed")
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:  # it grew since the stat
        raise ValueError(f"{what} {path} is more than the {format_bytes(limit)} allowed")
    return data


def writable_file(path: str | Path, what: str = "output file") -> Path:
    """Check that ``path`` can be written as a file: its folder is writable, it is not a folder or a special file."""
    path = refuse_special(path, what)
    if path.is_dir():
        raise ValueError(f"the {what} {path} is a folder; give a file name")
    writable_dir(path.parent, f"folder of the {what}")
    return path


def fsync_dir(path: str | Path) -> None:
    """Make renames inside ``path`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the rename itself is still atomic
    finally:
        os.close(fd)


def memory_bytes(device: torch.device | str = "cpu") -> int:
    """Total memory of the device: physical RAM for the CPU, the card's memory for CUDA."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device.index or 0).total_memory
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: no limit known
        return 1 << 62


def format_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # unreachable


def check_memory(nbytes: float, what: str, device: torch.device | str = "cpu") -> None:
    """Refuse an allocation larger than the device's whole memory before making it."""
    total = memory_bytes(device)
    if nbytes > total:
        raise ValueError(
            f"{what} would need {format_bytes(nbytes)}, more than the {format_bytes(total)} of memory "
            f"on {torch.device(device).type}; ask for less"
        )


def cache_root() -> Path:
    """softdiff's cache folder: ``$SOFTDIFF_CACHE``, else ``~/.cache/softdiff`` (feature statistics, weights)."""
    return Path(os.environ.get("SOFTDIFF_CACHE") or Path.home() / ".cache" / "softdiff")
