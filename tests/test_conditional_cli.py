"""Class-conditional runs end to end: labels from the data, ``train --cond class``, ``sample --class/--guidance``,
``restore --class``, and the one-line errors of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

import softdiff.cli.eval as eval_cli
from softdiff.cli import app
from softdiff.data import load_dataset
from softdiff.eval import FeatureExtractor
from softdiff.eval.guidance import class_accuracy, per_class_labels
from softdiff.samplers import ClassPrior
from softdiff.train import RunConfig, load_run

runner = CliRunner()
BASE = ["--dataset", "synthetic", "--batch-size", "8", "--width", "8", "--device", "cpu", "--threads", "1"]
BASE += ["--set", "train.select_levels=false", "--set", "train.log_every=1", "--no-progress"]


def train(out: Path, *extra: str) -> None:
    result = runner.invoke(app, ["train", *BASE, "--out", str(out), *extra])
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def cond_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cond") / "run"
    train(out, "--steps", "3", "--cond", "class", "--cond-dropout", "0.25")
    return out


def test_the_run_records_its_classes_and_round_trips(cond_run: Path) -> None:
    config = json.loads((cond_run / "config.json").read_text())
    assert config["cond"] == {"kind": "class", "dropout": 0.25, "classes": ["square", "disc"]}
    assert config["model"]["num_classes"] == 2
    run = load_run(cond_run)
    assert run.classes == ["square", "disc"] and run.net.class_embed is not None
    assert run.net.class_embed.weight.shape[0] == 3  # two classes and the null class
    assert run.net.class_embed.weight.abs().sum() > 0  # trained away from its zero start
    assert isinstance(run.prior, ClassPrior) and len(run.prior.priors) == 2  # class_prior.safetensors
    assert (next((cond_run / "checkpoints").iterdir()) / "class_prior.safetensors").is_file()
    x, t = torch.randn(2, 1, 16, 16), torch.full((2,), 0.5)
    assert not torch.equal(run.denoiser(x, t, cond=torch.tensor([0, 0])), run.denoiser(x, t, cond=torch.tensor([1, 1])))


def test_resume_keeps_the_classes(cond_run: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(cond_run, copy)
    train(copy, "--steps", "4", "--cond", "class", "--cond-dropout", "0.25", "--resume")
    assert load_run(copy).step == 4
    again = ["train", *BASE, "--out", str(copy), "--steps", "5", "--resume", "--cond-dropout", "0.5"]
    result = runner.invoke(app, again)
    assert result.exit_code == 2 and "cannot change cond" in result.output


def test_an_old_config_without_cond_loads() -> None:
    data = RunConfig().model_dump(mode="json")
    del data["cond"]
    del data["model"]["num_classes"]
    config = RunConfig.model_validate(data)
    assert config.cond.kind == "none" and config.classes is None and config.model.num_classes == 0


def test_conditioning_leaves_the_first_step_unchanged(tmp_path: Path) -> None:
    """The class embedding starts at zero and label dropout has its own generator: step 1's loss is the same."""
    train(tmp_path / "plain", "--steps", "1")
    train(tmp_path / "cond", "--steps", "1", "--cond", "class")

    def loss(run: Path) -> float:
        return json.loads((run / "metrics.jsonl").read_text().splitlines()[0])["loss"]

    assert loss(tmp_path / "plain") == loss(tmp_path / "cond")


def test_sample_one_row_per_class_with_guidance(cond_run: Path, tmp_path: Path) -> None:
    args = ["sample", "--ckpt", str(cond_run), "--steps", "3", "-n", "3", "--no-progress", "--out", str(tmp_path)]
    result = runner.invoke(app, [*args, "--class", "all", "--guidance", "2", "--sampler", "euler", "--threads", "1"])
    assert result.exit_code == 0, result.output
    npz = np.load(tmp_path / "samples.npz")
    meta = json.loads(str(npz["meta"]))
    assert meta["labels"] == [0, 0, 0, 1, 1, 1] and meta["classes"] == ["square", "disc"]
    assert meta["guidance"] == 2.0 and meta["nfe"] == 6  # 3 steps, 2 network calls each
    width, height = Image.open(tmp_path / "grid.png").size
    assert npz["images"].shape == (6, 1, 16, 16) and (width > height)  # 2 rows of 3
    plain = runner.invoke(app, [*args[:-3], "--out", str(tmp_path / "w1"), "--class", "disc", "--sampler", "euler"])
    assert plain.exit_code == 0, plain.output
    w1 = json.loads(str(np.load(tmp_path / "w1" / "samples.npz")["meta"]))
    assert (w1["nfe"], w1["guidance"], w1["labels"]) == (3, 1.0, [1, 1, 1])


def test_restore_with_a_class(cond_run: Path, tmp_path: Path) -> None:
    args = ["restore", "--ckpt", str(cond_run), "--operator", "blur:sigma=1", "--noise", "0.05", "--from-dataset"]
    args += ["synthetic", "-n", "2", "--steps", "3", "--method", "project", "--no-fid", "--no-progress"]
    out = {}
    for klass in ("square", "disc"):
        result = runner.invoke(app, [*args, "--out", str(tmp_path / klass), "--class", klass, "--threads", "1"])
        assert result.exit_code == 0, result.output
        out[klass] = np.load(tmp_path / klass / "samples.npz")
        assert json.loads((tmp_path / klass / "metrics.json").read_text())
    assert json.loads(str(out["disc"]["meta"]))["class"] == "disc"
    assert not np.array_equal(out["square"]["images"], out["disc"]["images"])


def test_restore_with_guidance(cond_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """w = 1 (the default) is the conditional model itself; another w runs every call through Guided."""
    import softdiff.cli.restore as restore_cli
    from softdiff.conditioning import Guided

    calls: list[float] = []

    class Spy(Guided):
        def __call__(self, x, t, cond=None):
            calls.append(self.scale)
            return super().__call__(x, t, cond)

    monkeypatch.setattr(restore_cli, "Guided", Spy)
    args = ["restore", "--ckpt", str(cond_run), "--operator", "blur:sigma=1", "--noise", "0.05", "--from-dataset"]
    args += ["synthetic", "-n", "2", "--steps", "3", "--method", "project", "--no-fid", "--no-progress"]
    meta = {}
    for w in ("1", "2"):
        result = runner.invoke(app, [*args, "--out", str(tmp_path / w), "--class", "disc", "--guidance", w])
        assert result.exit_code == 0, result.output
        meta[w] = json.loads(str(np.load(tmp_path / w / "samples.npz")["meta"]))
        assert calls == ([] if w == "1" else [2.0] * len(calls)) and (w == "1" or len(calls) >= 3)
    assert (meta["1"]["guidance"], meta["2"]["guidance"], meta["2"]["nfe"]) == (1.0, 2.0, 2 * meta["1"]["nfe"])


def test_folder_classes_come_from_sorted_subfolders(tmp_path: Path) -> None:
    for name, shade in (("zebra", 200), ("ant", 50), ("moth", 120)):
        (tmp_path / "classes" / name).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((8, 8), shade, np.uint8)).save(tmp_path / "classes" / name / f"{i}.png")
    data = load_dataset("folder", data_dir=tmp_path / "classes", image_size=8)
    assert data.classes == ("ant", "moth", "zebra")
    assert data.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert data.images[data.labels == 2].float().mean() > 150  # zebra's images carry zebra's label
    (tmp_path / "flat").mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8), 9, np.uint8)).save(tmp_path / "flat" / f"{i}.png")
    flat = load_dataset("folder", data_dir=tmp_path / "flat", image_size=8)
    assert flat.labels is None and flat.classes is None
    assert load_dataset("synthetic").classes == ("square", "disc")


@pytest.fixture(scope="module")
def flat_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("flat")
    for i in range(12):
        Image.fromarray(np.full((8, 8), 10 * i, np.uint8)).save(root / f"{i}.png")
    return root


RESTORE = ["--operator", "blur:sigma=1", "--noise", "0.05"]


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["sample", "--ckpt", "COND", "--class", "circle"], "unknown class 'circle'"),
        (["sample", "--ckpt", "COND", "--class", "2"], "unknown class '2'"),
        (["sample", "--ckpt", "PLAIN", "--class", "0"], "unconditional"),
        (["sample", "--ckpt", "COND", "--class", "0", "--guidance", "-1"], "finite number >= 0"),
        (["sample", "--ckpt", "COND", "--class", "0", "--guidance", "nan"], "finite number >= 0"),
        (["sample", "--ckpt", "COND", "--class", "0", "--guidance", "inf"], "finite number >= 0"),
        (["sample", "--ckpt", "COND", "--guidance", "2"], "--guidance needs --class"),
        (["restore", "--ckpt", "PLAIN", *RESTORE, "--class", "0", "IMG"], "unconditional"),
        (["restore", "--ckpt", "COND", *RESTORE, "--class", "cat", "IMG"], "unknown class 'cat'"),
        (["restore", "--ckpt", "COND", *RESTORE, "--guidance", "2", "IMG"], "--guidance needs --class"),
        (["restore", "--ckpt", "COND", *RESTORE, "--class", "0", "--guidance", "-1", "IMG"], "finite number >= 0"),
        (["train", "--dataset", "folder", "--data-dir", "FLAT", "--image-size", "8", "--cond", "class"], "no"),
        (["train", "--cond", "word"], "cond.kind"),
        (["train", "--cond", "class", "--cond-dropout", "1.5"], "cond.dropout"),
    ],
)
def test_bad_input_is_a_one_line_error(
    command: list[str], message: str, cond_run: Path, run_dir: Path, flat_folder: Path, tmp_path: Path
) -> None:
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "img.png")
    paths = {"COND": cond_run, "PLAIN": run_dir, "FLAT": flat_folder, "IMG": tmp_path / "img.png"}
    args = [str(paths.get(a, a)) for a in command]
    extra = ["--steps", "2", "--threads", "1"] + (["--set", "train.select_levels=false"] if args[0] == "train" else [])
    result = runner.invoke(app, [*args, *extra, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert result.output.startswith("error:")


# ---- eval against guidance ---------------------------------------------------------------


class PooledPixels(FeatureExtractor):
    """A tiny stand-in feature net for 16x16 synthetic images: 4x4 average-pooled pixels."""

    num_features = 16
    description = "pooled-pixels (test)"

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(images.float() / 127.5 - 1, 4).flatten(1)


def test_eval_sweeps_guidance_class_by_class(cond_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eval_cli, "get_extractor", lambda features, inception_weights=None: PooledPixels())
    args = ["eval", "--ckpt", str(cond_run), "-n", "4", "--out", str(tmp_path), "--no-progress", "--threads", "1"]
    args += ["--cache-dir", str(tmp_path / "cache"), "--sampler", "euler", "--steps", "2", "--guidance", "0,1,3"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "guidance.json").read_text())
    assert record["classes"] == ["square", "disc"]
    assert [(r["guidance"], r["nfe"]) for r in record["results"]] == [(0.0, 2), (1.0, 2), (3.0, 4)]
    assert [r.get("unconditional") for r in record["results"]] == [True, None, None]
    assert all(r["fid"] >= 0 for r in record["results"])
    # w = 0 is the unconditional model from the shared prior: the same images as the run sampled without labels
    from softdiff.eval import sweep
    from softdiff.train import load_run

    plain = sweep(load_run(cond_run), ["euler"], [2], n=4, extractor=PooledPixels(), cache_dir=tmp_path / "cache")
    assert plain[0]["fid"] == record["results"][0]["fid"]
    assert (tmp_path / "guidance.png").stat().st_size > 1000
    again = runner.invoke(app, args)  # resumable: the cells are reused
    assert again.exit_code == 0 and again.output.count("reused") == 3, again.output
    bad = runner.invoke(app, [*args[:4], "5", *args[5:]])
    assert bad.exit_code == 2 and "multiple of the run's 2 classes" in bad.output


def test_eval_guidance_needs_a_conditional_run(run_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["eval", "--ckpt", str(run_dir), "--guidance", "0,2", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "unconditional" in result.output
    assert len(result.output.strip().splitlines()) == 1
    with pytest.raises(ValueError, match="finite number >= 0"):
        eval_cli.parse_guidance("0,-1")


def test_class_accuracy_counts_each_class_on_its_own() -> None:
    class Brightness(torch.nn.Module):  # "class 1" for bright images, "class 0" for dark ones
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            m = x.flatten(1).mean(1, keepdim=True)
            return torch.cat([-m, m], 1)

    images = torch.tensor([-1.0, -1.0, 1.0, 1.0, 1.0, -1.0]).reshape(6, 1, 1, 1).expand(6, 1, 2, 2)
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    assert class_accuracy(Brightness(), images, labels, 2) == pytest.approx([2 / 3, 2 / 3])
    assert per_class_labels(["a", "b"], 4).tolist() == [0, 0, 1, 1]
