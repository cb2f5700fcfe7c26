"""Evaluation: FID/KID (torchmetrics) on offline Fashion-MNIST features or Inception-v3."""

from .cache import default_cache_dir, extract_features, real_features
from .extractors import (
    INCEPTION_WEIGHTS_FILE,
    FashionFeatures,
    FeatureExtractor,
    InceptionFeatures,
    InceptionUnavailable,
    get_extractor,
)
from .features import FEATURE_NET_PATH, FeatureNet, load_feature_net, save_feature_net, train_feature_net
from .metrics import build_metrics, evaluate_samples, fid_kid_from_features
from .prdc import prdc
from .sweeps import load_results, parse_grids, parse_samplers, parse_steps, plot_fid_vs_nfe, reference_data, sweep

__all__ = [
    "FeatureNet",
    "FEATURE_NET_PATH",
    "load_feature_net",
    "save_feature_net",
    "train_feature_net",
    "FeatureExtractor",
    "FashionFeatures",
    "InceptionFeatures",
    "InceptionUnavailable",
    "INCEPTION_WEIGHTS_FILE",
    "get_extractor",
    "default_cache_dir",
    "extract_features",
    "real_features",
    "build_metrics",
    "fid_kid_from_features",
    "prdc",
    "evaluate_samples",
    "sweep",
    "load_results",
    "parse_samplers",
    "parse_grids",
    "parse_steps",
    "reference_data",
    "plot_fid_vs_nfe",
]
