"""Graph search over level distances: fewest-hop paths and the bisection of ``epsilon``.

An edge ``i -> j`` (``i < j``) exists iff the distance is ``<= epsilon``; the fewest-hop
path from the first to the last candidate is found by breadth-first search, which is
correct for any distances (no monotonicity assumed). ``epsilon`` is bisected to the
smallest value (relative precision 1e-9) whose fewest-hop path has ``K - 1`` hops, i.e.
the K-level path whose longest hop is shortest. Ties between paths with ``K`` levels are
broken walking back from the last level and always stepping to the *earliest* candidate
of the previous BFS layer that is within ``epsilon``.

Distances may be known only through bounds ``lower <= d <= upper``
(:class:`Distances`): exact values are computed only for the pairs the bounds leave
undecided, once, and cached across the bisection.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from torch import Tensor

__all__ = ["Distances", "fewest_hop_path", "select_path", "check_level_count", "bisect_levels"]

_RTOL = 1e-9


class Distances:
    """Pairwise distances known exactly, or through ``lower <= d <= upper`` bounds until needed."""

    def __init__(self, lower: np.ndarray, upper: np.ndarray, exact: Callable[[int, int], float]) -> None:
        self.lower, self.upper, self._exact = lower.copy(), upper.copy(), exact
        self.computed = 0

    @classmethod
    def from_matrix(cls, dist: np.ndarray) -> Distances:
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


def _fewest_hops(dist: Distances, eps: float) -> list[int] | None:
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
    return _fewest_hops(Distances.from_matrix(_as_matrix(dist)), float(epsilon))


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


def bisect_levels(dist: Distances, k: int, guess: float | None = None) -> tuple[list[int], float]:
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
    return bisect_levels(Distances.from_matrix(arr), k)
