"""Training: the run config, the loop, checkpoints and ``load_run``."""

from ..seeding import derive_seed
from .checkpoint import (
    Checkpoint,
    clean_temporaries,
    find_checkpoint,
    read_checkpoint,
    resolve_checkpoint,
    run_folder,
    save_checkpoint,
)
from .config import DataConfig, ObjectiveConfig, OptimConfig, RunConfig, TrainConfig, build_config, load_config_file
from .loading import TrainedRun, build_net, load_run
from .trainer import EMA, TrainSummary, train

__all__ = [
    "RunConfig",
    "DataConfig",
    "ObjectiveConfig",
    "OptimConfig",
    "TrainConfig",
    "build_config",
    "load_config_file",
    "train",
    "TrainSummary",
    "EMA",
    "derive_seed",
    "Checkpoint",
    "save_checkpoint",
    "read_checkpoint",
    "resolve_checkpoint",
    "run_folder",
    "find_checkpoint",
    "clean_temporaries",
    "TrainedRun",
    "build_net",
    "load_run",
]
