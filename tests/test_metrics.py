"""FID/KID on the shipped Fashion-MNIST features: correctness, caching, errors, the feature net."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

import softdiff.eval.extractors as extractors
from softdiff.data import FASHION_MNIST_DIR, ImageData, load_dataset
from softdiff.eval import (
    FEATURE_NET_PATH,
    INCEPTION_WEIGHTS_FILE,
    FashionFeatures,
    InceptionFeatures,
    InceptionUnavailable,
    build_metrics,
    evaluate_samples,
    extract_features,
    fid_kid_from_features,
    get_extractor,
    load_feature_net,
    real_features,
    train_feature_net,
)
from softdiff.eval.features import classify_accuracy, data_digest
from softdiff.stats import frechet_distance

needs_data = pytest.mark.skipif(not FASHION_MNIST_DIR.exists(), reason="Fashion-MNIST is not installed")


@pytest.fixture(scope="module")
def test_split() -> ImageData:
    if not FASHION_MNIST_DIR.exists():
        pytest.skip("Fashion-MNIST is not installed")
    return load_dataset("fashion-mnist", "test")


@pytest.fixture(scope="module")
def real(test_split: ImageData) -> ImageData:
    return test_split.subset(400, seed=1)


@pytest.fixture(scope="module")
def extractor() -> FashionFeatures:
    return FashionFeatures()


class CallLog:
    """Records the input shape of every forward call of a module."""

    def __init__(self, module: nn.Module) -> None:
        self.shapes: list[tuple[int, ...]] = []
        self.handle = module.register_forward_pre_hook(lambda _m, args: self.shapes.append(tuple(args[0].shape)))


def noisy(images: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    x = images.float() / 127.5 - 1
    return x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))


@needs_data
def test_fid_of_a_set_with_itself_is_zero_and_grows_with_noise(
    real: ImageData, extractor: FashionFeatures, tmp_path
) -> None:
    results = [
        evaluate_samples(noisy(real.images, s), real, features=extractor, cache_dir=tmp_path, kid_subsets=2)
        for s in (0.0, 0.1, 0.2, 0.4, 0.8)
    ]
    fids = [r["fid"] for r in results]
    kids = [r["kid_mean"] for r in results]
    assert abs(fids[0]) < 1e-6 * fids[1], fids
    assert all(a < b for a, b in zip(fids, fids[1:], strict=False)), fids
    assert all(a < b for a, b in zip(kids, kids[1:], strict=False)), kids
    assert results[0]["features"] == "fashion-feature-net v1 (128-d)" and results[0]["n"] == 400


@needs_data
def test_state_injection_matches_torchmetrics_update_and_frechet_distance(
    real: ImageData, extractor: FashionFeatures
) -> None:
    fake = noisy(real.images[:300], 0.2)
    plain = FrechetInceptionDistance(feature=extractor)
    plain.update(real.images, real=True)
    plain.update(fake, real=False)
    reference = float(plain.compute())

    real_f, fake_f = extract_features(real, extractor).double(), extract_features(fake, extractor).double()
    ours = fid_kid_from_features(extractor, real_f, fake_f, kid_subsets=1)["fid"]
    direct = frechet_distance(real_f.mean(0), real_f.T.cov(), fake_f.mean(0), fake_f.T.cov())
    assert ours == pytest.approx(reference, rel=1e-6)
    assert direct == pytest.approx(reference, rel=1e-6)


@needs_data
def test_num_features_is_declared_so_no_dummy_299_pass(real: ImageData, extractor: FashionFeatures, tmp_path) -> None:
    log = CallLog(extractor)
    try:
        FrechetInceptionDistance(feature=extractor)
        build_metrics(extractor)
        assert log.shapes == []
        evaluate_samples(
            real.images[:100], real, features=extractor, cache_dir=tmp_path, use_cache=False, kid_subsets=2
        )
        assert log.shapes and all(s[1:] == (1, 28, 28) for s in log.shapes), log.shapes
    finally:
        log.handle.remove()

    class Undeclared(nn.Module):  # control: without num_features torchmetrics probes with 299x299
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.float().flatten(1)[:, :8]

    probe = Undeclared()
    control = CallLog(probe)
    FrechetInceptionDistance(feature=probe)
    assert control.shapes == [(1, 3, 299, 299)]


@needs_data
def test_real_statistics_are_cached_and_invalidated(real: ImageData, extractor: FashionFeatures, tmp_path) -> None:
    log = CallLog(extractor)
    try:
        first = real_features(real, extractor, cache_dir=tmp_path)
        calls = len(log.shapes)
        assert calls > 0 and len(list(tmp_path.glob("*.safetensors"))) == 1
        second = real_features(real, extractor, cache_dir=tmp_path)
        assert len(log.shapes) == calls, "cached features were recomputed"
        assert torch.equal(first, second)

        changed = real.images.clone()
        changed[0, 0, 0, 0] ^= 1  # one pixel differs: another data set
        real_features(ImageData(changed, real.labels, real.name), extractor, cache_dir=tmp_path)
        assert len(log.shapes) > calls
    finally:
        log.handle.remove()

    retrained = copy.deepcopy(extractor)
    with torch.no_grad():
        retrained.net.embedding.bias[0] += 0.5
    log2 = CallLog(retrained)
    again = real_features(real, retrained, cache_dir=tmp_path)
    assert log2.shapes, "features of a changed feature net were read from the old cache"
    assert not torch.equal(again, first)
    assert len(list(tmp_path.glob("*.safetensors"))) == 3

    a = evaluate_samples(noisy(real.images, 0.1), real, features=extractor, cache_dir=tmp_path, kid_subsets=10)
    b = evaluate_samples(noisy(real.images, 0.1), real, features=extractor, cache_dir=tmp_path, kid_subsets=10)
    assert a == b  # cached real features and seeded KID subsets: identical numbers


@needs_data
def test_corrupt_cache_file_is_recomputed(real: ImageData, extractor: FashionFeatures, tmp_path) -> None:
    first = real_features(real, extractor, cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.safetensors")
    path.write_bytes(b"not a safetensors file")
    with pytest.warns(UserWarning, match="unreadable feature cache"):
        assert torch.equal(real_features(real, extractor, cache_dir=tmp_path), first)


@needs_data
def test_kid_subset_size_never_exceeds_n(real: ImageData, extractor: FashionFeatures, tmp_path) -> None:
    result = evaluate_samples(
        noisy(real.images, 0.1), real, features=extractor, n=60, cache_dir=tmp_path, kid_subsets=10
    )
    assert result["n"] == 60 and result["kid_subset_size"] == 60 and result["n_real"] == 400


def test_bad_inputs_give_clear_errors(extractor: FashionFeatures) -> None:
    real = ImageData(torch.zeros(10, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        evaluate_samples(torch.zeros(10, 3, 32, 32), real, features=extractor, use_cache=False)
    with pytest.raises(ValueError, match="n must be"):
        evaluate_samples(torch.zeros(10, 1, 28, 28), real, features=extractor, n=11, use_cache=False)
    with pytest.raises(ValueError, match="'fashion' or 'inception'"):
        get_extractor("vgg")


def test_missing_inception_extra_names_the_extra_and_weights(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(extractors, "inception_available", lambda: False)
    with pytest.raises(InceptionUnavailable, match=r"softdiff\[inception\]") as err:
        get_extractor("inception", inception_weights=tmp_path / INCEPTION_WEIGHTS_FILE)
    assert INCEPTION_WEIGHTS_FILE in str(err.value) and "torch-fidelity" in str(err.value)
    assert isinstance(err.value, ValueError)  # the CLI turns it into a one-line error


def test_missing_inception_weights_names_the_file(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(extractors, "inception_available", lambda: True)
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(InceptionUnavailable, match="nowhere.pth not found") as err:
        InceptionFeatures(missing)
    assert INCEPTION_WEIGHTS_FILE in str(err.value) and "--inception-weights" in str(err.value)
    with pytest.raises(InceptionUnavailable, match="no Inception weights given"):
        InceptionFeatures(None)


def test_shipped_feature_net_record() -> None:
    record = json.loads(FEATURE_NET_PATH.with_suffix(".json").read_text())
    assert record["test_accuracy"] >= 0.9
    assert record["embed_dim"] == 128 and record["seed"] == 0 and record["epochs"] >= 1
    assert FEATURE_NET_PATH.stat().st_size < 1_000_000


@needs_data
def test_shipped_weights_match_their_record(test_split: ImageData) -> None:
    record = json.loads(FEATURE_NET_PATH.with_suffix(".json").read_text())
    assert record["test_data_sha256"] == data_digest(test_split.images)
    assert classify_accuracy(load_feature_net(), test_split.subset(1000, seed=0)) >= record["test_accuracy"] - 0.03


@needs_data
def test_feature_net_training_is_reproducible(test_split: ImageData) -> None:
    small = test_split.subset(64, seed=3)
    net_a, rec_a = train_feature_net(small, small, epochs=1, seed=5, batch_size=32, progress=False)
    net_b, rec_b = train_feature_net(small, small, epochs=1, seed=5, batch_size=32, progress=False)
    for (k, a), b in zip(net_a.state_dict().items(), net_b.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert rec_a["test_accuracy"] == rec_b["test_accuracy"]


def test_load_feature_net_rejects_non_safetensors(tmp_path) -> None:
    bad = tmp_path / "net.safetensors"
    bad.write_bytes(b"\x80\x04pickle")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_feature_net(bad)
    with pytest.raises(FileNotFoundError):
        load_feature_net(tmp_path / "absent.safetensors")


def test_features_train_cli_reports_a_bad_data_dir_in_one_line(tmp_path) -> None:
    from typer.testing import CliRunner

    from softdiff.cli.app import app

    result = CliRunner().invoke(
        app, ["features", "train", "--data-dir", str(tmp_path), "--out", str(tmp_path / "n.safetensors")]
    )
    assert result.exit_code == 2
    assert "Fashion-MNIST file" in result.output and "Traceback" not in result.output
