"""``softdiff report``: the page a run gets, checked in a real browser (headless Chromium), and its refusals."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

import softdiff.cli.eval as eval_cli
from softdiff.cli import app
from softdiff.report import config_differences, read_run, write_report
from softdiff.report.page import SCRIPT

runner = CliRunner()
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium; .ci/run installs it)"
)


def invoke(*args: str) -> object:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def full_run(run_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny shared run plus what a user adds: an eval (tiny features) and a scored restoration."""
    from test_eval_cli import PooledPixels

    run = tmp_path_factory.mktemp("report") / "tiny-run"
    shutil.copytree(run_dir, run)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(eval_cli, "get_extractor", lambda features, inception_weights=None: PooledPixels())
        invoke(
            "eval", "--ckpt", str(run), "-n", "8", "--sampler", "naive,momentum", "--steps", "2,4", "--device", "cpu",
            "--no-progress", "--cache-dir", str(run.parent / "cache"),
        )  # fmt: skip
    invoke(
        "restore", "--ckpt", str(run), "--operator", "blur:sigma=1", "--noise", "0.02", "--from-dataset", "synthetic",
        "-n", "2", "--samples", "2", "--steps", "2", "--no-fid", "--out", str(run / "restore-blur"), "--device", "cpu",
        "--no-progress",
    )  # fmt: skip
    return run


def dom(page: Path) -> str:
    """The DOM headless Chromium built from ``page`` after its load event (a fresh profile, no network)."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}"]  # fmt: skip
        done = subprocess.run(
            [CHROMIUM, *flags, "--dump-dom", page.resolve().as_uri()], capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def images_state(html: str) -> str:
    found = re.search(r'<body[^>]*data-images="([^"]*)"', html)
    assert found is not None, "the page's load script did not run"
    return found.group(1)


@needs_chromium
def test_the_report_shows_the_runs_numbers_and_every_image_loads_in_chromium(full_run: Path) -> None:
    result = invoke("report", str(full_run))
    page = full_run / "report" / "index.html"
    assert str(page) in result.output
    source = page.read_text()
    assert not re.search(r'(src|href)="(?!data:)', source), "every resource is inlined"
    html = dom(page)
    images = source.count("<img ")
    assert images_state(html) == f"ok:{images}"
    # previews, corruption strip, 3 curves, an FID chart, 2 restoration strips
    assert images >= 8 and "step 2" in html
    last = [json.loads(line) for line in (full_run / "metrics.jsonl").read_text().splitlines()][-1]
    assert re.search(rf'class="last-loss"[^>]*>{last["loss"]:.5g}<', html)
    cells = json.loads((full_run / "eval" / "eval.json").read_text())["results"]
    shown = re.findall(r'<td class="fid">([^<]*)</td>', html)
    assert len(cells) == 4 and all(f"{c['fid']:.2f}" in shown for c in cells)
    assert "precision" in html and "recall" in html  # the cells hold them (n = 8 > k)
    metrics = json.loads((full_run / "restore-blur" / "metrics.json").read_text())
    assert f"{metrics['mean']['psnr']:.2f}" in html
    assert "Not in this run folder" not in html  # nothing is missing from this run


@needs_chromium
def test_the_image_check_catches_a_broken_image(tmp_path: Path) -> None:
    good = base64.b64encode((Path(__file__).parents[1] / "docs" / "img" / "levels-blur.png").read_bytes()).decode()
    page = tmp_path / "broken.html"
    page.write_text(
        f"<!DOCTYPE html><html><head><script>{SCRIPT}</script></head><body>"
        f'<img src="data:image/png;base64,{good}"><img src="data:image/png;base64,iVBORw0KGgoAAAAAAAA="></body></html>'
    )
    assert images_state(dom(page)) == "broken:1"


def test_a_run_without_evals_or_previews_is_reported_with_what_is_missing(tmp_path: Path) -> None:
    run = tmp_path / "bare"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"data": {"dataset": "synthetic"}}))
    result = runner.invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    html = (run / "report" / "index.html").read_text()
    for missing in ("no checkpoint yet", "no metrics.jsonl", "no previews", "no evaluation (eval.json)"):
        assert missing in html, missing
    assert "softdiff eval --ckpt" in html and "The process the model undoes" in html


@pytest.mark.parametrize("case", ["missing", "file", "no-config", "bad-config", "checkpoint", "unwritable"])
def test_bad_input_is_one_error_line_and_exit_2(case: str, run_dir: Path, tmp_path: Path) -> None:
    target, extra = tmp_path / "x", []
    if case == "file":
        target.write_text("not a run")
    elif case == "no-config":
        target.mkdir()
    elif case == "bad-config":
        target.mkdir()
        (target / "config.json").write_text('{"train": {"steps": "many"}}')
    elif case == "checkpoint":
        target = run_dir / "checkpoints" / "step-00000002"
    elif case == "unwritable":
        target, blocker = run_dir, tmp_path / "a-file"
        blocker.write_text("")
        extra = ["--out", str(blocker / "report")]  # a folder below a file cannot be made, even by root
    result = runner.invoke(app, ["report", str(target), *extra])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "Traceback" not in result.output


def test_text_from_the_run_is_escaped(tmp_path: Path) -> None:
    run = tmp_path / "<b>bold<i>&"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"data": {"dataset": "synthetic"}}))
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5, "lr": 0.001, "grad_norm": 1.0}\n')
    html = write_report([run], tmp_path / "out").read_text()
    assert "<b>bold" not in html and "&lt;b&gt;bold&lt;i&gt;&amp;" in html


@needs_chromium
def test_several_runs_side_by_side(full_run: Path, run_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other-run"
    shutil.copytree(full_run, other)
    config = json.loads((other / "config.json").read_text())
    config["train"]["seed"] = 7
    (other / "config.json").write_text(json.dumps(config))
    records = [read_run(full_run), read_run(other)]
    assert [key for key, _ in config_differences(records)] == ["train.seed"]
    result = runner.invoke(app, ["report", str(full_run), str(other), "--out", str(tmp_path / "both")])
    assert result.exit_code == 0, result.output
    page = tmp_path / "both" / "index.html"
    html = dom(page)
    assert images_state(html) == f"ok:{page.read_text().count('<img ')}"
    differences = re.search(r'<table class="differences">.*?</table>', html, re.S)
    assert differences is not None and "train.seed" in differences.group(0) and ">7<" in differences.group(0)
    matrix = re.search(r'<table class="fid-matrix">.*?</table>', html, re.S)
    assert matrix is not None and "FID tiny-run" in matrix.group(0) and "FID other-run" in matrix.group(0)
    assert html.count('<section class="run"') == 2
