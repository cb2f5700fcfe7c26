"""A checkpoint's parts must agree with its ``config.json``: checked on every load, before any tensor is used.

The SHA-256 manifest catches a truncated or damaged file, but not an edit followed by a
re-hash, nor another run's ``config.json`` copied in: then a 28x28 config would sample
around a 16x16 run's prior, or a changed parameterisation would drive weights trained for
another. So a load checks what the config implies:

* the weights: raw and EMA hold the same tensors, and exactly the tensors of the network the config builds, of the
  same shapes and dtypes (``load_state_dict`` would silently cast int64 weights to float);
* the prior: its own tensors only, floating point, over images of the config's shape;
* ``precond.safetensors``: present exactly when the parameterisation or the weighting needs
  it, with statistics of the config's image shape;
* the identity of the run: every tensor file records, in its safetensors metadata, the
  SHA-256 of the config sections the weights depend on (:func:`config_identity`); a
  ``config.json`` whose sections differ is refused. ``train.*`` and ``data.data_dir`` are
  left out, so moving the data or changing a training setting is not a tamper. Checkpoints
  written before this record exist are checked on structure only.

On ``--resume`` the optimizer's moments must have the shape and dtype of their parameters
(:func:`check_optimizer_state`); the fused AdamW step would otherwise read past them.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ..score import needs_statistics
from .config import RunConfig

__all__ = [
    "IDENTITY_KEY",
    "config_identity",
    "tensor_metadata",
    "check_weights",
    "check_twins",
    "check_prior",
    "check_class_prior",
    "check_precond",
    "check_identity",
    "check_optimizer_state",
]

IDENTITY_KEY = "softdiff_config_sha256"
PRIOR_KEYS = {
    frozenset({"mean", "components", "variances", "noise"}),  # GaussianPrior
    frozenset({"mean", "components", "weights", "centres", "scales", "noise"}),  # MixturePrior
}
STATISTICS_KEYS = frozenset({"mean", "variance", "cross", "power", "excess", "spectrum"})
LOSS_SCALE = "loss_scale"
_SCALED = ("normalised", "balanced")  # weightings whose loss scale a checkpoint stores


def config_identity(config_json: bytes) -> str:
    """SHA-256 of what the weights depend on in a ``config.json``: everything but ``train`` and ``data.data_dir``.

    Computed on the file's JSON, not on a re-validated config, so a default added to a
    later softdiff does not change the identity of an older run.
    """
    data = json.loads(config_json)
    if not isinstance(data, dict):
        raise ValueError("config.json must hold a JSON object")
    data = {k: v for k, v in data.items() if k != "train"}
    if isinstance(data.get("data"), dict):
        data["data"] = {k: v for k, v in data["data"].items() if k != "data_dir"}
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def tensor_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file's header (``{}`` when it has none); the file is not loaded."""
    try:
        (length,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + length])
    except (struct.error, ValueError):
        return {}  # the safetensors loader reports a malformed file in its own words
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return metadata if isinstance(metadata, dict) else {}


def check_identity(metadata: Mapping[str, Mapping[str, str]], config_json: bytes, where: str) -> None:
    """Every tensor file that records a config identity must record the one of this ``config.json``."""
    identity = config_identity(config_json)
    for name, meta in metadata.items():
        recorded = meta.get(IDENTITY_KEY)
        if recorded is not None and recorded != identity:
            raise ValueError(
                f"{where}: config.json is not the config {name} was written with (replaced or edited after the "
                "checkpoint was saved; only train.* and data.data_dir may change); restore the run's own config.json"
            )


def _describe(t: Tensor) -> str:
    return f"{tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}"


def check_weights(state: Mapping[str, Tensor], net: nn.Module, where: str) -> None:
    """``state`` holds exactly ``net``'s parameters and buffers, each of the same shape and dtype."""
    expected = net.state_dict()
    extra, missing = sorted(set(state) - set(expected)), sorted(set(expected) - set(state))
    if extra or missing:
        parts = [
            f"{len(extra)} unexpected ({extra[0]}, ...)" if extra else "",
            f"{len(missing)} missing" if missing else "",
        ]
        raise ValueError(
            f"{where} does not fit the network: {' and '.join(p for p in parts if p)} "
            f"tensors{f' ({missing[0]}, ...)' if missing else ''}"
        )
    for name, want in expected.items():
        got = state[name]
        if got.shape != want.shape or got.dtype != want.dtype:
            raise ValueError(
                f"{where} does not fit the network: {name} is {_describe(got)}, the network needs {_describe(want)}"
            )


def check_twins(net: Mapping[str, Tensor], ema: Mapping[str, Tensor], where: str) -> None:
    """The raw and EMA weights are copies of one network: the same tensors, shapes and dtypes."""
    if set(net) != set(ema):
        odd = sorted(set(net) ^ set(ema))[0]
        raise ValueError(f"{where}: the raw and EMA weights hold different tensors ({odd} is in one only)")
    for name, tensor in net.items():
        if (tensor.shape, tensor.dtype) != (ema[name].shape, ema[name].dtype):
            raise ValueError(
                f"{where}: {name} is {_describe(tensor)} in the raw weights, {_describe(ema[name])} in the EMA weights"
            )


def _floating(state: Mapping[str, Tensor], where: str) -> None:
    for name, tensor in state.items():
        if not tensor.is_floating_point():
            raise ValueError(f"{where}: {name} is {_describe(tensor)}, not floating point")


def check_prior(state: Mapping[str, Tensor], config: RunConfig, where: str) -> None:
    """The prior's own tensors, floating point, over images of the config's shape."""
    if frozenset(state) not in PRIOR_KEYS:
        raise ValueError(
            f"{where}: the prior holds the tensors {sorted(state)}, not those of a Gaussian or mixture prior"
        )
    _floating(state, f"{where}: the prior")
    shape = config.image_shape
    if tuple(state["mean"].shape) != shape:
        raise ValueError(
            f"{where}: the prior is over images of shape {tuple(state['mean'].shape)}, but config.json describes "
            f"{shape} images"
        )


def check_class_prior(state: Mapping[str, Tensor] | None, config: RunConfig, where: str) -> None:
    """``class_prior.safetensors``: a class-conditional run's priors, ``"K.name"`` for each of its classes."""
    if state is None:
        return  # class-conditional checkpoints from before the class priors sample from the shared one
    classes = config.classes
    if classes is None:
        raise ValueError(f"{where}: holds class priors but config.json describes an unconditional run")
    groups: dict[str, dict[str, Tensor]] = {}
    for key, tensor in state.items():
        index, _, name = key.partition(".")
        groups.setdefault(index, {})[name] = tensor
    if sorted(groups) != sorted(str(k) for k in range(len(classes))):
        last = len(classes) - 1
        raise ValueError(f"{where}: the class priors are numbered {sorted(groups)}, not one per class 0..{last}")
    for index, group in groups.items():
        check_prior(group, config, f"{where}: class prior {index}")


def check_precond(state: Mapping[str, Tensor] | None, config: RunConfig, where: str) -> None:
    """``precond.safetensors`` holds what the parameterisation and the weighting need, and nothing else."""
    oc = config.objective
    expected = (STATISTICS_KEYS if needs_statistics(oc.parameterisation) else frozenset()) | (
        {LOSS_SCALE} if oc.weighting in _SCALED else frozenset()
    )
    held = frozenset(state or {})
    if held != expected:
        want = f"the tensors {sorted(expected)}" if expected else "no precond.safetensors"
        has = f"the tensors {sorted(held)}" if held else "none"
        raise ValueError(
            f"{where}: parameterisation {oc.parameterisation!r} with weighting {oc.weighting!r} needs {want}, "
            f"the checkpoint holds {has}"
        )
    if state:
        _floating(state, f"{where}: precond.safetensors")
        if "mean" in state and tuple(state["mean"].shape) != config.image_shape:
            raise ValueError(
                f"{where}: the data statistics are of shape {tuple(state['mean'].shape)}, but config.json describes "
                f"{config.image_shape} images"
            )


def check_optimizer_state(optimizer: Mapping[str, object], params: list[nn.Parameter], where: str) -> None:
    """AdamW's moments: one entry per parameter, ``exp_avg`` and ``exp_avg_sq`` of its shape, a scalar step."""
    groups = optimizer.get("param_groups")
    states = optimizer.get("state")
    if not isinstance(groups, list) or not isinstance(states, dict):
        raise ValueError(f"{where}: the optimizer state has no param_groups and state")
    indices = [i for g in groups if isinstance(g, dict) for i in g.get("params", [])]
    if len(indices) != len(params):
        raise ValueError(
            f"{where}: the optimizer state is for {len(indices)} parameters, the network has {len(params)}"
        )
    for index, param in zip(indices, params, strict=True):
        entry = states.get(index)
        if entry is None:
            continue  # a parameter not stepped yet has no moments
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: the optimizer state of parameter {index} is not a table")
        for key in ("exp_avg", "exp_avg_sq"):
            moment = entry.get(key)
            if not isinstance(moment, Tensor) or moment.shape != param.shape or not moment.is_floating_point():
                got = _describe(moment) if isinstance(moment, Tensor) else type(moment).__name__
                raise ValueError(
                    f"{where}: the optimizer's {key} of parameter {index} is {got}, the parameter is "
                    f"{_describe(param.detach())}"
                )
        step = entry.get("step")
        if not isinstance(step, Tensor) or step.numel() != 1 or not torch.isfinite(step.float()).all():
            raise ValueError(f"{where}: the optimizer's step count of parameter {index} is not one finite number")
