"""The sampler and step count ``softdiff sample`` uses when the user names none.

Chosen per kind of operator from the defaults benchmark (``bench/quality/defaults.py``, every
registered sampler at about 10 and 20 network calls on runs trained with every default;
docs/benchmarks.md#the-defaults): the kind is read from the operator's own declarations
(``is_identity``, ``hides_pixels``), so a plugin operator gets the choice of its kind.
``--sampler momentum`` is still the paper's Algorithm 2.
"""

from __future__ import annotations

from ..corrupt import LinearCorruption

__all__ = ["default_sampler", "DEFAULT_STEPS"]

DEFAULT_STEPS = 20  # network calls of the defaults benchmark's best cells

_BY_KIND = {"identity": "dpmpp_2m_sde", "hiding": "dpmpp_2m_sde", "other": "naive"}
# Naive is no consistent solver: on the main job's model it scores 61.9, 38.0, 69.9 at 10, 20,
# 50 calls, where momentum improves (62.5, 53.3, 51.3). Past 20 steps blur-like runs use momentum.
_NAIVE_MAX_STEPS = 20


def default_sampler(op: LinearCorruption, steps: int = DEFAULT_STEPS) -> str:
    """The best measured sampler for operators of ``op``'s kind at about ``steps`` network calls."""
    kind = "identity" if op.is_identity else "hiding" if op.hides_pixels else "other"
    if kind == "other" and steps > _NAIVE_MAX_STEPS:
        return "momentum"
    return _BY_KIND[kind]
