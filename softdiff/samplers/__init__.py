"""Samplers as plain functions, the prior at t = 1, time grids and per-sample seeding."""

from .ancestral import ancestral, ancestral_update
from .core import (
    Denoiser,
    Sampler,
    Step,
    euler,
    euler_update,
    get,
    heun,
    heun_update,
    momentum,
    momentum_update,
    naive,
    naive_update,
    names,
    nfe,
    register_sampler,
    run,
    sampler_from_update,
)
from .generate import Trajectory, draw_prior, generate
from .grids import check_grid, level_grid, uniform_grid
from .noise import NoiseSource, SeededNoise, randn, sample_seed
from .prior import GaussianPrior
from .sharded import generate_sharded

__all__ = [
    "Denoiser",
    "Sampler",
    "Step",
    "run",
    "generate_sharded",
    "momentum",
    "naive",
    "euler",
    "heun",
    "ancestral",
    "ancestral_update",
    "momentum_update",
    "naive_update",
    "euler_update",
    "heun_update",
    "get",
    "names",
    "nfe",
    "register_sampler",
    "sampler_from_update",
    "generate",
    "draw_prior",
    "Trajectory",
    "uniform_grid",
    "level_grid",
    "check_grid",
    "SeededNoise",
    "NoiseSource",
    "randn",
    "sample_seed",
    "GaussianPrior",
]
