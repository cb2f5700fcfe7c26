"""Two processes on gloo: training equals one process with the global batch, rank 0 alone
writes, a stopped run resumes, and sharded sampling gives a single process's images.

Most tests start the ranks as forks of one "forkserver" process with torchrun's
environment variables set (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), so
the code path is the one torchrun drives while softdiff is imported once, by the server
(a fresh interpreter costs ~15 s on the shared 2-core machine). Forking the pytest process
itself would be cheaper but is unsafe once autograd has run with a GPU present (PyTorch
refuses: "autograd's threading in combination with fork"); the server never runs autograd.
One test runs the real launcher: ``softdiff train --nproc 2``.
"""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_train import DATA, TinyNet, tiny_net
from typer.testing import CliRunner

from softdiff.cli import app
from softdiff.distributed import call_forwarding_sigterm, relaunch, shard_range, strip_option
from softdiff.train import RunConfig, read_checkpoint, train

ROOT = Path(__file__).resolve().parents[1]
STEPS, PER_RANK = 8, 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(fn: Callable[..., None], rank: int, world: int, port: int, errors: Path, args: tuple) -> None:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)  # as torchrun's OMP_NUM_THREADS=1
    code = 0
    try:
        fn(*args)
    except BaseException:
        (errors / f"rank-{rank}.txt").write_text(traceback.format_exc())
        code = 1
    os._exit(code)


_FORKS = multiprocessing.get_context("forkserver")
_FORKS.set_forkserver_preload(["torch", "softdiff.train", "softdiff.cli.app", __name__])


def run_ranks(fn: Callable[..., None], *args: Any, world: int = 2, timeout: float = 90) -> None:
    """Run ``fn(*args)`` in ``world`` forked ranks, as torchrun would; fail with a rank's traceback."""
    errors = Path(os.environ.get("TMPDIR", "/tmp")) / f"softdiff-dist-{os.getpid()}-{_free_port()}"
    errors.mkdir(parents=True)
    port = _free_port()
    procs = [_FORKS.Process(target=_rank_main, args=(fn, r, world, port, errors, args)) for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout)
    for p in procs:
        if p.is_alive():
            p.kill()
    reports = "\n".join(f.read_text() for f in sorted(errors.glob("rank-*.txt")))
    assert all(p.exitcode == 0 for p in procs), f"exit codes {[p.exitcode for p in procs]}\n{reports}"


def config(batch_size: int) -> RunConfig:
    train = {"batch_size": batch_size, "steps": STEPS, "log_every": 2, "ckpt_every": 4, "keep": 3, "device": "cpu"}
    return RunConfig.model_validate(
        {
            "corruption": {"spec": "blur"},
            "data": {"dataset": "synthetic", "prior_images": 64, "prior_rank": 4},
            "optim": {"lr": 3e-3, "warmup": 5},
            "train": train,
        }
    )


def _train_rank(run: Path, stop_at: int | None, resume: bool) -> None:
    """One rank of a training job; records every file write the trainer makes, per rank."""
    import softdiff.train.metrics as metrics
    import softdiff.train.trainer as trainer

    log = run.parent / f"writes-rank{os.environ['RANK']}.txt"
    writers = ((trainer, "save_checkpoint"), (trainer, "atomic_write_bytes"), (metrics, "atomic_write_bytes"))
    for module, name in writers:
        original = getattr(module, name)

        def spy(*a: Any, _original: Callable = original, _name: str = name, **k: Any) -> Any:
            with log.open("a") as f:
                f.write(f"{_name} {a[0]}\n")
            return _original(*a, **k)

        setattr(module, name, spy)
    train(config(PER_RANK), run, data=DATA, net=tiny_net(), progress=False, stop_at=stop_at, resume=resume)


def weights(run: Path, step: int, which: str = "net") -> dict[str, torch.Tensor]:
    return load_file(run / "checkpoints" / f"step-{step:08d}" / f"{which}.safetensors")


def assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)


def losses(run: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_two_ranks_equal_one_process_with_the_global_batch_and_resume(tmp_path: Path) -> None:
    single = tmp_path / "single"
    train(config(2 * PER_RANK), single, data=DATA, net=tiny_net(), progress=False)

    run = tmp_path / "two" / "run"
    run.parent.mkdir()
    run_ranks(_train_rank, run, 6, False)  # stops after step 6 like a crash; last checkpoint at step 4
    assert read_checkpoint(run).step == 4
    assert not (tmp_path / "two" / "writes-rank1.txt").exists(), "rank 1 wrote files"
    written = (tmp_path / "two" / "writes-rank0.txt").read_text()
    assert "save_checkpoint" in written and "metrics.jsonl" in written and "config.json" in written
    assert_close(weights(run, 4), weights(single, 4))

    run_ranks(_train_rank, run, None, True)  # resumed under the same world size: runs to the end
    ckpt = read_checkpoint(run)
    assert ckpt.step == STEPS and ckpt.state["world_size"] == 2
    assert_close(weights(run, STEPS), weights(single, STEPS))
    assert_close(weights(run, STEPS, "ema"), weights(single, STEPS, "ema"))
    np.testing.assert_allclose(losses(run), losses(single), rtol=1e-4)  # all-reduced means of the global batch
    assert not (tmp_path / "two" / "writes-rank1.txt").exists()

    with pytest.raises(ValueError, match=r"trained by 2 process\(es\).*--nproc 2"):
        train(config(PER_RANK), run, data=DATA, net=tiny_net(), progress=False, resume=True)


def _train_rank_signalled(run: Path) -> None:
    """Rank 1 alone gets SIGTERM during step 3; each rank records where it stopped and why."""
    rank = int(os.environ["RANK"])

    class Signalled(TinyNet):
        calls = 0

        def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            type(self).calls += 1
            if rank == 1 and type(self).calls == 3:
                os.kill(os.getpid(), signal.SIGTERM)
            return super().forward(x, t)

    torch.manual_seed(0)  # the same initial weights on both ranks, as tiny_net()
    summary = train(config(PER_RANK), run, data=DATA, net=Signalled(), progress=False)
    report = {"step": summary.step, "stopped_by": summary.stopped_by, "checkpoint": str(summary.checkpoint)}
    (run.parent / f"stopped-rank{rank}.json").write_text(json.dumps(report))


def test_a_signal_on_one_rank_stops_every_rank_at_the_same_step(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run_ranks(_train_rank_signalled, run)
    reports = [json.loads((tmp_path / f"stopped-rank{r}.json").read_text()) for r in range(2)]
    assert [(r["step"], r["stopped_by"]) for r in reports] == [(3, "SIGTERM"), (3, "SIGTERM")]
    assert read_checkpoint(run).step == 3 and reports[0]["checkpoint"].endswith("step-00000003")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000003"]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """A U-Net run trained by ``softdiff train --nproc 2`` (the real torchrun launcher)."""
    out = tmp_path_factory.mktemp("cli") / "run"
    args = ["train", "--nproc", "2", "--dataset", "synthetic", "--steps", "3", "--batch-size", "4", "--width", "8"]
    args += ["--set", "train.preview_every=2", "--set", "train.preview_steps=2"]
    args += ["--tensorboard"] if importlib.util.find_spec("tensorboard") is not None else []
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(
        [sys.executable, "-m", "softdiff", *args, "--device", "cpu", "--no-progress", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=ROOT,
    )
    return out, done


def test_train_nproc_launches_torchrun_and_rank0_reports(cli_run: tuple[Path, subprocess.CompletedProcess]) -> None:
    run, done = cli_run
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("step 3: loss") == 1, done.stdout  # only rank 0 prints
    ckpt = read_checkpoint(run)
    assert ckpt.step == 3 and ckpt.state["world_size"] == 2
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [3]

    result = CliRunner().invoke(app, ["train", "--resume", "--out", str(run), "--steps", "5", "--no-progress"])
    assert result.exit_code == 2 and "trained by 2 process(es)" in result.output, result.output


def test_rank0_alone_writes_previews_and_tensorboard(cli_run: tuple[Path, subprocess.CompletedProcess]) -> None:
    run, done = cli_run
    assert done.returncode == 0, done.stdout + done.stderr
    logged = [json.loads(line)["step"] for line in (run / "previews" / "previews.jsonl").read_text().splitlines()]
    assert logged == [2, 3], logged  # two writers would log each step twice
    assert sorted(p.name for p in (run / "previews").glob("*.png")) == ["step-2.png", "step-3.png"]
    if importlib.util.find_spec("tensorboard") is not None:
        events = list((run / "tb").rglob("events.out.tfevents.*"))
        assert len(events) == 1, events


def _sample_rank(run: Path, out: Path) -> None:
    args = ["sample", "--ckpt", str(run), "-n", "5", "--steps", "3", "--batch-size", "2", "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--trajectory", "--png", "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output


def test_sharded_sample_equals_one_process(cli_run: tuple[Path, subprocess.CompletedProcess], tmp_path: Path) -> None:
    run, done = cli_run
    assert done.returncode == 0, done.stderr
    _sample_rank(run, tmp_path / "one")
    run_ranks(_sample_rank, run, tmp_path / "two")
    one, two = np.load(tmp_path / "one" / "samples.npz"), np.load(tmp_path / "two" / "samples.npz")
    assert one["images"].shape == (5, 1, 16, 16)
    np.testing.assert_array_equal(one["images"], two["images"])
    for name in ("grid.png", "trajectory.png", "png/000004.png"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name


def test_nproc_is_refused_under_torchrun_and_outside_a_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="must contain 'train'"):
        relaunch("train", 2, ["sample", "--nproc", "2"])
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="under torchrun"):
        relaunch("train", 2, ["train", "--nproc", "2"])


def test_shard_range_and_strip_option() -> None:
    for n in range(1, 12):
        for world in range(1, 5):
            blocks = [shard_range(n, r, world) for r in range(world)]
            assert [i for b in blocks for i in b] == list(range(n))
            assert max(map(len, blocks)) - min(map(len, blocks)) <= 1
    args = ["--steps", "3", "--nproc", "2", "--out", "x", "--nproc=4"]
    assert strip_option(args, "--nproc") == (["--steps", "3", "--out", "x"], "4")


def test_the_nproc_launcher_passes_sigterm_on_to_torchrun(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    child = "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: sys.exit(42)); "
    child += f"open({str(ready)!r}, 'w').close(); time.sleep(60)"

    def signal_when_ready() -> None:
        while not ready.exists():
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)  # to the launcher (this process), as a scheduler would

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    threading.Thread(target=signal_when_ready, daemon=True).start()
    start = time.monotonic()
    assert call_forwarding_sigterm([sys.executable, "-c", child]) == 42
    assert time.monotonic() - start < 50
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before  # handlers restored
