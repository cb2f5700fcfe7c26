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

_BY_KIND = {"identity": "dpmpp_2m_sde", "hiding": "dpmpp_2m_sde"}
# Blur-like runs by step count, measured on a default blur model (docs/sampling.md, "which
# sampler at which step count"): dpmpp_2m_sde wins at 10 calls (50.0 vs naive 60.2; the main
# job 43.4 vs 61.9), naive from 15 to 40 (48.5 vs 52.4 at 15, 51.1 vs momentum 58.5 at 40), and
# naive, no consistent solver, falls apart past that (75.2 at 50, where momentum scores 56.5).
_SDE_MAX_STEPS = 10
_NAIVE_MAX_STEPS = 40


def default_sampler(op: LinearCorruption, steps: int = DEFAULT_STEPS) -> str:
    """The best measured sampler for operators of ``op``'s kind at about ``steps`` network calls."""
    kind = "identity" if op.is_identity else "hiding" if op.hides_pixels else "other"
    if kind != "other":
        return _BY_KIND[kind]
    return "dpmpp_2m_sde" if steps <= _SDE_MAX_STEPS else "naive" if steps <= _NAIVE_MAX_STEPS else "momentum"
