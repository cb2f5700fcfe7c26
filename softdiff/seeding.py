"""Every seed softdiff derives, from one hash: a pure function of its parts.

Training draws step ``k``'s batch, times and noise from generators seeded by
``derive_seed(seed, "step", k)`` (and friends), so a resumed run repeats an uninterrupted
one; sampling gives sample ``i`` of run ``seed`` its own stream, ``sample_seed(seed, i)``,
so an image does not depend on the batch it was drawn in. One hash (SHA-256 of the parts
joined by ``:``) keeps seeds stable across processes, platforms and Python versions
(``hash()`` is salted per process) and keeps distinct purposes from ever sharing a stream.
"""

from __future__ import annotations

import hashlib

__all__ = ["derive_seed", "sample_seed", "rank_seed", "MAX_SEED"]

_BITS = (1 << 63) - 1  # torch.Generator.manual_seed takes any int, but 63 bits stay valid everywhere
MAX_SEED = _BITS  # the largest seed a user may give: a larger one would be silently folded into 64 bits somewhere


def derive_seed(*parts: object) -> int:
    """A 63-bit seed that is a pure function of its parts (stable across processes and platforms)."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & _BITS


def sample_seed(seed: int, index: int) -> int:
    """The seed of sample ``index`` of a sampling run with ``seed`` (runs never overlap)."""
    return derive_seed("softdiff", "sample", int(seed), int(index))


def rank_seed(seed: int, rank: int) -> int:
    """``seed`` on rank 0 (so one process is unchanged), a distinct seed on every other rank."""
    return seed if rank == 0 else derive_seed(seed, "rank", rank)
