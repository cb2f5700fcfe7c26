"""Each word means one thing (docs/index.md#glossary): the names that once had two meanings stay apart."""

from __future__ import annotations

import warnings

import pytest
import torch.nn as nn

import softdiff.conditioning as conditioning
import softdiff.restore as restore
import softdiff.samplers as samplers
import softdiff.score as score


def test_the_denoiser_callable_has_one_name_and_one_home() -> None:
    assert samplers.DenoiserFn is conditioning.DenoiserFn
    assert not hasattr(samplers, "Denoiser")  # the word Denoiser is the module only
    assert issubclass(score.Denoiser, nn.Module)
    import softdiff.score.parameterisation as parameterisation

    assert not hasattr(parameterisation, "DenoiserFn") or parameterisation.DenoiserFn is conditioning.DenoiserFn


def test_the_restoration_model_is_not_called_a_prior() -> None:
    assert "DiffusionModel" in restore.__all__ and "DiffusionPrior" not in restore.__all__
    with pytest.warns(DeprecationWarning, match="now DiffusionModel"):
        assert restore.DiffusionPrior is restore.DiffusionModel
    with pytest.raises(AttributeError):
        restore.NoSuchThing  # noqa: B018


def test_grid_means_a_time_grid() -> None:
    import importlib

    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("softdiff.eval.grid")  # the sweep of cells is softdiff.eval.sweeps
    import softdiff.train.lr as lr

    assert not any("Schedule" in name for name in vars(lr))  # a learning rate is not a schedule here
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert set(samplers.GRIDS) >= {"uniform", "edm"}
