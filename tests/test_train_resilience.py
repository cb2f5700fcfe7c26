"""Training that never loses work: resume from nothing, SIGTERM, time-bounded checkpoints, the
non-finite guard, full disks and unwritable folders; and tests that pin EMA warm-up, LR
warm-up, gradient clipping and the resume guards (each was deleted once to see it fail).
"""

from __future__ import annotations

import errno
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from test_train import DATA, TinyNet, config, metrics, tiny_net
from torch import Tensor
from torch.optim.optimizer import register_optimizer_step_pre_hook
from typer.testing import CliRunner

import softdiff.train.checkpoint as checkpoint_module
import softdiff.train.trainer as trainer_module
from softdiff.cli import app
from softdiff.data import load_image_folder
from softdiff.eval import FeatureExtractor, real_features
from softdiff.imageio import load_image
from softdiff.train import RunConfig, read_checkpoint, save_checkpoint, train
from softdiff.train.interrupt import StopSignals

ROOT = Path(__file__).resolve().parents[1]
STATE = {
    "optimizer": {"state": {}, "param_groups": []},
    "rng": {"torch": torch.get_rng_state()},
}  # a minimal training state
runner = CliRunner()


def steps_on_disk(run: Path) -> list[int]:
    return sorted(int(p.name.removeprefix("step-")) for p in (run / "checkpoints").glob("step-*"))


def same_tensors(a: dict[str, Tensor], b: dict[str, Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- resume when there is nothing to resume ---------------------------------------------------


def test_resume_without_a_checkpoint_starts_fresh_and_matches_a_plain_run(tmp_path: Path) -> None:
    plain = train(config(steps=6), tmp_path / "plain", data=DATA, net=tiny_net(), progress=False)
    fresh = train(config(steps=6), tmp_path / "absent", resume=True, data=DATA, net=tiny_net(), progress=False)
    assert fresh.fresh_start and not plain.fresh_start and fresh.step == 6
    assert [m["loss"] for m in metrics(tmp_path / "absent")] == [m["loss"] for m in metrics(tmp_path / "plain")]
    # killed before its first checkpoint: a folder with config.json and metrics but nothing to resume
    killed = tmp_path / "killed"
    train(config(steps=6, ckpt_every=100), killed, data=DATA, net=tiny_net(), progress=False, stop_at=3)
    assert (killed / "metrics.jsonl").is_file() and not (killed / "checkpoints").exists()
    again = train(config(steps=6), killed, resume=True, data=DATA, net=tiny_net(), progress=False)
    assert again.fresh_start and [m["loss"] for m in metrics(killed)] == [
        m["loss"] for m in metrics(tmp_path / "plain")
    ]
    # with no config there is nothing to start from
    with pytest.raises(ValueError, match="no checkpoint yet"):
        train(None, tmp_path / "empty", resume=True, data=DATA, net=TinyNet(), progress=False)


def test_a_checkpoint_without_latest_is_still_found(tmp_path: Path) -> None:
    """A kill between renaming the first checkpoint into place and writing ``latest``."""
    run = tmp_path / "run"
    train(config(steps=8), run, data=DATA, net=tiny_net(), progress=False, stop_at=6)  # checkpoint 4
    (run / "latest").unlink()
    resumed = train(None, run, resume=True, data=DATA, net=TinyNet(), progress=False)
    assert not resumed.fresh_start and resumed.step == 8 and len(metrics(run)) == 8


def test_cli_resume_of_a_new_folder_says_so_in_one_line(tmp_path: Path) -> None:
    run = tmp_path / "new"
    args = ["train", "--resume", "--dataset", "synthetic", "--steps", "2", "-b", "8", "--width", "8"]
    args += ["--set", "model.channel_mults=[1]", "--set", "data.prior_images=32", "--no-progress", "--device", "cpu"]
    result = runner.invoke(app, [*args, "--out", str(run)])
    assert result.exit_code == 0, result.output
    said = [line for line in result.output.splitlines() if "nothing to resume" in line]
    assert len(said) == 1 and "starting the run from step 0" in said[0]
    assert read_checkpoint(run).step == 2
    result = runner.invoke(app, [*args, "--out", str(run), "--steps", "3"])  # now it has one: resumes
    assert result.exit_code == 0 and "nothing to resume" not in result.output and read_checkpoint(run).step == 3


def test_makefile_run_resumes_without_a_shell_test() -> None:
    recipe = (ROOT / "Makefile").read_text().split("\nrun:")[1].split("\n\n")[0]
    train_line = next(line for line in recipe.splitlines() if "softdiff train" in line)
    assert "--resume" in train_line and "test -f" not in train_line and "$$(" not in train_line


# --- behaviour pins (item 6) ------------------------------------------------------------------


@pytest.fixture
def optimizer_steps() -> Iterator[list[dict[str, float]]]:
    """What every optimizer step is handed: its learning rate and the global norm of its gradients."""
    seen: list[dict[str, float]] = []

    def hook(optimizer: torch.optim.Optimizer, args: object, kwargs: object) -> None:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        seen.append({"lr": optimizer.param_groups[0]["lr"], "norm": float(torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(g) for g in grads])))})  # fmt: skip

    handle = register_optimizer_step_pre_hook(hook)
    yield seen
    handle.remove()


@pytest.mark.parametrize(
    ("optim", "decay"),
    [({"ema_rampup": 1.0}, 0.5), ({"ema_decay": 0.999}, 2 / 11)],
    ids=["half-life ramp-up", "fixed decay warm-up"],
)
def test_ema_after_the_first_update_follows_the_warm_up_formula(tmp_path: Path, optim: dict, decay: float) -> None:
    """Half-life min(halflife, rampup * images): 16 images at ramp-up 1 halve the weight of the start (0.5);
    a fixed decay is warmed up as min(decay, (1 + n) / (10 + n)): 2/11 after update 1, not 0.999."""
    start = {k: v.clone() for k, v in tiny_net().state_dict().items()}
    cfg = config(steps=1)
    cfg = RunConfig.model_validate({**cfg.model_dump(), "optim": {**cfg.optim.model_dump(), **optim}})
    assert cfg.train.batch_size == 16
    summary = train(cfg, tmp_path / "run", data=DATA, net=tiny_net(), progress=False)
    trained = summary.net.state_dict()
    for key, ema in summary.ema_net.state_dict().items():
        expected = decay * start[key] + (1 - decay) * trained[key]
        torch.testing.assert_close(ema, expected, rtol=1e-6, atol=1e-7, msg=key)
        assert not torch.allclose(ema, trained[key]) and not torch.allclose(ema, start[key])


def test_learning_rate_warms_up_linearly_then_stays(tmp_path: Path, optimizer_steps: list[dict[str, float]]) -> None:
    cfg = config(steps=8)  # optim.lr 3e-3, warmup 5
    train(cfg, tmp_path / "run", data=DATA, net=tiny_net(), progress=False)
    expected = [3e-3 * min(1.0, (k + 1) / 5) for k in range(8)]
    assert [s["lr"] for s in optimizer_steps] == pytest.approx(expected, rel=1e-12)
    assert [m["lr"] for m in metrics(tmp_path / "run")] == pytest.approx(expected, rel=1e-12)


def test_gradient_clipping_bounds_the_gradient_the_optimizer_applies(
    tmp_path: Path, optimizer_steps: list[dict[str, float]]
) -> None:
    clip = 1e-4  # far below the raw gradient norms of this net
    cfg = config(steps=4)
    cfg = cfg.model_copy(update={"optim": cfg.optim.model_copy(update={"grad_clip": clip})})
    train(cfg, tmp_path / "clipped", data=DATA, net=tiny_net(), progress=False)
    raw = [m["grad_norm"] for m in metrics(tmp_path / "clipped")]
    assert min(raw) > 10 * clip
    assert all(s["norm"] <= clip * (1 + 1e-4) for s in optimizer_steps), optimizer_steps
    assert [s["norm"] for s in optimizer_steps] == pytest.approx([clip] * 4, rel=1e-3)
    optimizer_steps.clear()  # clipping off: the optimizer sees the raw gradient
    cfg = cfg.model_copy(update={"optim": cfg.optim.model_copy(update={"grad_clip": None})})
    train(cfg, tmp_path / "raw", data=DATA, net=tiny_net(), progress=False)
    assert [s["norm"] for s in optimizer_steps] == pytest.approx([m["grad_norm"] for m in metrics(tmp_path / "raw")])


def test_cli_set_null_turns_gradient_clipping_off(tmp_path: Path) -> None:
    args = ["train", "--dataset", "synthetic", "--steps", "1", "-b", "8", "--width", "8", "--no-progress"]
    args += ["--set", "model.channel_mults=[1]", "--set", "data.prior_images=32", "--device", "cpu"]
    result = runner.invoke(app, [*args, "--set", "optim.grad_clip=null", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert read_checkpoint(tmp_path / "run").config.optim.grad_clip is None


@pytest.mark.parametrize("change", [{"seed": 1}, {"batch_size": 8}])
def test_resume_with_another_seed_or_batch_size_is_refused(tmp_path: Path, change: dict[str, int]) -> None:
    run = tmp_path / "run"
    train(config(steps=4), run, data=DATA, net=tiny_net(), progress=False)
    with pytest.raises(ValueError, match="cannot change train.seed or train.batch_size"):
        train(config(steps=6, **change), run, resume=True, data=DATA, net=TinyNet(), progress=False)
    assert read_checkpoint(run).step == 4  # nothing was trained or written


# --- metrics windows and time-bounded checkpoints ---------------------------------------------


def test_resume_between_two_metrics_lines_logs_the_same_curve(tmp_path: Path) -> None:
    cfg = config(steps=9, log_every=3, ckpt_every=4)
    train(cfg, tmp_path / "full", data=DATA, net=tiny_net(), progress=False)
    train(cfg, tmp_path / "cut", data=DATA, net=tiny_net(), progress=False, stop_at=7)  # checkpoint 4, mid-window
    train(None, tmp_path / "cut", resume=True, data=DATA, net=TinyNet(), progress=False)
    full, cut = metrics(tmp_path / "full"), metrics(tmp_path / "cut")
    assert [m["step"] for m in cut] == [3, 6, 9]
    assert [m["loss"] for m in cut] == [m["loss"] for m in full]


def test_ckpt_minutes_writes_checkpoints_on_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(range(0, 10**6, 30))  # every call to the trainer's clock: 30 more seconds
    monkeypatch.setattr("softdiff.train.interrupt.monotonic", lambda: float(next(clock)))
    run = tmp_path / "timed"
    train(config(steps=10, ckpt_every=1000, ckpt_minutes=1.0, keep=20), run, data=DATA, net=tiny_net(), progress=False)
    on_time = steps_on_disk(run)
    assert on_time[-1] == 10 and len(on_time) >= 3 and on_time[0] < 10
    untimed = tmp_path / "untimed"
    train(config(steps=10, ckpt_every=1000, ckpt_minutes=None), untimed, data=DATA, net=tiny_net(), progress=False)
    assert steps_on_disk(untimed) == [10]


# --- SIGTERM / SIGINT --------------------------------------------------------------------------


def test_a_second_signal_interrupts_at_once() -> None:
    with StopSignals() as signals:
        os.kill(os.getpid(), signal.SIGINT)
        assert signals.name == "SIGINT"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_sigint_in_process_stops_after_the_step_with_a_checkpoint(tmp_path: Path) -> None:
    class Interrupting(TinyNet):
        calls = 0

        def forward(self, x: Tensor, t: Tensor) -> Tensor:
            type(self).calls += 1
            if type(self).calls == 5:
                os.kill(os.getpid(), signal.SIGINT)  # arrives during step 5
            return super().forward(x, t)

    torch.manual_seed(0)
    run = tmp_path / "run"
    summary = train(config(steps=20, ckpt_every=100), run, data=DATA, net=Interrupting(), progress=False)
    assert summary.stopped_by == "SIGINT" and summary.step == 5 and read_checkpoint(run).step == 5
    resumed = train(None, run, resume=True, data=DATA, net=TinyNet(), progress=False)
    train(config(steps=20, ckpt_every=100), tmp_path / "full", data=DATA, net=tiny_net(), progress=False)
    assert resumed.step == 20 and [m["loss"] for m in metrics(run)] == [m["loss"] for m in metrics(tmp_path / "full")]


TERM_ARGS = ["train", "--dataset", "synthetic", "-b", "8", "--width", "8", "--set", "model.channel_mults=[1]"]
TERM_ARGS += ["--set", "data.prior_images=32", "--set", "train.log_every=1", "--set", "train.ckpt_every=100000"]
TERM_ARGS += ["--device", "cpu", "--threads", "1", "--no-progress", "--steps", "150"]


@pytest.mark.slow
def test_sigterm_to_a_training_process_writes_a_checkpoint_and_resumes_the_same_curve(tmp_path: Path) -> None:
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "softdiff", *TERM_ARGS, "--out", str(run)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if (run / "metrics.jsonl").is_file() and len((run / "metrics.jsonl").read_text().splitlines()) >= 10:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, output
    step = read_checkpoint(run).step
    assert 10 <= step < 150 and f"stopped by SIGTERM at step {step} of 150" in output
    assert len(metrics(run)) == step  # every finished step logged, none after the checkpoint
    resumed = runner.invoke(app, [*TERM_ARGS, "--out", str(run), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    full = runner.invoke(app, [*TERM_ARGS, "--out", str(tmp_path / "full")])
    assert full.exit_code == 0, full.output
    assert [m["loss"] for m in metrics(run)] == [m["loss"] for m in metrics(tmp_path / "full")]
    assert same_tensors(load_file(read_checkpoint(run).path / "ema.safetensors"),
                        load_file(read_checkpoint(tmp_path / "full").path / "ema.safetensors"))  # fmt: skip


# --- the non-finite guard ---------------------------------------------------------------------


class Poisoned(TinyNet):
    """A TinyNet whose output is NaN in the given (1-based) training steps: one forward per step."""

    def __init__(self, bad: set[int] | range) -> None:
        torch.manual_seed(0)
        super().__init__()
        self.bad, self.calls = bad, 0

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        self.calls += 1
        out = super().forward(x, t)
        return out * math.nan if self.calls in self.bad else out


def test_a_non_finite_step_changes_nothing_and_the_run_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    after_step: list[dict[str, Tensor]] = []  # weights, EMA and AdamW's step counts after each training step

    class SpyEMA(trainer_module.EMA):
        def update(self, net: torch.nn.Module, updates: int, batch: int, skip: Tensor | None = None) -> None:
            super().update(net, updates, batch, skip)
            state = {f"net.{k}": v.clone() for k, v in net.state_dict().items()}
            state |= {f"ema.{k}": v.clone() for k, v in self.net.state_dict().items()}
            after_step.append(state)

    monkeypatch.setattr(trainer_module, "EMA", SpyEMA)
    run = tmp_path / "run"
    summary = train(config(steps=5), run, data=DATA, net=Poisoned({3}), progress=False)
    assert summary.step == 5 and summary.skipped == 1 and len(after_step) == 5
    assert same_tensors(after_step[1], after_step[2])  # step 3 left weights and EMA as step 2 had them
    assert not same_tensors(after_step[2], after_step[3]) and not same_tensors(after_step[0], after_step[1])
    adam_steps = {float(s["step"]) for s in read_checkpoint(run).state["optimizer"]["state"].values()}
    assert adam_steps == {4.0}  # five steps, one skipped: AdamW's bias correction did not count it
    lines = metrics(run)
    assert [m["skipped"] for m in lines] == [0, 0, 1, 0, 0] and lines[2]["loss"] is None
    assert all(math.isfinite(m["loss"]) for i, m in enumerate(lines) if i != 2)


def test_consecutive_non_finite_steps_stop_the_run_with_the_last_good_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = config(steps=20, ckpt_every=2, max_bad_steps=3, keep=5)
    with pytest.raises(ValueError, match=r"not finite for 3 steps in a row \(steps 5 to 7\).*step-00000004"):
        train(cfg, run, data=DATA, net=Poisoned(range(5, 100)), progress=False)
    good = read_checkpoint(run)  # refuses NaN/inf, so this also proves nothing non-finite was written
    assert good.step == 4 and steps_on_disk(run) == [2, 4]  # none written during the bad streak


def test_non_finite_weights_are_never_written(tmp_path: Path) -> None:
    cfg = config(steps=2)
    net = {"w": torch.tensor([1.0, math.inf])}
    prior = {"noise": torch.tensor([math.nan])}
    with pytest.raises(ValueError, match="net holds NaN or infinite"):
        save_checkpoint(
            tmp_path,
            1,
            cfg,
            {"net": net, "ema": {"w": torch.ones(2)}, "prior": {"noise": torch.ones(1)}, "trainer": {"step": 1}}
            | STATE,
        )
    with pytest.raises(ValueError, match="prior holds NaN or infinite"):
        save_checkpoint(
            tmp_path,
            1,
            cfg,
            {"net": {"w": torch.ones(2)}, "ema": {"w": torch.ones(2)}, "prior": prior, "trainer": {"step": 1}} | STATE,
        )
    assert not (tmp_path / "latest").exists() and not list(tmp_path.rglob("*.safetensors"))


def test_cli_diverging_run_is_one_error_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trainer_module, "build_net", lambda config: Poisoned(range(5, 100)))
    args = ["train", "--dataset", "synthetic", "--steps", "50", "-b", "8", "--set", "train.ckpt_every=2"]
    args += ["--set", "train.select_levels=false"]  # no level-selection line before the error
    result = runner.invoke(app, [*args, "--no-progress", "--device", "cpu", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the loss or gradient was not finite for 10 steps")
    assert "(steps 5 to 14)" in lines[0] and "step-00000004" in lines[0]
    assert read_checkpoint(tmp_path / "run").step == 4


# --- disks, folders and temporaries -----------------------------------------------------------


def test_a_full_disk_keeps_the_last_checkpoint_and_leaves_no_temporaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    real_write = checkpoint_module._write

    def filling_disk(path: Path, data: bytes) -> None:
        if "step-00000008" in str(path) and path.name == "ema.safetensors":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_write(path, data)

    monkeypatch.setattr(checkpoint_module, "_write", filling_disk)
    with pytest.raises(OSError, match=r"could not write the checkpoint of step 8.*No space left.*step-00000004"):
        train(config(steps=10, keep=1), run, data=DATA, net=tiny_net(), progress=False)
    assert steps_on_disk(run) == [4] and read_checkpoint(run).step == 4  # not pruned: the new one never landed
    assert not list((run / "checkpoints").glob(".tmp-*")) and not list(run.glob(".*.tmp"))
    monkeypatch.setattr(checkpoint_module, "_write", real_write)
    resumed = train(None, run, resume=True, data=DATA, net=TinyNet(), progress=False)
    train(config(steps=10, keep=1), tmp_path / "full", data=DATA, net=tiny_net(), progress=False)
    assert resumed.step == 10 and [m["loss"] for m in metrics(run)] == [m["loss"] for m in metrics(tmp_path / "full")]


def test_cli_full_disk_is_one_error_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(checkpoint_module, "_write", full)
    args = ["train", "--dataset", "synthetic", "--steps", "2", "-b", "8", "--width", "8", "--no-progress"]
    args += ["--set", "train.select_levels=false"]  # no level-selection line before the error
    result = runner.invoke(app, [*args, "--set", "model.channel_mults=[1]", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0] and "no checkpoint was kept" in lines[0]


def test_stale_temporaries_are_cleaned_when_a_run_starts(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(config(steps=8), run, data=DATA, net=tiny_net(), progress=False, stop_at=6)
    stale_dir = run / "checkpoints" / ".tmp-step-00000008-12345"
    stale_dir.mkdir()
    (stale_dir / "net.safetensors").write_bytes(b"\0" * 1000)
    (run / ".latest.abc123.tmp").write_text("checkpoints/step-00000008\n")
    train(None, run, resume=True, data=DATA, net=TinyNet(), progress=False)
    assert not stale_dir.exists() and not (run / ".latest.abc123.tmp").exists()


def test_unwritable_run_folders_fail_before_the_data_is_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_data(*args: object, **kwargs: object) -> None:
        raise AssertionError("the data set was loaded before the output folder was checked")

    monkeypatch.setattr(trainer_module, "load_dataset", no_data)
    (tmp_path / "file").write_text("")
    for out, message in ((tmp_path / "file", "is a file"), ("/dev/null/run", "not a folder")):
        with pytest.raises(ValueError, match=message):
            train(config(steps=2), out, progress=False)

    def read_only(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("softdiff.resources.tempfile.mkstemp", read_only)
    with pytest.raises(ValueError, match="is not writable.*Read-only"):
        train(config(steps=2), tmp_path / "ro", progress=False)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    with pytest.raises(ValueError, match="not writable"):
        train(config(steps=2), folder / "run", data=DATA, net=tiny_net(), progress=False)


class Pixels(FeatureExtractor):
    num_features = 4
    description = "pixels (test)"

    def features(self, images: Tensor) -> Tensor:
        return images.float().flatten(1)[:, :4]


def test_an_unwritable_feature_cache_only_costs_a_recomputation(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.warns(UserWarning, match="cannot write the feature cache"):
        feats = real_features(DATA.images[:8], Pixels(), cache_dir=tmp_path / "file" / "cache")
    assert feats.shape == (8, 4)


# --- images -----------------------------------------------------------------------------------


def test_sixteen_bit_grey_pngs_are_refused_not_quantised_silently(tmp_path: Path) -> None:
    wide = (np.arange(256 * 4, dtype=np.uint32).reshape(4, 256) * 257 // 4).astype(np.uint16)
    Image.fromarray(wide).save(tmp_path / "grey16.png")
    with pytest.raises(ValueError, match=r"grey16.png is a 16-bit image .*convert it first"):
        load_image(tmp_path / "grey16.png")
    with pytest.raises(ValueError, match="16-bit"):
        load_image_folder(tmp_path, size=4, channels=1)
