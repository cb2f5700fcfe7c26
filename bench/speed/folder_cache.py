"""Time loading a folder of colour photos: decoding every file against reading the decoded cache.

Usage: ``PYTHONPATH=$PWD python bench/speed/folder_cache.py [--images 2000] [--source-size 96] [--size 64]
[--format jpg] [--repeats 3]``.

The folder holds ``--images`` photo-like JPEGs (or PNGs) of ``--source-size`` pixels, the
smooth random colour fields of :mod:`bench.speed.schedule_scale`, read at ``--size`` as a
training run reads them (centre crop, bicubic resize). Three loads are timed, each in this
process with its own empty cache folder: *decode* (the cache off: what every run paid before
the cache), *first* (decode and write the cache) and *cached* (read it back; the median of
``--repeats``). The cached images are checked equal to the decoded ones. Results go to
``bench/results/speed/folder_cache-COMMIT.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from bench.harness import Result, write_result
from bench.speed.schedule_scale import make_colour_folder


def _photos(folder: Path, n: int, size: int, fmt: str) -> Path:
    """``n`` files of ``size`` px in ``fmt``: the smooth colour fields, re-saved as JPEG (quality 90) when asked."""
    make_colour_folder(folder, n, size)
    if fmt == "jpg":
        for png in sorted(folder.glob("*.png")):
            Image.open(png).save(png.with_suffix(".jpg"), quality=90)
            png.unlink()
    return folder


def _load(folder: Path, size: int, cache_dir: Path, enabled: bool) -> tuple[float, torch.Tensor]:
    from softdiff.data.folder import load_image_folder

    os.environ["SOFTDIFF_CACHE"] = str(cache_dir)
    os.environ["SOFTDIFF_FOLDER_CACHE"] = "1" if enabled else "0"
    start = time.perf_counter()
    data = load_image_folder(folder, size=size, channels=3)
    return time.perf_counter() - start, data.images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--source-size", type=int, default=96, help="the files' size in pixels")
    parser.add_argument("--size", type=int, default=64, help="the size they are read at")
    parser.add_argument("--format", choices=("jpg", "png"), default="jpg")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = _photos(root / "photos", args.images, args.source_size, args.format)
        folder_mib = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
        decode_s, decoded = _load(folder, args.size, root / "off", enabled=False)
        first_s, _ = _load(folder, args.size, root / "cache", enabled=True)
        cached = [_load(folder, args.size, root / "cache", enabled=True) for _ in range(args.repeats)]
        if not all(torch.equal(images, decoded) for _, images in cached):
            raise SystemExit("the cached images differ from the decoded ones")
        cache_files = list((root / "cache" / "folders").glob("*.safetensors"))
        cache_mib = sum(p.stat().st_size for p in cache_files) / 2**20
    cached_s = statistics.median(seconds for seconds, _ in cached)
    metrics = {
        "images": args.images,
        "file_format": args.format,
        "file_size_px": args.source_size,
        "read_size_px": args.size,
        "folder_mib": round(folder_mib, 1),
        "cache_mib": round(cache_mib, 1),
        "decode_s": round(decode_s, 3),
        "first_load_with_cache_s": round(first_s, 3),
        "cached_load_s": round(cached_s, 4),
        "cached_loads_s": [round(seconds, 4) for seconds, _ in cached],
        "speedup": round(decode_s / cached_s, 1),
        "decode_images_per_s": round(args.images / decode_s),
        "identical": True,
    }
    notes = [
        "each load is in this process with its own cache folder; the page cache holds the files after the first "
        "load, so 'decode' is decode time, not disk time"
    ]
    write_result(Result.now("speed", "folder_cache", dict(vars(args)), metrics, notes=notes), args.out)
    for key, value in metrics.items():
        print(f"{key:>26}: {value}")


if __name__ == "__main__":
    main()
