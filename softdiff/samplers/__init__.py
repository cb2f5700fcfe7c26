"""Samplers as plain functions, the prior at t = 1, and time grids."""

from .prior import GaussianPrior

__all__ = ["GaussianPrior"]
