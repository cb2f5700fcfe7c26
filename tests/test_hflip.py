"""Horizontal flips on the device: a function of (seed, step, position), the same split over ranks, off by default."""

from __future__ import annotations

import torch

from softdiff.data import synthetic_shapes
from softdiff.distributed import DistContext
from softdiff.train import RunConfig
from softdiff.train.batches import BatchOrder, ShardedBatches
from softdiff.train.config import load_config_file

DATA = synthetic_shapes(n=32, size=8, seed=0)


def test_flips_mirror_about_half_the_images_and_repeat_for_a_step() -> None:
    order = BatchOrder(len(DATA), 16, seed=3)
    plain, flipped = ShardedBatches(DATA, order, DistContext()), ShardedBatches(DATA, order, DistContext(), hflip=True)
    for step in range(4):
        mask = flipped.flips(step)
        a, b = plain(step), flipped(step)
        assert torch.equal(b[mask], a[mask].flip(-1)) and torch.equal(b[~mask], a[~mask])
        assert torch.equal(flipped(step), b)  # a function of the step: exact on resume
    assert 0.3 < float(torch.stack([flipped.flips(k) for k in range(20)]).float().mean()) < 0.7
    assert not torch.equal(flipped.flips(0), flipped.flips(1))


def test_ranks_flip_their_share_of_the_single_process_batch() -> None:
    order = BatchOrder(len(DATA), 16, seed=1)
    whole = ShardedBatches(DATA, order, DistContext(), hflip=True)(5)
    shares = [ShardedBatches(DATA, order, DistContext(rank=r, world=2), hflip=True)(5) for r in (0, 1)]
    assert torch.equal(shares[0], whole[0::2]) and torch.equal(shares[1], whole[1::2])


def test_flips_are_off_by_default_and_on_in_the_colour_recipes() -> None:
    from pathlib import Path

    assert RunConfig().data.hflip is False
    root = Path(__file__).parents[1] / "recipes"
    for name in ("celeba64.toml", "cifar10.toml"):
        assert load_config_file(root / name)["data"]["hflip"] is True


def test_a_run_with_flips_trains_and_differs(tmp_path) -> None:
    from softdiff.train import read_checkpoint, train

    weights = {}
    for hflip in (False, True):
        config = RunConfig.model_validate(
            {
                "model": {"base_channels": 4, "channel_mults": [1], "groups": 2},
                "data": {
                    "dataset": "synthetic",
                    "prior_images": 32,
                    "prior_rank": 2,
                    "prior_mixtures": 1,
                    "hflip": hflip,
                },
                "train": {"steps": 2, "batch_size": 4, "device": "cpu", "select_levels": False, "preview_every": None},
            }
        )
        train(config, tmp_path / str(hflip), data=DATA, progress=False)
        ckpt = read_checkpoint(tmp_path / str(hflip))
        assert ckpt.config.data.hflip is hflip
        weights[hflip] = ckpt.net
    assert any(not torch.equal(weights[False][k], weights[True][k]) for k in weights[False])
