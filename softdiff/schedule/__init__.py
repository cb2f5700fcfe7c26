"""Choosing corruption levels from data (the paper's Fréchet-distance schedule) and the level file.

The jobs, one module each: data moments (:mod:`.moments`), low-frequency projections
(:mod:`.projection`), level Gaussians and their distances (:mod:`.distances`), the graph
search (:mod:`.graph`), strength reports (:mod:`.strengths`), the selection
(:mod:`.select`) and the ``softdiff.levels/1`` JSON with its one loader
(:mod:`.levelfile`). This package builds on :mod:`softdiff.corrupt`, never the reverse.
"""

from .distances import level_distances
from .graph import check_level_count, fewest_hop_path, select_path
from .levelfile import LEVELS_FORMAT, LevelFile, LevelSelection, read_levels, retime
from .moments import DataMoments
from .projection import DCTProjection, MatrixProjection
from .select import select_levels
from .strengths import level_strengths

__all__ = [
    "select_levels",
    "LevelSelection",
    "LevelFile",
    "read_levels",
    "retime",
    "LEVELS_FORMAT",
    "DataMoments",
    "DCTProjection",
    "MatrixProjection",
    "fewest_hop_path",
    "select_path",
    "check_level_count",
    "level_strengths",
    "level_distances",
]
