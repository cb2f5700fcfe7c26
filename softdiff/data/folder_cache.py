"""A decoded image folder kept on disk, so a folder is decoded and resized once, not every run.

Decoding and resizing thousands of JPEGs takes minutes on a CPU, longer than a GPU needs to
train on them for a while. The result of :func:`~softdiff.data.folder.load_image_folder` (the
uint8 images, the labels, the class names and the notes) is stored as one safetensors file
in ``$SOFTDIFF_CACHE/folders`` (else ``~/.cache/softdiff/folders``), named by a hash of the
folder's path, the split, the size and channels asked for, and every image file's relative
path, byte size and modification time: editing, adding or removing any file gives a new key,
so a stale cache is never read. Nothing is unpickled. A cache that cannot be read is decoded
again (and rewritten); one that cannot be written (a read-only home) is skipped: the cache
only ever saves time. ``SOFTDIFF_FOLDER_CACHE=0`` turns it off.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as save_safetensors

from ..imageio import atomic_write_bytes
from ..resources import cache_root
from .datasets import ImageData

__all__ = ["folder_cache_key", "folder_cache_file", "read_folder_cache", "write_folder_cache", "cache_enabled"]

VERSION = 1  # bump when the decoding changes (crop, resize filter): old entries are then never read


def cache_enabled() -> bool:
    return os.environ.get("SOFTDIFF_FOLDER_CACHE", "1").strip().lower() not in ("0", "false", "no", "off")


def folder_cache_key(directory: Path, files: list[Path], size: int, channels: int | None) -> str:
    """SHA-256 of what the decoded images depend on: the folder, the request, and each file's name, size and time."""
    entries = []
    for path in files:
        stat = path.stat()
        entries.append([str(path.relative_to(directory)), stat.st_size, stat.st_mtime_ns])
    record = {"version": VERSION, "folder": str(directory.resolve()), "size": size, "channels": channels}
    record["files"] = entries
    return hashlib.sha256(json.dumps(record, separators=(",", ":")).encode()).hexdigest()


def folder_cache_file(key: str) -> Path:
    return cache_root() / "folders" / f"{key}.safetensors"


def read_folder_cache(key: str, count: int, size: int) -> ImageData | None:
    """The cached images of ``key`` when present and well-formed (``count`` images of ``size``), else None."""
    path = folder_cache_file(key)
    try:
        with safe_open(str(path), "pt") as handle:  # the names and notes travel in the header's metadata
            meta = json.loads((handle.metadata() or {}).get("softdiff", "{}"))
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except (OSError, SafetensorError, ValueError):
        return None
    images, labels = tensors.get("images"), tensors.get("labels")
    if images is None or images.dtype != torch.uint8 or images.ndim != 4 or len(images) != count:
        return None
    if images.shape[1] not in (1, 3) or tuple(images.shape[2:]) != (size, size):
        return None
    if labels is not None and (labels.dtype != torch.long or tuple(labels.shape) != (count,)):
        return None
    classes, notes = meta.get("classes"), meta.get("notes", [])
    if (labels is None) != (classes is None) or not all(isinstance(n, str) for n in notes):
        return None
    try:
        return ImageData(images, labels, "folder", tuple(classes) if classes else None, tuple(notes))
    except ValueError:  # labels that do not index the names
        return None


def write_folder_cache(key: str, data: ImageData) -> Path | None:
    """Store ``data`` under ``key`` (atomically); None when the cache folder cannot be written."""
    tensors = {"images": data.images.contiguous()}
    if data.labels is not None:
        tensors["labels"] = data.labels.to(torch.long).contiguous()
    meta = {"classes": list(data.classes) if data.classes else None, "notes": list(data.notes)}
    payload = save_safetensors(tensors, metadata={"softdiff": json.dumps(meta)})
    path = folder_cache_file(key)
    try:
        atomic_write_bytes(path, payload)
    except OSError:
        return None
    return path
