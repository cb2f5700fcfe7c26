"""One pydantic tree for a whole run, read from TOML / JSON / YAML and overridden by CLI flags.

The resolved config (image size and channels filled in from the data) is stored as JSON
beside every checkpoint, so a checkpoint alone is enough to rebuild the process and the
network.

Components chosen by name (objective, weighting, t-sampler, parameterisation, network) are
entries of their registries, and their settings are validated against the entry's own
``Params`` (:mod:`.components`): a plugin's entry, registered by a module named in
``plugins``, is configured like a built-in one. Older configs, with the soft loss's anchor
and the t-samplers' settings as flat ``objective`` keys, still load.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

try:
    import tomllib  # novermin: guarded, tomli below
except ModuleNotFoundError:  # Python 3.10: the same parser, as the tomli package (a dependency there)
    import tomli as tomllib
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..corrupt import CorruptionConfig
from ..models import DEFAULT_NETWORK, NETWORKS, UNetConfig
from ..registry import params_model
from ..resources import read_regular_file
from ..score import DEFAULT_PARAMETERISATION, OBJECTIVES, PARAMETERISATIONS, T_SAMPLERS, WEIGHTINGS
from ..seeding import MAX_SEED
from ..validation import refuse_bool_numbers
from .components import choices, legacy_settings, settings_of
from .plugins import import_plugins, plugin_target

__all__ = [
    "DataConfig",
    "CondConfig",
    "ObjectiveConfig",
    "OptimConfig",
    "TrainConfig",
    "RunConfig",
    "load_config_file",
    "apply_overrides",
    "build_config",
]


class _Section(BaseModel):
    # NaN/inf are never meaningful settings; a bool given for a number (steps = true) is a mistake, not 1
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    _no_bools = model_validator(mode="before")(refuse_bool_numbers)


class DataConfig(_Section):
    dataset: str = Field("fashion-mnist", description="registered data set: fashion-mnist, cifar10, folder, synthetic")
    data_dir: str | None = Field(
        None, description="folder holding the data set files (default location if unset); stored absolute"
    )
    image_size: int | None = Field(
        None, ge=4, le=1024, description="side of the square images; derived from the data unless 'folder'"
    )
    channels: int | None = Field(
        None, ge=1, le=4, description="image channels; from the data ('folder': 1 if every image is grey, else 3)"
    )
    prior_images: int = Field(4096, ge=2, description="training images used to fit the Gaussian prior at t=1")
    prior_rank: int = Field(32, ge=1, description="principal components of the prior's subspace")
    prior_mixtures: int = Field(
        10, ge=1, description="Gaussians in the prior's mixture at t=1 (1: one Gaussian, what older runs hold)"
    )
    hflip: bool = Field(
        False,
        description="flip each training image left-right with probability 1/2, on the device, as a function of "
        "(seed, step, position): for data with no handedness (faces, CIFAR-10)",
    )

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, data_dir: str | None) -> str | None:
        """A relative folder is made absolute (against the working folder) so the run works from anywhere."""
        return os.path.abspath(os.path.expanduser(data_dir)) if data_dir else data_dir


class CondConfig(_Section):
    """Conditioning of the network: none, or the data's class labels (for classifier-free guidance)."""

    kind: Literal["none", "class"] = Field(
        "none", description="none, or class: a class embedding in the network, trained on the data's labels"
    )
    dropout: float = Field(
        0.1, ge=0, le=1, description="probability that a training label is dropped to 'no class' (guidance needs > 0)"
    )
    classes: list[str] | None = Field(
        None, description="the class names, in label order (written by the trainer from the data set)"
    )

    @model_validator(mode="after")
    def _classes(self) -> CondConfig:
        if self.classes is not None:
            if self.kind != "class":
                raise ValueError("cond.classes is for a class-conditional run (cond.kind = 'class')")
            if not self.classes or len(set(self.classes)) != len(self.classes):
                raise ValueError(f"cond.classes must be distinct names, at least one, got {self.classes}")
        return self


# keys of older configs: the soft loss's anchor (off: other objectives stored these values) and the laws' settings
_LEGACY_OBJECTIVE = {"anchor": 0.0, "anchor_at": "zero"}
_LEGACY_TIMES = {"p_mean": None, "p_std": None, "logit_mean": None, "logit_std": None}


class ObjectiveConfig(_Section):
    name: str = Field("soft", description=f"registered objective: {choices(OBJECTIVES)}")
    params: dict[str, Any] = Field(
        default_factory=dict, description="the objective's own settings (its Params; soft: anchor, anchor_at)"
    )
    weighting: str = Field("uniform", description=f"w(t): {choices(WEIGHTINGS)} (docs/training.md)")
    parameterisation: str = Field(
        DEFAULT_PARAMETERISATION, description=f"how the network's output becomes h: {choices(PARAMETERISATIONS)}"
    )
    t_sampler: str = Field("uniform", description=f"law of the training times: {choices(T_SAMPLERS)}")
    t_sampler_params: dict[str, Any] = Field(
        default_factory=dict,
        description="the t-sampler's own settings (lognormal: p_mean, p_std; logitnormal: logit_mean, logit_std)",
    )

    @model_validator(mode="before")
    @classmethod
    def _settings(cls, data: Any) -> Any:
        """Older configs' flat keys (``anchor``, ``p_mean``, ...) move into the settings, which are then checked."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        name, law = data.get("name", "soft"), data.get("t_sampler", "uniform")
        params = legacy_settings(data, OBJECTIVES, name, "params", _LEGACY_OBJECTIVE)
        times = legacy_settings(data, T_SAMPLERS, law, "t_sampler_params", _LEGACY_TIMES)
        data["params"] = settings_of(OBJECTIVES, name, params, "objective.params")
        data["t_sampler_params"] = settings_of(T_SAMPLERS, law, times, "objective.t_sampler_params")
        return data

    @property
    def anchor(self) -> float:
        """The soft loss's anchor weight (0 for objectives without one); kept from the older flat field."""
        return float(self.params.get("anchor", 0.0))

    @anchor.setter
    def anchor(self, value: float) -> None:
        self.params = settings_of(OBJECTIVES, self.name, {**self.params, "anchor": value}, "objective.params")

    @property
    def anchor_at(self) -> str:
        """The soft loss's anchor operator (``zero`` for objectives without one); kept from the older flat field."""
        return str(self.params.get("anchor_at", "zero"))


class OptimConfig(_Section):
    lr: float = Field(2e-3, gt=0, le=1e6, description="AdamW peak learning rate")
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.99)
    warmup: int = Field(100, ge=0, description="steps of linear learning-rate warm-up")
    lr_decay: Literal["constant", "cosine", "linear"] = Field(
        "constant", description="after warm-up: keep the peak, or decay to lr_final * lr by the last step"
    )
    lr_final: float = Field(0.0, ge=0, le=1, description="final learning rate as a fraction of the peak (decays only)")
    grad_clip: float | None = Field(1.0, gt=0, description="clip the global gradient norm (None: off)")
    ema_halflife: float = Field(
        500_000, gt=0, description="EMA half-life of the weights in training images (EDM's; world-size free)"
    )
    ema_rampup: float | None = Field(
        0.05, gt=0, description="cap the half-life at this fraction of the images seen so far (EDM's ramp-up)"
    )
    ema_decay: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="fixed per-step EMA decay warmed up as min(decay, (1+n)/(10+n)); replaces the half-life",
    )

    @model_validator(mode="after")
    def _betas(self) -> OptimConfig:
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must lie in [0, 1), got {self.betas}")
        return self


CompileMode = Literal["off", "default", "reduce-overhead", "max-autotune"]


class TrainConfig(_Section):
    steps: int = Field(1200, ge=1, le=10**9, description="optimizer steps in total")
    batch_size: int = Field(64, ge=1)
    seed: int = Field(0, ge=0, le=MAX_SEED, description="data order, t, noise and init are functions of (seed, step)")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = Field(False, description="bf16 autocast of the network (the loss stays float32)")
    compile: CompileMode = Field(
        "off",
        description="torch.compile the network in this mode (torch's names; reduce-overhead adds CUDA graphs, "
        "which pay off for small networks on a GPU and do nothing on the CPU; true = default)",
    )
    channels_last: bool = Field(
        True, description="channels-last memory format (faster on CPU: bench/speed/train_step.py)"
    )
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: torch's choice)")
    log_every: int = Field(25, ge=1, description="steps between metrics.jsonl lines")
    ckpt_every: int = Field(500, ge=1, description="steps between checkpoints (one is always written at the end)")
    ckpt_minutes: float | None = Field(
        10.0, gt=0, description="also checkpoint when this many minutes passed since the last one (None: off)"
    )
    max_bad_steps: int = Field(
        10, ge=1, description="consecutive steps with a non-finite loss or gradient (each skipped) before the run stops"
    )
    keep: int = Field(2, ge=1, description="checkpoints kept on disk (older ones pruned)")
    check_operator: bool = Field(
        True, description="check the operator's laws (linearity, adjoint, dtype, finiteness) in float32 before training"
    )
    select_levels: bool = Field(
        True,
        description="a fresh run of a blur-like DCT-diagonal operator given no levels selects 32 levels "
        "(softdiff schedule's method and defaults) before its first step; false keeps the operator's own schedule",
    )
    preview_every: int | None = Field(
        200,
        ge=1,
        description="steps between preview grids (64 fixed-seed EMA samples, RUN/previews/step-N.png; one more at "
        "the end; None: off)",
    )
    preview_steps: int = Field(
        10, ge=1, le=1000, description="sampler steps of a preview grid (the default sampler for the run's operator)"
    )
    tensorboard: bool = Field(
        False, description="also log metrics and previews to TensorBoard event files in RUN/tb (softdiff[tensorboard])"
    )

    @field_validator("compile", mode="before")
    @classmethod
    def _compile_bool(cls, value: Any) -> Any:
        """``true`` / ``false`` (configs written before the modes, and ``--set train.compile=true``)."""
        if isinstance(value, bool):
            return "default" if value else "off"
        return value


class RunConfig(_Section):
    """Everything a run needs: corruption, network, data, objective, optimiser, loop."""

    # Defaults sized for the README main job: ~5 minutes on 2 CPU cores, rough garments.
    # Blur with noise 0.01 -> 0.1 is the paper's setting; a 16-channel U-Net (148K parameters)
    # runs ~3x faster than the 32-channel one and shows garment shapes after a few hundred steps.
    corruption: CorruptionConfig = CorruptionConfig(spec="blur")
    network: str = Field(DEFAULT_NETWORK, description=f"registered network `model` configures: {choices(NETWORKS)}")
    model: Any = Field(UNetConfig(), description="the network's settings (its Params; the U-Net's: UNetConfig)")
    data: DataConfig = DataConfig()
    cond: CondConfig = CondConfig()
    objective: ObjectiveConfig = ObjectiveConfig()
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()
    plugins: list[str] = Field(
        default_factory=list,
        description="modules (dotted, or file.py) that register components; imported only when the run is built",
    )
    operator: str | None = Field(
        None, description="repr of the operator the run trained with, for people (written by the trainer)"
    )
    operator_record: dict[str, Any] | None = Field(
        None,
        description="the operator's constructor arguments, tensors by digest (written by the trainer; loading the "
        "run rebuilds the operator and refuses one whose record differs; runs without it compare the repr)",
    )

    @model_validator(mode="before")
    @classmethod
    def _partial_sections_keep_run_defaults(cls, data: Any) -> Any:
        """``--set model.channel_mults=[1,2,2,2]`` changes that key only: the run's 16 channels stay.

        A section given as a dict is validated on its own, so without this its unset keys would
        take the *class* defaults (a 32-channel U-Net) instead of the run's defaults above.
        """
        if not isinstance(data, dict):
            return data
        merged = dict(data)
        for name, field in cls.model_fields.items():
            default, given = field.default, data.get(name)
            own = isinstance(default, BaseModel) and default != type(default).model_validate({})
            if own and isinstance(given, dict):  # a run default that differs from its class's
                merged[name] = {**default.model_dump(exclude_unset=True), **given}
        network = merged.get("network", DEFAULT_NETWORK)
        model = merged.get("model", {})
        data = merged.get("data")
        channels = data.get("channels") if isinstance(data, dict) else getattr(data, "channels", None)
        if network in NETWORKS:  # a plugin's network is checked once its module is imported (load_plugins)
            takes_channels = "in_channels" in params_model(NETWORKS.get(network)).model_fields
            if channels is not None and takes_channels and isinstance(model, dict) and "in_channels" not in model:
                model = {**model, "in_channels": channels}  # `--channels 3` sizes the network
            merged["model"] = NETWORKS.params(network, settings_of(NETWORKS, network, model, "model"))
        return merged

    @field_validator("plugins")
    @classmethod
    def _plugin_targets(cls, plugins: list[str]) -> list[str]:
        return [plugin_target(target) for target in plugins]

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        for where, registry, name in self._components():
            if name not in registry and not self.plugins:
                raise ValueError(
                    f"{where}: unknown {registry.kind} {name!r}; choose one of {choices(registry)}, or name the "
                    "module that registers it in plugins (--plugin)"
                )
        law = self.objective.t_sampler
        if law in T_SAMPLERS and T_SAMPLERS[law].needs_levels and self.corruption.levels is None:
            raise ValueError(f"objective.t_sampler={law!r} needs corruption.levels (pass --levels levels.json)")
        in_channels = getattr(self.model, "in_channels", None)
        if self.data.channels is not None and in_channels is not None and in_channels != self.data.channels:
            raise ValueError(f"model.in_channels ({in_channels}) must equal data.channels ({self.data.channels})")
        num_classes = getattr(self.model, "num_classes", None)
        wanted = len(self.cond.classes) if self.cond.classes is not None else None
        if num_classes and self.cond.kind != "class":
            raise ValueError("model.num_classes is set by class conditioning: train with --cond class instead")
        if wanted is not None and num_classes is not None and num_classes not in (0, wanted):
            raise ValueError(f"model.num_classes ({num_classes}) must equal the number of cond.classes ({wanted})")
        return self

    @property
    def classes(self) -> list[str] | None:
        """The class names of a class-conditional run (None: unconditional)."""
        return self.cond.classes if self.cond.kind == "class" else None

    def _components(self) -> list[tuple[str, Any, str]]:
        oc = self.objective
        return [
            ("objective.name", OBJECTIVES, oc.name),
            ("objective.weighting", WEIGHTINGS, oc.weighting),
            ("objective.parameterisation", PARAMETERISATIONS, oc.parameterisation),
            ("objective.t_sampler", T_SAMPLERS, oc.t_sampler),
            ("network", NETWORKS, self.network),
        ]

    def load_plugins(self) -> RunConfig:
        """Import the modules in ``plugins`` and return this config checked against what they registered.

        A config naming a plugin's component is read without running any code; this is where
        the code runs (the trainer, ``load_run`` and the CLI call it before building anything).
        """
        if not self.plugins:
            return self
        import_plugins(self.plugins)
        checked = RunConfig.model_validate(self.model_dump(mode="json"))
        for where, registry, name in checked._components():
            if name not in registry:
                raise ValueError(
                    f"{where}: unknown {registry.kind} {name!r}; the plugins {', '.join(self.plugins)} did not "
                    f"register it (known: {choices(registry)})"
                )
        return checked

    def resolved(self, channels: int, image_size: int) -> RunConfig:
        """Copy with the data's image shape filled in and the network sized to it (and to the classes, if any)."""
        model = _with_shape(self.model, channels, image_size)
        if self.cond.classes is not None:
            if "num_classes" not in model:
                raise ValueError(
                    f"network {self.network!r} takes no class labels (no num_classes setting): --cond class"
                )
            model["num_classes"] = len(self.cond.classes)
        data = self.data.model_copy(update={"channels": channels, "image_size": image_size})
        return RunConfig.model_validate({**self.model_dump(), "model": model, "data": data.model_dump()})

    def as_stored_by(self, stored: RunConfig) -> RunConfig:
        """This (requested) config filled in as ``stored`` resolved it, so the two compare field by field.

        The data's image shape, noise defaults left unset here (a run records the ones it got),
        and levels left unset where the run selected its own (``train.select_levels``).
        """
        requested = self
        if requested.cond.kind == "class" and requested.cond.classes is None and stored.cond.kind == "class":
            requested = requested.model_copy(
                update={"cond": stored.cond.model_copy(update={"dropout": requested.cond.dropout})}
            )
        if requested.corruption.levels is None and requested.train.select_levels and stored.train.select_levels:
            corruption = requested.corruption.model_copy(update={"levels": stored.corruption.levels})
            requested = requested.model_copy(update={"corruption": corruption})
        if stored.data.channels is not None and stored.data.image_size is not None:
            requested = requested.resolved(stored.data.channels, stored.data.image_size)
        noise = requested.corruption.noise
        if noise.s_min is None or noise.s_max is None:
            given = {k: v for k, v in noise.model_dump().items() if v is not None}
            filled = stored.corruption.noise.model_copy(update=given)
            corruption = requested.corruption.model_copy(update={"noise": filled})
            requested = requested.model_copy(update={"corruption": corruption})
        return requested

    @property
    def image_shape(self) -> tuple[int, int, int]:
        if self.data.channels is None or self.data.image_size is None:
            raise ValueError("the image shape is known only once the data set is loaded (RunConfig.resolved)")
        return self.data.channels, self.data.image_size, self.data.image_size


def _with_shape(model: Any, channels: int, image_size: int) -> dict[str, Any]:
    """A network's settings with the data's shape filled in, where its ``Params`` declare those fields."""
    settings = model.model_dump() if isinstance(model, BaseModel) else dict(model)
    fields = type(model).model_fields if isinstance(model, BaseModel) else settings
    shape = {"in_channels": channels, "image_size": image_size}
    return {**settings, **{k: v for k, v in shape.items() if k in fields}}


MAX_DEPTH = 32  # a run config is a few tables deep; deeper nesting is a mistake (or a parser's recursion limit)


def _depth(value: object, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of plain data, without recursion (a deeply nested file must not overflow the stack)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > limit:
            break
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _parse_yaml(text: str, path: Path) -> object:
    """YAML without anchors and aliases: a small file of aliases (a "billion laughs") expands to gigabytes."""
    try:
        import yaml
    except ImportError:
        raise ValueError(f"{path} is YAML but PyYAML is not installed; `pip install pyyaml` or use TOML/JSON") from None
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise ValueError(f"config file {path} uses YAML aliases (*name); write the values out instead")
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"config file {path} is not valid YAML: {str(err).splitlines()[0]}") from None


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML, JSON or YAML file into a plain dict (validated later, with the overrides).

    The file must be a regular file of at most a few MiB (:func:`~softdiff.resources.read_regular_file`),
    nested at most ``MAX_DEPTH`` deep, and YAML may not use aliases.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.exists():
        raise ValueError(f"config file {path} does not exist")
    if suffix not in (".toml", ".json", ".yaml", ".yml"):
        raise ValueError(f"config file {path} must end in .toml, .json, .yaml or .yml")
    try:
        text = read_regular_file(path, "config file").decode()
    except UnicodeDecodeError:
        raise ValueError(f"config file {path} is not a text file") from None
    try:
        if suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            data = _parse_yaml(text, path)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"config file {path} is not valid {suffix[1:].upper()}: {err}") from None
    except RecursionError:
        raise ValueError(f"config file {path} is nested too deeply (more than {MAX_DEPTH} levels)") from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a table/mapping at the top level")
    if _depth(data) > MAX_DEPTH:
        raise ValueError(f"config file {path} is nested too deeply (more than {MAX_DEPTH} levels)")
    return data


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any], keep_none: bool = False) -> dict[str, Any]:
    """Set dotted keys (``"train.steps": 100``) in a nested dict.

    ``None`` values are skipped (a CLI flag left unset) unless ``keep_none``: then they are
    set, as ``--set optim.grad_clip=null`` must be to turn clipping off.
    """
    out = json.loads(json.dumps(data))  # deep copy of plain data
    for dotted, value in overrides.items():
        if value is None and not keep_none:
            continue
        node = out
        *parents, leaf = dotted.split(".")
        for key in parents:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ValueError(f"cannot set {dotted}: {key} is not a section")
            node = child
        node[leaf] = value
    return out


def build_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """File (optional) + dotted overrides -> a validated :class:`RunConfig`."""
    data = load_config_file(path) if path is not None else {}
    return RunConfig.model_validate(apply_overrides(data, overrides or {}))
