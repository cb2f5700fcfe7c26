"""The trainer on the synthetic data set with a tiny net: learning, checkpoints, exact resume, configs, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from torch import Tensor, nn
from typer.testing import CliRunner

from softdiff.cli import app
from softdiff.corrupt import LinearCorruption
from softdiff.data import synthetic_shapes
from softdiff.models import UNetConfig
from softdiff.samplers import GaussianPrior, MixturePrior
from softdiff.train import RunConfig, build_config, load_run, read_checkpoint, train
from softdiff.train.trainer import EMA

DATA = synthetic_shapes(n=256, size=12, seed=0)


class TinyNet(nn.Module):
    """A two-layer time-conditioned conv net: the smallest thing the trainer can train."""

    def __init__(self, channels: int = 1, width: int = 8) -> None:
        super().__init__()
        self.inp = nn.Conv2d(channels + 1, width, 3, padding=1)
        self.out = nn.Conv2d(width, channels, 3, padding=1)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        time = t[:, None, None, None].expand(-1, 1, *x.shape[-2:]).to(x.dtype)
        return self.out(nn.functional.silu(self.inp(torch.cat([x, time], 1))))


def tiny_net(seed: int = 0) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet()


def config(**train: object) -> RunConfig:
    return RunConfig.model_validate(
        {
            "corruption": {"spec": "blur"},
            "data": {"dataset": "synthetic", "prior_images": 64, "prior_rank": 4},
            "optim": {"lr": 3e-3, "warmup": 5},
            "train": {"batch_size": 16, "log_every": 1, "ckpt_every": 4, "device": "cpu", **train},
        }
    )


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_few_hundred_steps_reduce_the_loss(tmp_path: Path) -> None:
    # the paper's loss (no anchor): the anchor's |h - x0|^2 is mostly irreducible on this tiny net and data
    cfg = config(steps=200, log_every=20, ckpt_every=1000)
    cfg.objective.anchor = 0.0
    summary = train(cfg, tmp_path / "run", data=DATA, net=tiny_net(), progress=False)
    losses = [loss for _, loss in summary.losses]
    assert summary.step == 200 and len(losses) == 10
    assert losses[-1] < 0.8 * losses[0], losses  # from the linear estimate precond starts at
    assert [m["step"] for m in metrics(tmp_path / "run")] == list(range(20, 201, 20))


def test_checkpoint_round_trip_is_bit_identical(tmp_path: Path) -> None:
    run = tmp_path / "run"
    summary = train(config(steps=6), run, data=DATA, net=tiny_net(), progress=False)
    raw = load_run(run, ema=False, net=TinyNet())
    ema = load_run(run, ema=True, net=TinyNet())
    for loaded, trained in ((raw.net, summary.net), (ema.net, summary.ema_net)):
        for (k, a), (_, b) in zip(loaded.state_dict().items(), trained.state_dict().items(), strict=True):
            assert torch.equal(a, b), k
    assert not torch.equal(raw.net.out.weight, ema.net.out.weight)
    assert ema.step == 6 and ema.image_shape == (1, 12, 12) and ema.prior.shape == (1, 12, 12)
    assert ema.config.model.in_channels == 1 and ema.config.data.image_size == 12
    x = torch.randn(2, 1, 12, 12)
    assert ema.denoiser(x, torch.tensor([0.2, 0.7])).shape == x.shape
    # only `keep` checkpoints stay on disk, and `latest` points at the newest
    kept = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert kept == ["step-00000004", "step-00000006"]
    assert read_checkpoint(run / "checkpoints" / "step-00000004").step == 4


def test_resume_after_a_crash_continues_the_same_loss_curve(tmp_path: Path) -> None:
    full = train(config(steps=12), tmp_path / "full", data=DATA, net=tiny_net(), progress=False)
    crashed = tmp_path / "crashed"
    train(config(steps=12), crashed, data=DATA, net=tiny_net(), progress=False, stop_at=10)  # last checkpoint: step 8
    assert read_checkpoint(crashed).step == 8 and len(metrics(crashed)) == 10
    resumed = train(None, crashed, resume=True, data=DATA, net=TinyNet(), progress=False)
    assert [m["loss"] for m in metrics(crashed)] == [m["loss"] for m in metrics(tmp_path / "full")]
    assert [m["step"] for m in metrics(crashed)] == list(range(1, 13))
    for a, b in zip(resumed.net.parameters(), full.net.parameters(), strict=True):
        assert torch.equal(a, b)


def test_resume_may_extend_steps_but_not_change_the_model(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(config(steps=4), run, data=DATA, net=tiny_net(), progress=False)
    longer = train(config(steps=6), run, resume=True, data=DATA, net=TinyNet(), progress=False)
    assert longer.step == 6
    changed = config(steps=8).model_copy(update={"optim": config().optim.model_copy(update={"lr": 1.0})})
    with pytest.raises(ValueError, match="cannot change optim"):
        train(changed, run, resume=True, data=DATA, net=TinyNet(), progress=False)
    with pytest.raises(ValueError, match="already holds a run"):
        train(config(steps=4), run, data=DATA, net=TinyNet(), progress=False)
    with pytest.raises(ValueError, match="no checkpoint yet"):
        train(None, tmp_path / "empty", resume=True, data=DATA, net=TinyNet(), progress=False)


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "manifest"])
def test_truncated_or_tampered_checkpoints_give_a_clear_error(tmp_path: Path, damage: str) -> None:
    run = tmp_path / "run"
    train(config(steps=2), run, data=DATA, net=tiny_net(), progress=False)
    folder = read_checkpoint(run).path
    target = folder / ("optimizer.pt" if damage == "truncate" else "net.safetensors")
    data = target.read_bytes()
    if damage == "flip":
        target.write_bytes(data[:-5] + bytes([data[-5] ^ 1]) + data[-4:])
    elif damage == "truncate":
        target.write_bytes(data[: len(data) // 2])
    elif damage == "delete":
        target.unlink()
    else:
        (folder / "manifest.json").write_text("{not json")
    expected = {"flip": "SHA-256", "truncate": "SHA-256", "delete": "incomplete", "manifest": "corrupt manifest"}[
        damage
    ]
    with pytest.raises(ValueError, match=expected):
        load_run(run, net=TinyNet())
    with pytest.raises(ValueError, match=expected):
        train(None, run, resume=True, data=DATA, net=TinyNet(), progress=False)


def test_bad_run_paths_are_value_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        load_run(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="neither a run folder"):
        load_run(tmp_path)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"train": {"steps": 0}}, "train.steps"),
        ({"optim": {"lr": -1}}, "optim.lr"),
        ({"optim": {"ema_decay": 1.5}}, "optim.ema_decay"),
        ({"objective": {"name": "vlb"}}, "objective.name"),
        ({"train": {"device": "tpu"}}, "train.device"),
        ({"model": {"base_channels": 0}}, "model.base_channels"),
        ({"corruption": {"spec": "blurx"}}, "corruption"),
        ({"train": {"stpes": 3}}, "train.stpes"),
        ({"objective": {"t_sampler": "levels"}}, "levels"),
    ],
)
def test_invalid_configs_are_rejected_with_the_field_named(overrides: dict, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        RunConfig.model_validate(overrides)
    located = [".".join(map(str, e["loc"])) + " " + e["msg"] for e in err.value.errors()]
    assert any(field in text for text in located), located


def test_config_files_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "run.toml").write_text('[train]\nsteps = 7\nbatch_size = 8\n[corruption]\nspec = "blur+mask"\n')
    (tmp_path / "run.json").write_text(json.dumps({"train": {"steps": 9}}))
    (tmp_path / "run.yaml").write_text("optim:\n  lr: 0.01\n")
    toml = build_config(tmp_path / "run.toml", {"train.steps": 11, "optim.lr": None})
    assert (toml.train.steps, toml.train.batch_size, toml.corruption.spec) == (11, 8, "blur+mask")
    assert build_config(tmp_path / "run.json").train.steps == 9
    assert build_config(tmp_path / "run.yaml").optim.lr == 0.01
    (tmp_path / "bad.toml").write_text("[train\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        build_config(tmp_path / "bad.toml")
    with pytest.raises(ValueError, match="does not exist"):
        build_config(tmp_path / "missing.toml")
    (tmp_path / "run.txt").write_text("steps = 3\n")
    with pytest.raises(ValueError, match="must end in"):
        build_config(tmp_path / "run.txt")


@pytest.mark.parametrize(("mixtures", "kind"), [(3, MixturePrior), (1, GaussianPrior)])
def test_runs_store_the_configured_prior(tmp_path: Path, mixtures: int, kind: type) -> None:
    cfg = config(steps=2, ckpt_every=1000).model_copy(deep=True)
    cfg.data.prior_mixtures = mixtures
    train(cfg, tmp_path / "run", data=DATA, net=tiny_net(), progress=False)
    prior = load_run(tmp_path / "run", net=tiny_net()).prior
    assert isinstance(prior, kind)
    assert mixtures == 1 or len(prior.weights) == mixtures


def test_a_partial_section_changes_only_its_keys(tmp_path: Path) -> None:
    """One model key set (flag or file) keeps the run's other defaults (now the U-Net class's own: one home)."""
    default = RunConfig().model
    assert default == UNetConfig()  # the run's network default is the class's (it was 16 vs 32 channels)
    flagged = build_config(None, {"model.channel_mults": [1, 2, 2, 2]}).model
    assert (flagged.base_channels, flagged.channel_mults) == (default.base_channels, (1, 2, 2, 2))
    (tmp_path / "run.toml").write_text("[model]\nnum_res_blocks = 2\n")
    filed = build_config(tmp_path / "run.toml").model
    assert (filed.base_channels, filed.num_res_blocks) == (default.base_channels, 2)
    assert build_config(None, {"model.base_channels": 24}).model.base_channels == 24
    assert build_config(None, {"corruption.noise.s_max": 1.0}).corruption.spec == RunConfig().corruption.spec


def test_cli_train_end_to_end_and_resume(tmp_path: Path) -> None:
    run = tmp_path / "run"
    common = ["--dataset", "synthetic", "--width", "8", "--set", "model.channel_mults=[1, 2]", "--no-progress"]
    common += ["--set", "data.prior_images=64", "--batch-size", "8", "--out", str(run)]
    result = CliRunner().invoke(app, ["train", "--steps", "3", "--corruption", "blur+mask", *common])
    assert result.exit_code == 0, result.output
    assert "step 3" in result.output and read_checkpoint(run).step == 3
    loaded = load_run(run)
    assert loaded.config.corruption.spec == "blur+mask" and loaded.config.model.base_channels == 8
    result = CliRunner().invoke(app, ["train", "--resume", "--steps", "5", "--out", str(run), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert load_run(run).step == 5 and len(metrics(run)) == 2  # log_every=25: lines at the ends of the two calls


def test_cli_missing_data_set_is_a_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "--data-dir", str(tmp_path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "error:" in result.output and "dataset-fashion-mnist" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 2
    result = CliRunner().invoke(app, ["train", "--set", "train.steps=0", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "train.steps" in result.output


def test_cli_levels_file_retimes_the_process_and_can_drive_the_t_sampler(tmp_path: Path) -> None:
    levels = tmp_path / "levels.json"
    levels.write_text(json.dumps({"t": [0.0, 0.2, 0.5, 1.0]}))
    run = tmp_path / "run"
    args = ["train", "--dataset", "synthetic", "--width", "8", "--set", "model.channel_mults=[1]", "--no-progress"]
    args += ["--steps", "2", "-b", "8", "--set", "data.prior_images=32", "--levels", str(levels), "--out", str(run)]
    result = CliRunner().invoke(app, [*args, "--set", "objective.t_sampler=levels"])
    assert result.exit_code == 0, result.output
    loaded = load_run(run)
    assert loaded.config.corruption.levels == [0.0, 0.2, 0.5, 1.0] and loaded.process.warp is not None
    assert loaded.config.objective.t_sampler == "levels"


def test_ema_follows_edms_half_life_with_ramp_up() -> None:
    """Half-life min(halflife, rampup * images seen) images; a fixed decay (legacy) replaces the rule."""
    net = nn.Linear(2, 2)
    ema = EMA(net, halflife=1000.0, rampup=0.05)
    assert ema.decay_at(1, 64) == pytest.approx(0.5 ** (64 / (0.05 * 64)))  # ramp-up: 3.2-image half-life
    assert ema.decay_at(100, 64) == pytest.approx(0.5 ** (64 / 320))
    assert ema.decay_at(10_000, 64) == pytest.approx(0.5 ** (64 / 1000))  # capped at the half-life
    assert EMA(net, halflife=1000.0, rampup=None).decay_at(1, 64) == pytest.approx(0.5 ** (64 / 1000))
    legacy = EMA(net, decay=0.999)
    assert legacy.decay_at(1, 64) == pytest.approx(2 / 11) and legacy.decay_at(10**6, 64) == 0.999
    before = [p.clone() for p in ema.net.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    ema.update(net, 100, 64)
    d = ema.decay_at(100, 64)
    for old, new, cur in zip(before, ema.net.parameters(), net.parameters(), strict=True):
        torch.testing.assert_close(new, d * old + (1 - d) * cur)


def test_learning_rate_schedule() -> None:
    """Linear warm-up to the peak, then constant, or a cosine/linear decay to lr_final * peak at the last step."""
    from softdiff.train.lr import LearningRate

    constant = LearningRate(1e-3, warmup=10, total=100)
    assert [constant(s) for s in (0, 4, 9, 50, 99)] == pytest.approx([1e-4, 5e-4, 1e-3, 1e-3, 1e-3])
    cosine = LearningRate(1e-3, warmup=10, total=100, decay="cosine", final=0.1)
    assert cosine(9) == pytest.approx(1e-3) and cosine(99) == pytest.approx(1e-4)
    assert cosine(54) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 44 / 89))))
    linear = LearningRate(2.0, warmup=0, total=11, decay="linear")
    assert [linear(s) for s in (0, 5, 10)] == pytest.approx([2.0, 1.0, 0.0])


def test_vanilla_diffusion_at_edms_noise_range_trains_stably_with_the_defaults(tmp_path: Path) -> None:
    """C_t = I with s from 0.01 to 80 (the default for 'noise') and every objective/optim default: 300 steps."""
    cfg = RunConfig.model_validate(
        {
            "corruption": {"spec": "noise"},
            "model": {"base_channels": 8},
            "data": {"dataset": "synthetic", "prior_images": 64, "prior_rank": 4},
            "train": {"steps": 300, "batch_size": 16, "log_every": 25, "ckpt_every": 1000, "device": "cpu"},
        }
    )
    assert cfg.corruption.build((8, 8)).s(torch.tensor(1.0)) == pytest.approx(80.0)
    summary = train(cfg, tmp_path / "vanilla", data=DATA, progress=False)
    losses = [loss for _, loss in summary.losses]
    assert all(math.isfinite(loss) for loss in losses)
    assert max(losses) < 1.0  # on the data's scale at every logged step: no blow-up (the residual form: ~200)
    assert sum(losses[-4:]) / 4 < 0.95 * sum(losses[:2]) / 2  # and it learns


def test_a_run_records_the_noise_defaults_it_trained_with(tmp_path: Path) -> None:
    """s_max left unset is written down as resolved (2 for a mask), so a later default cannot change the run."""
    cfg = config(steps=2)
    cfg.corruption = cfg.corruption.model_copy(update={"spec": "mask"})
    run = tmp_path / "run"
    train(cfg, run, data=DATA, net=tiny_net(), progress=False)
    stored = json.loads((run / "config.json").read_text())["corruption"]["noise"]
    assert stored["s_min"] == 0.01 and stored["s_max"] == 2.0
    longer = cfg.model_copy(update={"train": cfg.train.model_copy(update={"steps": 4})})
    assert train(longer, run, resume=True, data=DATA, net=tiny_net(), progress=False).step == 4  # unset noise resumes


class _WrongAdjoint(LinearCorruption):
    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x * (1 - 0.5 * t)[:, None, None, None]

    def adjoint(self, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return y  # not the adjoint of forward


class _Float64Constant(LinearCorruption):
    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ramp = torch.linspace(1.0, 0.5, x.shape[-1], dtype=torch.float64)  # no .to(x): float32 in, float64 out
        return x * ramp


@pytest.mark.parametrize(("op", "law"), [(_WrongAdjoint(), "adjoint"), (_Float64Constant(), "dtype")])
def test_training_checks_the_operator_laws_first(tmp_path: Path, op: LinearCorruption, law: str) -> None:
    with pytest.raises(ValueError, match=law) as info:
        train(config(steps=2), tmp_path / "run", data=DATA, net=tiny_net(), progress=False, corruption=op)
    assert "train.check_operator=false" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "run" / "latest").exists()
    unchecked = config(steps=2, check_operator=False)
    if law == "adjoint":  # trains when asked to skip the check (the float64 one cannot train at all)
        assert train(unchecked, tmp_path / "skip", data=DATA, net=tiny_net(), progress=False, corruption=op).step == 2
