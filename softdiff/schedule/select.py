"""Principled corruption levels: the paper's Fréchet-distance schedule (Daras et al. §3.3).

Consecutive distributions ``q_t`` and ``q_t'`` should be as far apart as the network can
bridge and no further. :func:`select_levels` finds such levels for *any* process:

1. ``N`` candidate source times ``u_i = linspace(0, 1, N)`` of the un-warped process
   (operator and noise schedule both evaluated at ``u_i``, so composites such as
   ``blur+mask`` move along their whole strength vector at once).
2. At every candidate a Gaussian of the corrupted data (:mod:`.distances`).
3. Distance between levels: the Fréchet distance (squared 2-Wasserstein) of
   :func:`softdiff.stats.frechet_distance`; the graph search of :mod:`.graph` picks the
   K-level path whose longest hop is shortest. The returned ``epsilon`` is that hop.

Cost: all ``N^2/2`` exact pair distances would take most of an hour at d = 784. Cheap
bounds settle most edges instead: with ``R = S^{1/2}`` computed once per level, the
distance lies between ``|m_i - m_j|^2 + |spec(R_i) - spec(R_j)|^2`` (sorted eigenvalues,
Mirsky's inequality) and ``|m_i - m_j|^2 + |R_i - R_j|_F^2``, both tight when the
covariances nearly commute (blur levels of natural images do). Memory: ``N d^2`` float64
(1.3 GB for 256 levels at d = 784).

Large images go through an orthonormal projection (``projection=r``: the ``r x r``
lowest-frequency DCT-II coefficients of every channel; or any ``(D, d)`` basis with
orthonormal columns, :mod:`.projection`): detail above the kept frequencies is ignored,
so weak blurs that only touch fine detail look closer than they are.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..corrupt import CorruptionConfig, CorruptionProcess
from ..progress import LoggedProgress
from ..stats import eigh_psd, frechet_distance_roots, root_from_eigh
from .distances import LevelFitter, distance_bounds
from .graph import Distances, bisect_levels, check_level_count
from .levelfile import LevelSelection
from .moments import DataMoments, pick_moments
from .projection import dct_rotation, make_projection
from .strengths import level_strengths

__all__ = ["select_levels"]

_MAX_BYTES = 8 * 2**30  # memory for the per-level square roots


def _progress(enabled: bool) -> nullcontext[None] | LoggedProgress:
    """A bar on stderr (plain lines when it is not a terminal), or nothing."""
    if not enabled:
        return nullcontext(None)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    return LoggedProgress(*columns, console=Console(stderr=True))


@dataclass
class _Levels:
    """Every candidate level's mean, ``S^{1/2}``, sorted root spectrum and coordinate standard deviations."""

    means: Tensor  # (N, d)
    roots: Tensor  # (N, d, d)
    spectra: Tensor  # (N, d)
    sds: list[Tensor]  # (N, d) each: along the coordinates, and along the DCT when unprojected

    def exact(self, i: int, j: int) -> float:
        return frechet_distance_roots(self.means[i], self.roots[i], self.means[j], self.roots[j])


def _fit_levels(
    process: CorruptionProcess,
    moments: DataMoments,
    u: Tensor,
    project: Callable[[Tensor], Tensor],
    chunk: int,
    rotation: Tensor | None,
    advance: Callable[[], None],
) -> _Levels:
    means, spectra, roots = [], [], torch.empty(0)
    sds: list[list[Tensor]] = [[], []]
    fit = LevelFitter(process, moments, project, chunk)
    for i, value in enumerate(u.tolist()):
        mean, cov = fit(value)
        evals, evecs = eigh_psd(cov)
        if i == 0:  # allocated once d is known
            roots = torch.empty(len(u), *cov.shape, dtype=torch.float64)
        roots[i] = root_from_eigh(evals, evecs)
        means.append(mean)
        spectra.append(evals.flip(0).sqrt())
        sds[0].append(cov.diagonal().sqrt())
        if rotation is not None:
            sds[1].append(((rotation @ cov) * rotation).sum(1).clamp_min(0).sqrt())
        del cov, evecs
        advance()
    return _Levels(torch.stack(means), roots, torch.stack(spectra), [torch.stack(v) for v in sds if v])


def _search(levels: _Levels, k: int, bar: LoggedProgress | None) -> tuple[list[int], float, Distances]:
    """The K-level path (bounds first, exact distances only where needed), its epsilon, and the distances."""
    pair_task = bar.add_task("pair distances", total=None) if bar else None

    def exact(i: int, j: int) -> float:
        if bar:
            bar.advance(pair_task)
        return levels.exact(i, j)

    lower, upper = distance_bounds(levels.means, levels.roots, levels.spectra, levels.sds)
    dist = Distances(lower, upper, exact)
    guess = (np.sqrt(np.diagonal(upper, 1)).sum() / (k - 1)) ** 2  # the arc length in even hops
    path, epsilon = bisect_levels(dist, k, guess)
    if bar:
        bar.update(pair_task, total=dist.computed, completed=dist.computed)
    return path, epsilon, dist


def _check_size(candidates: int, dim: int) -> None:
    if candidates * dim**2 * 8 > _MAX_BYTES:
        raise ValueError(
            f"{candidates} levels of {dim}-dimensional Gaussians need {candidates * dim**2 * 8 / 2**30:.1f} GiB; "
            "project onto low frequencies (projection=16 keeps 16x16 DCT frequencies per channel) "
            "or use fewer candidates"
        )


def _origin(process: CorruptionProcess | CorruptionConfig, shape: tuple[int, int, int]) -> dict[str, object]:
    """What a selection records about its corruption: spec, config and image shape (from a config only)."""
    if isinstance(process, CorruptionProcess):
        return {}
    config = process.model_dump(mode="json", exclude={"levels"})
    return {"spec": process.spec, "config": config, "data": {"shape": list(shape)}}


def select_levels(
    process: CorruptionProcess | CorruptionConfig,
    images: Tensor | DataMoments,
    *,
    candidates: int = 256,
    k: int = 32,
    projection: int | Tensor | None = None,
    samples: int | None = None,
    seed: int = 0,
    chunk: int = 512,
    progress: bool = False,
) -> LevelSelection:
    """Choose ``k`` of ``candidates`` evenly spaced source times so consecutive levels are equally far.

    ``process`` is a :class:`CorruptionConfig` (built for the images' size; the selection
    records its spec and settings, so it can be saved and checked) or a process, used
    un-warped (its operator and noise schedule; any existing warp is ignored, since the
    result *is* a warp of the un-warped process; set ``spec`` on the result before saving).
    ``images`` are clean training images ``(n, C, H, W)`` (``samples`` of them, picked with
    ``seed``, when given) or exact :class:`DataMoments`. ``projection``: None (full pixel
    space), an int ``r`` (the ``r x r`` lowest DCT frequencies per channel) or a ``(D, d)``
    orthonormal basis. See the module notes for the method, its cost and the projection's
    approximation.
    """
    if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 2:
        raise ValueError(f"candidates must be an integer >= 2, got {candidates!r}")
    check_level_count(k, candidates)
    moments = pick_moments(images, samples, seed)
    built = process if isinstance(process, CorruptionProcess) else process.build(moments.shape[1:])
    base = CorruptionProcess(built.operator, built.noise)
    project = make_projection(projection, moments.shape)
    _check_size(candidates, getattr(project, "dim", math.prod(moments.shape)))
    u = torch.linspace(0, 1, candidates, dtype=torch.float64)

    with _progress(progress) as bar:
        fit_task = bar.add_task("fitting level Gaussians", total=candidates) if bar else None
        rotation = dct_rotation(moments.shape) if projection is None else None
        levels = _fit_levels(base, moments, u, project, chunk, rotation, lambda: bar.advance(fit_task) if bar else None)
        path, epsilon, dist = _search(levels, k, bar)
    times = u[path]
    return LevelSelection(
        times=tuple(times.tolist()),
        distances=tuple(dist.exact(a, b) for a, b in zip(path, path[1:], strict=False)),
        epsilon=epsilon,
        candidate_times=tuple(u.tolist()),
        strengths={name: tuple(v) for name, v in level_strengths(base, times).items()},
        operator=repr(base.operator),
        noise=repr(base.noise),
        projection=repr(project) if projection is not None else "none",
        samples=moments.samples,
        pairs_computed=dist.computed,
        **_origin(process, moments.shape),  # type: ignore[arg-type]
    )
