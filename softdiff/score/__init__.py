"""Objectives, parameterisations and scores from denoisers."""

from .gaussian import GaussianData

__all__ = ["GaussianData"]
