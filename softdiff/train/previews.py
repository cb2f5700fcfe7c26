"""Preview grids during training: what the EMA weights sample now, every ``train.preview_every`` steps.

A user judges a run by looking at it. Every preview draws the same 64 samples (seed
``derive_seed(train.seed, "preview")``, sample ``i`` from its own generator), so the grids
of one run differ only by the weights, and a resumed run draws exactly what an
uninterrupted one would have. The sampler is the one ``softdiff sample`` picks for the
run's operator, at ``train.preview_steps`` network calls: cheap enough to cost a few per
cent of the main job (``bench/speed/previews.py``). Only rank 0 samples; a grid with a
non-finite pixel is not written (the line in ``previews.jsonl`` says so).
"""

from __future__ import annotations

import io
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from ..corrupt import CorruptionProcess
from ..imageio import atomic_write_bytes, make_grid
from ..samplers import default_sampler, generate, nfe
from ..samplers.prior import Prior
from ..score import Denoiser
from ..seeding import derive_seed
from .config import RunConfig

__all__ = [
    "PREVIEWS",
    "PREVIEW_LOG",
    "PREVIEW_SAMPLES",
    "Previewer",
    "preview_path",
    "preview_due",
    "drop_previews_after",
]

PREVIEWS = "previews"  # the folder in the run
PREVIEW_LOG = "previews.jsonl"  # one line per preview: step, sampler, steps, seed, seconds, file, ...
PREVIEW_SAMPLES = 64  # an 8 x 8 grid
PREVIEW_SCALE = 2  # 28-pixel images are too small to judge at their own size


def preview_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / PREVIEWS / f"step-{step}.png"


def preview_due(config: RunConfig, step: int, end: int) -> bool:
    """A preview after step ``step``: every ``preview_every`` steps and after the run's last step."""
    every = config.train.preview_every
    return every is not None and (step % every == 0 or step == config.train.steps == end)


@dataclass
class Previewer:
    """Draws and writes the preview grid of a step from the EMA denoiser (call on rank 0 only)."""

    run_dir: Path
    denoiser: Denoiser
    process: CorruptionProcess
    prior: Prior
    device: torch.device
    sampler: str
    steps: int
    seed: int

    @classmethod
    def build(
        cls,
        config: RunConfig,
        run_dir: Path,
        denoiser: Denoiser,
        process: CorruptionProcess,
        prior: Prior,
        device: torch.device,
    ) -> Previewer:
        steps = config.train.preview_steps
        sampler = default_sampler(process.operator, steps)
        return cls(run_dir, denoiser, process, prior, device, sampler, steps, derive_seed(config.train.seed, "preview"))

    def images(self) -> Tensor:
        """The 64 samples of the current EMA weights, ``(64, C, H, W)`` in [-1, 1] on the CPU."""
        self.denoiser.eval()  # the EMA copy is always in eval mode; its wrapper starts in training mode
        with torch.no_grad():
            out = generate(
                self.denoiser, self.process, self.prior, PREVIEW_SAMPLES, sampler=self.sampler, steps=self.steps,
                seed=self.seed, batch_size=PREVIEW_SAMPLES, device=self.device,
            )  # fmt: skip
        assert isinstance(out, Tensor)
        return out

    def write(self, step: int) -> tuple[Tensor | None, dict]:
        """Write ``previews/step-N.png`` and its log line; returns ``(grid as (C, H, W) uint8 or None, record)``.

        The grid is None (and no file is written) when a sample is not finite.
        """
        start, cpu = time.perf_counter(), time.process_time()
        images = self.images()
        finite = bool(torch.isfinite(images).all())
        grid = make_grid(images, nrow=int(math.sqrt(PREVIEW_SAMPLES))) if finite else None
        path = preview_path(self.run_dir, step)
        if grid is not None:
            pixels = grid.permute(1, 2, 0).numpy()
            picture = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
            picture = picture.resize((picture.width * PREVIEW_SCALE, picture.height * PREVIEW_SCALE), Image.NEAREST)
            buffer = io.BytesIO()
            picture.save(buffer, format="PNG")
            atomic_write_bytes(path, buffer.getvalue())
        record = {
            "step": step,
            "file": path.name if grid is not None else None,
            "finite": finite,
            "sampler": self.sampler,
            "steps": self.steps,
            "nfe": nfe(self.sampler, self.steps),
            "n": PREVIEW_SAMPLES,
            "seed": self.seed,
            "seconds": time.perf_counter() - start,
            "cpu_seconds": time.process_time() - cpu,  # this process's CPU time: the work, whatever the machine's load
        }
        log = self.run_dir / PREVIEWS / PREVIEW_LOG
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as f:
            f.write(json.dumps(record) + "\n")
        return grid, record


def drop_previews_after(run_dir: Path, step: int) -> None:
    """On resume: forget the previews logged after the checkpoint (they will be drawn again, identically)."""
    log = run_dir / PREVIEWS / PREVIEW_LOG
    if not log.is_file():
        return
    kept = []
    for line in log.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a line cut by a crash
    atomic_write_bytes(log, "".join(f"{line}\n" for line in kept).encode())
