"""Principled corruption levels: the paper's Fréchet-distance schedule (Daras et al. §3.3).

Consecutive distributions ``q_t`` and ``q_t'`` should be as far apart as the network can
bridge and no further. :func:`select_levels` finds such levels for *any* process:

1. ``N`` candidate source times ``u_i = linspace(0, 1, N)`` of the un-warped process
   (operator and noise schedule both evaluated at ``u_i``, so composites such as
   ``blur+mask`` move along their whole strength vector at once).
2. At every candidate a Gaussian ``N(m_i, S_i)`` of the corrupted data: ``m_i = C_u mean``,
   ``S_i = C_u Cov C_u^T + s_u^2 I`` from the sample mean and covariance of the clean images.
   Adding the noise covariance analytically is the expectation of fitting noisy samples
   ``C_u x0 + s_u eta`` without the Monte-Carlo error of drawing ``eta``. Float64 throughout.
3. Distance between levels: the Fréchet distance (squared 2-Wasserstein) of
   :func:`softdiff.stats.frechet_distance`. An edge ``i -> j`` (``i < j``) exists iff the
   distance is ``<= epsilon``; the fewest-hop path from the first to the last candidate is
   found by breadth-first search, which is correct for any distances (no monotonicity
   assumed).
4. ``epsilon`` is bisected to the smallest value (relative precision 1e-9) whose fewest-hop
   path has ``K - 1`` hops, i.e. the K-level path whose longest hop is shortest. Ties
   between paths with ``K`` levels are broken walking back from the last level and always
   stepping to the *earliest* candidate of the previous BFS layer that is within
   ``epsilon``. The returned ``epsilon`` is the largest hop of that path.

Cost: an exact pair distance needs two ``d x d`` matrix products and a symmetric eigenvalue
problem (~70 ms at d = 784 on 2 idle cores), so all ``N^2/2`` pairs would take most of an
hour. Cheap bounds settle most edges instead: with ``R = S^{1/2}`` computed once per level,
the distance lies between ``|m_i - m_j|^2 + |spec(R_i) - spec(R_j)|^2`` (sorted eigenvalues,
Mirsky's inequality) and ``|m_i - m_j|^2 + |R_i - R_j|_F^2``, both tight when the
covariances nearly commute (blur levels of natural images do). Only pairs the bounds leave
undecided are computed, once, and cached across the bisection. Memory: ``N d^2`` float64
(1.3 GB for 256 levels at d = 784).

Large images go through an orthonormal projection (``projection=r``: the ``r x r``
lowest-frequency DCT-II coefficients of every channel; or any ``(D, d)`` basis with
orthonormal columns). The distances are then those between the projected Gaussians
``N(P^T m, P^T S P)`` (noise stays ``s^2 I``), which is exact for the projected data and a
lower bound of the full distance (projection is 1-Lipschitz): detail above the kept
frequencies is ignored, so weak blurs that only touch fine detail look closer than they are.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from ..stats import eigh_psd, frechet_distance_roots, root_from_eigh
from .base import Compose, LinearCorruption
from .blur import dct_matrix
from .process import CorruptionProcess

__all__ = [
    "select_levels",
    "LevelSelection",
    "DataMoments",
    "DCTProjection",
    "MatrixProjection",
    "fewest_hop_path",
    "select_path",
    "level_strengths",
    "level_distances",
    "LEVELS_FORMAT",
]

LEVELS_FORMAT = "softdiff.levels/1"
_RTOL = 1e-9
_MAX_BYTES = 8 * 2**30  # memory for the per-level square roots


# ----------------------------------------------------------------------------- data moments


@dataclass(frozen=True)
class DataMoments:
    """Mean and covariance factor of clean images: ``Cov = F^T F`` with ``F`` as rows of images.

    Only these enter the level Gaussians, since ``C_u`` is linear. ``factor`` has at most
    ``min(n - 1, D)`` rows, so applying ``C_u`` to it is as cheap as possible.
    """

    mean: Tensor  # (C, H, W), float64
    factor: Tensor  # (r, C, H, W), float64
    samples: int | None = None

    @classmethod
    def from_images(cls, images: Tensor) -> DataMoments:
        """Sample mean and (unbiased) covariance factor of ``(n, C, H, W)`` images."""
        if images.ndim != 4 or images.shape[0] < 2:
            raise ValueError(f"need at least 2 images of shape (n, C, H, W), got {tuple(images.shape)}")
        x = images.to(torch.float64)
        n, shape = x.shape[0], x.shape[1:]
        centred = (x - x.mean(0)).flatten(1) / math.sqrt(n - 1)
        if centred.shape[0] > centred.shape[1]:  # more images than pixels: factor the D x D covariance
            evals, evecs = eigh_psd(centred.T @ centred)
            centred = evals.sqrt()[:, None] * evecs.T
        return cls(x.mean(0), centred.reshape(-1, *shape), n)

    @classmethod
    def from_gaussian(cls, mean: Tensor, cov: Tensor, shape: tuple[int, int, int]) -> DataMoments:
        """Exact moments of ``N(mean, cov)`` (e.g. :class:`softdiff.score.GaussianData`)."""
        evals, evecs = eigh_psd(cov)
        factor = evals.sqrt()[:, None] * evecs.T
        return cls(mean.to(torch.float64).reshape(shape), factor.reshape(-1, *shape), None)

    @property
    def shape(self) -> tuple[int, int, int]:
        c, h, w = self.mean.shape
        return c, h, w


# ------------------------------------------------------------------------------ projections


class Projection(Protocol):
    """An orthonormal linear map from images ``(B, C, H, W)`` to coordinates ``(B, dim)``."""

    dim: int

    def __call__(self, x: Tensor) -> Tensor: ...


class DCTProjection:
    """The ``r x r`` lowest-frequency DCT-II coefficients of every channel (orthonormal, separable)."""

    def __init__(self, r: int, shape: tuple[int, int, int], full: bool = False) -> None:
        c, h, w = shape
        if not full and not 1 <= r <= min(h, w):
            raise ValueError(f"projection keeps r x r DCT frequencies per channel; need 1 <= r <= {min(h, w)}, got {r}")
        self._dh = dct_matrix(h, dtype=torch.float64)[:r]  # full=True: every frequency (r >= H, W)
        self._dw = dct_matrix(w, dtype=torch.float64)[:r]
        self.r, self.dim = r, c * self._dh.shape[0] * self._dw.shape[0]

    def __call__(self, x: Tensor) -> Tensor:
        return (self._dh @ x @ self._dw.T).flatten(1)

    def __repr__(self) -> str:
        return f"DCTProjection({self.r}x{self.r} per channel, dim={self.dim})"


class MatrixProjection:
    """Projection onto the span of a ``(D, d)`` basis with orthonormal columns."""

    def __init__(self, basis: Tensor, shape: tuple[int, int, int]) -> None:
        n = math.prod(shape)
        if basis.ndim != 2 or basis.shape[0] != n or basis.shape[1] < 1:
            raise ValueError(
                f"a projection basis must have shape ({n}, d) for images of shape {shape}, got {tuple(basis.shape)}"
            )
        basis = basis.to(torch.float64)
        gram = basis.T @ basis
        if not torch.allclose(gram, torch.eye(gram.shape[0], dtype=torch.float64), atol=1e-6):
            raise ValueError(
                "projection basis columns must be orthonormal; orthonormalise with torch.linalg.qr(basis).Q"
            )
        self.basis, self.dim = basis, basis.shape[1]

    def __call__(self, x: Tensor) -> Tensor:
        return x.flatten(1) @ self.basis

    def __repr__(self) -> str:
        return f"MatrixProjection(dim={self.dim})"


def _identity_projection(x: Tensor) -> Tensor:
    return x.flatten(1)


def make_projection(projection: int | Tensor | None, shape: tuple[int, int, int]) -> Callable[[Tensor], Tensor]:
    if projection is None:
        return _identity_projection
    if isinstance(projection, Tensor):
        return MatrixProjection(projection, shape)
    if isinstance(projection, bool) or not isinstance(projection, int):
        raise ValueError(
            f"projection must be None, an int (DCT frequencies per axis) or a (D, d) tensor, got {projection!r}"
        )
    return DCTProjection(projection, shape)


# ----------------------------------------------------------------------------- level Gaussians


@torch.no_grad()
def _fit_level(
    process: CorruptionProcess, moments: DataMoments, u: float, project: Callable[[Tensor], Tensor], chunk: int
) -> tuple[Tensor, Tensor]:
    """Mean and covariance of ``C_u x0 + s_u eta`` in projected coordinates."""
    mean = project(process.C(moments.mean[None], u))[0]
    z = torch.cat([project(process.C(rows, u)) for rows in moments.factor.split(chunk)])
    s2 = float(process.noise(torch.tensor(u, dtype=torch.float64))) ** 2
    cov = z.T @ z
    cov.diagonal().add_(s2)
    return mean, cov


# ----------------------------------------------------------------------------- graph search


class _Distances:
    """Pairwise distances known exactly, or through ``lower <= d <= upper`` bounds until needed."""

    def __init__(self, lower: np.ndarray, upper: np.ndarray, exact: Callable[[int, int], float]) -> None:
        self.lower, self.upper, self._exact = lower.copy(), upper.copy(), exact
        self.computed = 0

    @classmethod
    def from_matrix(cls, dist: np.ndarray) -> _Distances:
        return cls(dist, dist, lambda i, j: float(dist[i, j]))

    @property
    def n(self) -> int:
        return self.lower.shape[0]

    def exact(self, i: int, j: int) -> float:
        if self.lower[i, j] != self.upper[i, j]:
            d = self._exact(i, j)
            self.lower[i, j] = self.upper[i, j] = d
            self.computed += 1
        return float(self.upper[i, j])

    def reaches(self, sources: np.ndarray, targets: np.ndarray, eps: float) -> np.ndarray:
        """For each target, whether some earlier source is within ``eps`` (computing only undecided pairs)."""
        if targets.size == 0 or sources.size == 0:
            return np.zeros(targets.size, dtype=bool)
        before = sources[:, None] < targets[None, :]
        hit = ((self.upper[np.ix_(sources, targets)] <= eps * (1 - _RTOL)) & before).any(0)
        open_ = (self.lower[np.ix_(sources, targets)] <= eps) & before
        for col in np.flatnonzero(~hit & open_.any(0)):
            j = int(targets[col])
            rows = sources[open_[:, col]]
            for i in rows[np.argsort(self.lower[rows, j], kind="stable")]:
                if self.exact(int(i), j) <= eps:
                    hit[col] = True
                    break
        return hit


def _fewest_hops(dist: _Distances, eps: float) -> list[int] | None:
    """Fewest-hop path ``0 -> n-1`` using edges with distance ``<= eps`` (BFS), or None."""
    n = dist.n
    layer = np.full(n, -1)
    layer[0] = 0
    frontier, depth = np.array([0]), 0
    while layer[n - 1] < 0 and frontier.size:
        targets = np.flatnonzero(layer < 0)
        frontier = targets[dist.reaches(frontier, targets, eps)]
        depth += 1
        layer[frontier] = depth
    if layer[n - 1] < 0:
        return None
    path = [n - 1]
    for d in range(layer[n - 1] - 1, -1, -1):  # walk back, always to the earliest possible predecessor
        j = path[-1]
        for i in np.flatnonzero(layer == d):
            if i < j and dist.reaches(np.array([i]), np.array([j]), eps)[0]:
                path.append(int(i))
                break
    return path[::-1]


def fewest_hop_path(dist: np.ndarray | Tensor, epsilon: float) -> list[int] | None:
    """Fewest-hop path from the first to the last level over edges ``i < j`` with ``dist[i, j] <= epsilon``."""
    return _fewest_hops(_Distances.from_matrix(_as_matrix(dist)), float(epsilon))


def _as_matrix(dist: np.ndarray | Tensor) -> np.ndarray:
    arr = dist.detach().cpu().double().numpy() if isinstance(dist, Tensor) else np.asarray(dist, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] < 2:
        raise ValueError(f"distances must be a square matrix over at least 2 levels, got shape {arr.shape}")
    return arr


def check_level_count(k: int, n: int) -> None:
    """``k`` levels can be chosen from ``n`` candidates (first and last included), else a ``ValueError``."""
    if k < 2:
        raise ValueError(f"k must be at least 2 (the first and the last level), got {k}")
    if k > n:
        raise ValueError(f"cannot choose k={k} levels from {n} candidates; use at least {k} candidates or a smaller k")


def _bisect(dist: _Distances, k: int, guess: float | None = None) -> tuple[list[int], float]:
    """The K-level fewest-hop path at the smallest feasible epsilon, and that epsilon (its longest hop)."""
    n, target = dist.n, k - 1
    check_level_count(k, n)

    def hops(eps: float) -> tuple[int, list[int] | None]:
        path = _fewest_hops(dist, eps)
        return (len(path) - 1 if path else n), path  # unreachable counts as more hops than any path

    hi = dist.exact(0, n - 1)
    if not math.isfinite(hi):
        raise ValueError("level distances are not finite; check the images and the corruption for NaN/inf")
    h0, path0 = hops(0.0)
    if h0 <= target and path0 is not None:
        if h0 < target:
            raise ValueError(
                f"cannot select exactly k={k} levels: the distances are degenerate (at epsilon=0 the levels are "
                f"already joined in {h0 + 1}); nearest achievable: k={h0 + 1}"
            )
        return path0, max((dist.exact(a, b) for a, b in zip(path0, path0[1:], strict=False)), default=0.0)
    lo = 0.0
    if guess is not None and 0 < guess < hi:  # bracket around the guess so the bounds stay local
        h_guess = hops(guess)[0]
        lo, hi = (lo, guess) if h_guess <= target else (guess, hi)
    while hi - lo > _RTOL * hi:
        mid = lo + (hi - lo) / 2 if lo == 0 or hi / lo > 4 else math.sqrt(lo * hi)
        if hops(mid)[0] <= target:
            hi = mid
        else:
            lo = mid
    h_hi, path = hops(hi)
    if h_hi != target or path is None:
        h_lo = hops(lo)[0]
        below = f"{h_lo + 1} levels" if h_lo < n else "no path at all (a hop wider than epsilon is unavoidable)"
        raise ValueError(
            f"cannot select exactly k={k} levels: at epsilon={hi:.6g} the fewest-hop path jumps from {below} "
            f"to {h_hi + 1} levels (degenerate distances); nearest achievable: k={h_hi + 1}"
            + (f" or k={h_lo + 1}" if h_lo < n else "")
            + ", or use more candidates"
        )
    return path, max(dist.exact(a, b) for a, b in zip(path, path[1:], strict=False))


def select_path(dist: np.ndarray | Tensor, k: int) -> tuple[list[int], float]:
    """Choose ``k`` of the levels of a full distance matrix: ``(indices, epsilon)`` (see the module notes)."""
    arr = _as_matrix(dist)
    return _bisect(_Distances.from_matrix(arr), k)


# ------------------------------------------------------------------------------- strengths


def _leaves(op: LinearCorruption) -> list[LinearCorruption]:
    if isinstance(op, Compose):
        return _leaves(op.inner) + _leaves(op.outer)  # application order
    return [op]


def level_strengths(process: CorruptionProcess, times: Tensor | list[float]) -> dict[str, list[float]]:
    """Named strengths of the un-warped process at source times: blur sigma, mask fraction, noise s.

    Every operator of the chain with a ``strength(t)`` method contributes one, named by its
    ``strength_name`` (default: its class name in lower case); repeated names get ``_2``, ...
    """
    u = torch.as_tensor(times, dtype=torch.float64)
    out: dict[str, list[float]] = {}

    def put(name: str, values: Tensor) -> None:
        key, i = name, 2
        while key in out:
            key, i = f"{name}_{i}", i + 1
        out[key] = [float(v) for v in values]

    for leaf in _leaves(process.operator):
        if callable(getattr(leaf, "strength", None)):
            put(getattr(leaf, "strength_name", None) or type(leaf).__name__.lower(), leaf.strength(u))
    put("noise_s", process.noise(u))
    return out


# ------------------------------------------------------------------------------- selection


@dataclass(frozen=True)
class LevelSelection:
    """K chosen source times (a time warp for :class:`CorruptionProcess`) and how they were found."""

    times: tuple[float, ...]
    distances: tuple[float, ...]
    epsilon: float
    candidate_times: tuple[float, ...]
    strengths: dict[str, tuple[float, ...]] = field(default_factory=dict)
    operator: str = ""
    noise: str = ""
    projection: str = "none"
    samples: int | None = None
    pairs_computed: int = 0
    spec: str | None = None
    config: dict[str, object] | None = None  # the CorruptionConfig the levels were chosen for, when known
    data: dict[str, object] | None = None  # the data they were fitted on ({"dataset": ..., "shape": [C, H, W]})

    @property
    def k(self) -> int:
        return len(self.times)

    def to_dict(self) -> dict[str, object]:
        return {
            "format": LEVELS_FORMAT,
            "t": list(self.times),
            "distances": list(self.distances),
            "epsilon": self.epsilon,
            "candidates": len(self.candidate_times),
            "k": self.k,
            "spec": self.spec,
            "config": self.config,
            "data": self.data,
            "operator": self.operator,
            "noise": self.noise,
            "projection": self.projection,
            "samples": self.samples,
            "pairs_computed": self.pairs_computed,
            "strengths": {name: list(values) for name, values in self.strengths.items()},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def save(self, path: str | Path) -> Path:
        """Write the level table JSON (read back by ``CorruptionConfig.with_levels_file``)."""
        from ..imageio import atomic_write_bytes  # imported late: imageio is not needed for selection

        atomic_write_bytes(path, (self.to_json() + "\n").encode())
        return Path(path)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> LevelSelection:
        if data.get("format") != LEVELS_FORMAT:
            raise ValueError(f"not a {LEVELS_FORMAT} level table (format={data.get('format')!r})")
        n = int(data["candidates"])  # type: ignore[arg-type]
        optional = ("operator", "noise", "projection", "samples", "pairs_computed", "spec", "config", "data")
        return cls(
            times=tuple(float(v) for v in data["t"]),  # type: ignore[union-attr]
            distances=tuple(float(v) for v in data["distances"]),  # type: ignore[union-attr]
            epsilon=float(data["epsilon"]),  # type: ignore[arg-type]
            candidate_times=tuple(torch.linspace(0, 1, n, dtype=torch.float64).tolist()),
            strengths={k: tuple(v) for k, v in data.get("strengths", {}).items()},  # type: ignore[union-attr]
            **{name: data[name] for name in optional if data.get(name) is not None},  # type: ignore[arg-type]
        )

    @classmethod
    def load(cls, path: str | Path) -> LevelSelection:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except FileNotFoundError:
            raise ValueError(f"level table {path} does not exist; create one with `softdiff schedule`") from None
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"level table {path} is not a valid {LEVELS_FORMAT} file ({err})") from None


def _bounds(means: Tensor, roots: Tensor, spectra: Tensor, marginal_sds: list[Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds on every pairwise Fréchet distance, without a matrix square root per pair.

    With ``R = S^{1/2}``, the covariance part ``Tr S1 + Tr S2 - 2 Tr (R1 S2 R1)^{1/2}`` is at
    most ``|R1 - R2|_F^2`` (the coupling ``y = R2 R1^{-1} x``) and at least both
    ``|spec(R1) - spec(R2)|^2`` over sorted eigenvalues (Mirsky's inequality: the Bures
    distance is ``min_U |R1 - R2 U|_F``) and ``sum_k (sd1_k - sd2_k)^2`` over the standard
    deviations along any orthonormal basis (a coupling of the joint couples every
    coordinate). All are tight when the covariances nearly commute with each other and
    the basis: blur levels of natural images in the DCT basis, masks in the pixel basis.
    """
    mean_d2 = torch.cdist(means, means) ** 2
    lower = mean_d2 + torch.cdist(spectra, spectra) ** 2
    for sds in marginal_sds:
        lower = torch.maximum(lower, mean_d2 + torch.cdist(sds, sds) ** 2)
    traces = (spectra**2).sum(1)
    flat = roots.flatten(1)
    upper = mean_d2 + (traces[:, None] + traces[None, :] - 2 * flat @ flat.T).clamp_min(0)
    slack = 1e-9 * (traces[:, None] + traces[None, :] + mean_d2)  # round-off must never exclude the true value
    return (lower - slack).clamp_min(0).numpy(), (upper + slack).numpy()


def _dct_rotation(shape: tuple[int, int, int]) -> Tensor:
    """Dense orthonormal 2-D DCT-II of every channel, as a ``(D, D)`` matrix acting on flat images."""
    c, h, w = shape
    n = c * h * w
    eye = torch.eye(n, dtype=torch.float64).reshape(n, c, h, w)
    return DCTProjection(max(h, w), shape, full=True)(eye).T.contiguous()


def _progress(enabled: bool):
    if not enabled:
        return nullcontext(None)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from ..progress import LoggedProgress

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    return LoggedProgress(*columns, console=Console(stderr=True))


def _moments(images: Tensor | DataMoments, samples: int | None, seed: int) -> DataMoments:
    if isinstance(images, DataMoments):
        return images
    if samples is not None and images.shape[0] > samples:
        pick = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(seed))[:samples]
        images = images[pick]
    return DataMoments.from_images(images)


def level_distances(
    process: CorruptionProcess,
    images: Tensor | DataMoments,
    times: Tensor | list[float],
    *,
    projection: int | Tensor | None = None,
    samples: int | None = None,
    seed: int = 0,
    chunk: int = 512,
) -> list[float]:
    """Fréchet distances between the level Gaussians at consecutive ``times`` of ``process`` (as given).

    Unlike :func:`select_levels` this honours the process's warp, so it measures any
    schedule, e.g. the default one at ``t = k / (K - 1)`` against a selected table.
    """
    moments = _moments(images, samples, seed)
    project = make_projection(projection, moments.shape)
    ts = torch.as_tensor(times, dtype=torch.float64).tolist()
    warped = [float(process.time(t, moments.mean[None])) for t in ts]
    fits = []
    for u in warped:
        mean, cov = _fit_level(CorruptionProcess(process.operator, process.noise), moments, u, project, chunk)
        fits.append((mean, root_from_eigh(*eigh_psd(cov))))
    return [frechet_distance_roots(*a, *b) for a, b in zip(fits, fits[1:], strict=False)]


def select_levels(
    process: CorruptionProcess,
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

    ``process`` is used un-warped (its operator and noise schedule; any existing warp is
    ignored, since the result *is* a warp of the un-warped process). ``images`` are clean
    training images ``(n, C, H, W)`` (``samples`` of them, picked with ``seed``, when given)
    or exact :class:`DataMoments`. ``projection``: None (full pixel space), an int ``r`` (the
    ``r x r`` lowest DCT frequencies per channel) or a ``(D, d)`` orthonormal basis. See the
    module notes for the method, its cost and the projection's approximation.
    """
    if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 2:
        raise ValueError(f"candidates must be an integer >= 2, got {candidates!r}")
    check_level_count(k, candidates)
    moments = _moments(images, samples, seed)
    base = CorruptionProcess(process.operator, process.noise)
    project = make_projection(projection, moments.shape)
    dim = getattr(project, "dim", math.prod(moments.shape))
    if candidates * dim**2 * 8 > _MAX_BYTES:
        raise ValueError(
            f"{candidates} levels of {dim}-dimensional Gaussians need {candidates * dim**2 * 8 / 2**30:.1f} GiB; "
            "project onto low frequencies (projection=16 keeps 16x16 DCT frequencies per channel) "
            "or use fewer candidates"
        )
    u = torch.linspace(0, 1, candidates, dtype=torch.float64)

    with _progress(progress) as bar:
        fit_task = bar.add_task("fitting level Gaussians", total=candidates) if bar else None
        rotation = _dct_rotation(moments.shape) if projection is None else None
        means, spectra = [], []  # per level: mean and sorted sqrt-eigenvalues of S
        sds: list[list[Tensor]] = [[], []]  # per level: standard deviations along the coordinates / DCT
        roots = torch.empty(0)  # (N, d, d): S^{1/2} of every level, allocated once d is known
        for i, value in enumerate(u.tolist()):
            mean, cov = _fit_level(base, moments, value, project, chunk)
            evals, evecs = eigh_psd(cov)
            if i == 0:
                roots = torch.empty(candidates, *cov.shape, dtype=torch.float64)
            roots[i] = root_from_eigh(evals, evecs)
            means.append(mean)
            spectra.append(evals.flip(0).sqrt())
            sds[0].append(cov.diagonal().sqrt())
            if rotation is not None:
                sds[1].append(((rotation @ cov) * rotation).sum(1).clamp_min(0).sqrt())
            del cov, evecs
            if bar:
                bar.advance(fit_task)
        pair_task = bar.add_task("pair distances", total=None) if bar else None

        def exact(i: int, j: int) -> float:
            if bar:
                bar.advance(pair_task)
            return frechet_distance_roots(means[i], roots[i], means[j], roots[j])

        lower, upper = _bounds(torch.stack(means), roots, torch.stack(spectra), [torch.stack(v) for v in sds if v])
        del spectra, sds
        dist = _Distances(lower, upper, exact)
        arc = np.sqrt(np.diagonal(upper, 1)).sum()
        guess = (arc / (k - 1)) ** 2
        path, epsilon = _bisect(dist, k, guess)
        if bar:
            bar.update(pair_task, total=dist.computed, completed=dist.computed)

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
    )
