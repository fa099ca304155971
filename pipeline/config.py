"""The one schema for pipeline.yaml, and the only place YAML is read.

`load_config(path, overrides)` returns a frozen `Config`; every stage takes the narrowest sub-config it needs.
Unknown keys are rejected, and every error names the dotted key (`train.generator.blocks`) and the file.
"""

from __future__ import annotations

import operator
import re
from functools import reduce
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from pipeline.errors import ConfigError
from pipeline.layouts import LAYOUT_CHOICES
from train.archs import ARCHS, DEFAULT_ARCH

DEFAULT_CONFIG_NAME = "pipeline.yaml"


class _Section(BaseModel):
    """Strict, immutable config section: unknown keys and wrong types are errors, values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, populate_by_name=True)


SPLIT_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"  # split and source names become folder and file names


class OrganizeConfig(_Section):
    raw: str = "GOPRO_Large"
    out: str = "data/organized"
    layout: Literal[LAYOUT_CHOICES] = "auto"  # type: ignore[valid-type]  # auto | each registered layout
    blur: Literal["blur", "blur_gamma"] = "blur_gamma"  # gopro layout: the blurred folder
    link: Literal["hardlink", "symlink", "copy"] = "hardlink"
    blur_dir: str | None = None  # pairs layout: the blurred folder (as given, or relative to raw)
    sharp_dir: str | None = None  # pairs layout: the sharp folder
    # list layout: the pair list (`list` in the file; the attribute would shadow the built-in)
    list_file: str | None = Field(None, alias="list")
    split: str | None = Field(None, pattern=SPLIT_NAME)  # pairs (flat or given folders) and list
    source: str | None = Field(
        None, pattern=SPLIT_NAME
    )  # dataset name; default from raw (or the list's name)


class ShardCounts(_Section):
    """Shards per split: train and test by default, any other split by its name (`val: 2`); 1 when not named."""

    model_config = ConfigDict(extra="allow", frozen=True)

    train: int = Field(8, ge=1, le=100_000)
    test: int = Field(2, ge=1, le=100_000)

    @model_validator(mode="after")
    def _other_splits(self) -> ShardCounts:
        for name, value in (self.model_extra or {}).items():
            if not re.match(SPLIT_NAME, name):
                raise ValueError(f"split name {name!r}: use letters, digits, '.', '_' or '-'")
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100_000:
                raise ValueError(f"{name}: shard count must be an integer from 1 to 100000 (got {value!r})")
        return self


class ShardConfig(_Section):
    src: str = "data/organized"
    out: str = "data/shards"
    crop_size: int = Field(256, ge=8, le=8192)
    crops_per_pair: int = Field(4, ge=1, le=10_000)
    shards: ShardCounts = ShardCounts()
    seed: int = Field(0, ge=0)
    encoding: Literal["png", "raw"] = "raw"  # BENCHMARKS.md: 1.4x faster to shard, no decode to read
    runner: str = "DirectRunner"
    beam_options: dict[str, Any] = Field(default_factory=dict)


def _default_arch(value: Any) -> Any:
    """A `train.generator` section without `arch:` is DeblurGAN's (configs written before NAFNet existed)."""
    if isinstance(value, dict) and "arch" not in value:
        return {**value, "arch": DEFAULT_ARCH}
    return value


# One settings class per registered architecture (train/archs/), picked by `arch:`; each validates only its keys.
GeneratorConfig = Annotated[
    reduce(operator.or_, (arch.settings for arch in ARCHS.values())),
    Field(discriminator="arch"),
    BeforeValidator(_default_arch),
]
ARCH_TAGS = frozenset(ARCHS)


class CriticConfig(_Section):
    filters: int = Field(64, ge=1, le=1024)
    updates: int = Field(5, ge=1, le=100)
    gradient_penalty: float = Field(10.0, ge=0.0)
    drift: float = Field(0.0, ge=0.0)  # progressive GAN's drift * D(real)^2 on the critic: anchors its scores


class LossConfig(_Section):
    """Generator loss weights (0 = off). adversarial > 0 trains a critic (GAN recipe); 0 trains none."""

    perceptual: float = Field(100.0, ge=0.0)
    adversarial: float = Field(1.0, ge=0.0)
    pixel: float = Field(0.0, ge=0.0)  # L1
    psnr: float = Field(
        0.0, ge=0.0
    )  # NAFNet's PSNR loss: (10 / ln 10) * log(MSE + 1e-8), MSE on [0, 1] images
    perceptual_weights: str = "imagenet"  # imagenet | none | path/to/weights.h5
    # Ceiling on the adversarial term's share: its weighted gradient at the generator's output kernel is held at
    # most this many times the other terms' gradient there (the weight is lowered for that step). None: no
    # ceiling (DeblurGAN as published). 0.01 against none: BENCHMARKS.md, "Why the adversarial term costs PSNR".
    adversarial_cap: float | None = Field(0.01, gt=0.0)


class OptimizerConfig(_Section):
    name: Literal["adam", "adamw"] = "adam"
    lr: float = Field(1.0e-4, gt=0.0)
    beta_1: float = Field(0.5, ge=0.0, lt=1.0)
    beta_2: float = Field(0.999, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)  # adamw only (decoupled, as PyTorch's AdamW)
    schedule: Literal["linear", "cosine"] = "linear"
    decay_start: int = Field(150_000, ge=0)  # linear: constant until here, then linearly to 0 at train.steps
    min_lr: float = Field(0.0, ge=0.0)  # cosine: annealed from lr to min_lr over train.steps
    hold_steps: int = Field(
        0, ge=0
    )  # cosine: lr held this many steps, then annealed over the rest (Restormer)
    clip_norm: float | None = Field(None, gt=0.0)  # global-norm gradient clipping (None: off)

    @model_validator(mode="after")
    def _decay_needs_adamw(self) -> OptimizerConfig:
        if self.weight_decay > 0 and self.name != "adamw":
            raise ValueError(
                f"weight_decay={self.weight_decay} needs name: adamw (Adam has no decoupled decay)"
            )
        if self.hold_steps > 0 and self.schedule != "cosine":
            raise ValueError(
                f"hold_steps={self.hold_steps} applies to schedule: cosine (linear holds until decay_start)"
            )
        return self


class StageConfig(_Section):
    """One stage of progressive training: `steps` steps on `crop_size` crops, `batch_size` of them per step
    (global, like train.batch_size)."""

    steps: int = Field(ge=1)
    crop_size: int = Field(ge=4)
    batch_size: int = Field(ge=1)


# With train.stages, these train keys are the stages' total and the last stage's values (left out, they follow).
_STAGE_TOTALS = {
    "steps": lambda stages: sum(int(st["steps"]) for st in stages),
    "crop_size": lambda stages: stages[-1]["crop_size"],
    "batch_size": lambda stages: stages[-1]["batch_size"],
}


def _stage_totals(data: Any) -> Any:
    """`train.steps`, `crop_size` and `batch_size` from `train.stages` where they are left out or null (a value
    that is given must agree: checked after validation)."""
    stages = data.get("stages") if isinstance(data, dict) else None
    if not isinstance(stages, list) or not stages or not all(isinstance(st, dict) for st in stages):
        return data
    try:
        filled = {key: total(stages) for key, total in _STAGE_TOTALS.items() if data.get(key) is None}
    except (KeyError, TypeError, ValueError):
        return data  # a malformed stage: its own validation names the key
    return {**data, **filled}


class ValidateConfig(_Section):
    """Full-frame PSNR/SSIM of the current generator on held-out frames during fit (every: 0 = off)."""

    every: int = Field(0, ge=0)
    src: str = "data/organized"
    split: str = "test"
    frames: int = Field(8, ge=1)


class TrainConfig(_Section):
    data: str = "data/shards"
    run_dir: str = "runs/deblurgan"
    batch_size: int = Field(16, ge=1)
    steps: int = Field(300_000, ge=1)
    crop_size: int = Field(256, ge=4)
    strategy: Literal["auto", "one_device", "mirrored", "multi_worker"] = "auto"
    mixed_precision: Literal["auto", "float32", "mixed_float16", "mixed_bfloat16"] = "auto"
    # XLA for each replica's compiled train step. Off by default: 0.18x the plain step on a 2-core CPU (NOTES.md);
    # `make gpu-check` measures it on a GPU before you turn it on there.
    jit_compile: bool = False
    generator: GeneratorConfig = Field(default_factory=lambda: ARCHS[DEFAULT_ARCH].settings())
    critic: CriticConfig = CriticConfig()
    loss: LossConfig = LossConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    ema_decay: float = Field(
        0.0, ge=0.0, lt=1.0
    )  # 0 = off; versions are written from the EMA weights when on
    # `validate` is the key; the attribute is `validation` (BaseModel has a `validate` method).
    validation: ValidateConfig = Field(ValidateConfig(), alias="validate")
    init_from: str | None = None  # a version dir (or run dir) whose generator weights a new run starts from
    checkpoint_every: int = Field(1000, ge=1)
    version_every: int = Field(5000, ge=1)
    keep_versions: int = Field(10, ge=1)
    log_every: int = Field(50, ge=1)
    seed: int = Field(0, ge=0)
    skip_corrupt: bool = False
    # Progressive training: the crop and batch change at stage boundaries (None: one stage, the keys above).
    stages: list[StageConfig] | None = Field(None, min_length=1, max_length=64)

    @model_validator(mode="before")
    @classmethod
    def _fill_stage_totals(cls, data: Any) -> Any:
        return _stage_totals(data)

    @model_validator(mode="after")
    def _crop_fits_generator(self) -> TrainConfig:
        if self.stages:
            for key, total in _STAGE_TOTALS.items():
                want = total([st.model_dump() for st in self.stages])
                if getattr(self, key) != want:
                    what = "the stages' total" if key == "steps" else f"the last stage's {key}"
                    raise ValueError(
                        f"{key}={getattr(self, key)} disagrees with train.stages ({what} is {want}); leave "
                        f"train.{key} out (or null) with stages"
                    )
        arch = ARCHS[self.generator.arch]
        stride, smallest = arch.stride(self.generator), arch.min_size(self.generator)
        crops = [(f"stages.{i}.crop_size", st.crop_size) for i, st in enumerate(self.stages or [])]
        for key, crop in crops or [("crop_size", self.crop_size)]:
            if crop % stride or crop < smallest:
                raise ValueError(
                    f"{key}={crop} must be a multiple of {stride} and at least {smallest} "
                    f"(the {arch.name} generator's stride and minimum size)"
                )
        o = self.optimizer
        if o.schedule == "cosine" and o.hold_steps >= self.steps:
            raise ValueError(
                f"optimizer.hold_steps={o.hold_steps} leaves no step of the {self.steps} for the cosine decay"
            )
        if self.loss.perceptual + self.loss.adversarial + self.loss.pixel + self.loss.psnr <= 0:
            raise ValueError("train.loss: every weight is 0; nothing to train")
        return self


def _src_list(value: Any) -> Any:
    """`evaluate.src`: one organized dir or a list of them; a single one is read as a list of one."""
    return [value] if isinstance(value, str) else value


class EvaluateConfig(_Section):
    # Organized dirs to score, each its own row and meta.json scope (`--src` repeats on the command line).
    src: Annotated[list[str], BeforeValidator(_src_list), Field(min_length=1)] = ["data/organized"]
    split: str = "test"
    crop_border: int = Field(0, ge=0)
    batch_size: int = Field(4, ge=1)
    # Align the output to the ground truth before scoring: ecc (RealBlur's protocol) or none; auto: ecc for a
    # RealBlur source, none for others.
    align: Literal["auto", "none", "ecc"] = "auto"
    # How frames are padded to the model's stride: reflect, or zero as the NAFNet reference code does (to reproduce
    # a paper's numbers on sizes that are not multiples of the stride: HIDE, RealBlur).
    pad: Literal["reflect", "zero"] = "reflect"


class Config(_Section):
    organize: OrganizeConfig = OrganizeConfig()
    shard: ShardConfig = ShardConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()


def _format_error(err: ValidationError, source: str) -> str:
    """One line per problem, each naming the dotted key and the offending value."""
    lines = []
    for e in err.errors():
        # A discriminated union puts the chosen arch in the path (train.generator.nafnet.width): drop it.
        loc = [
            p for i, p in enumerate(e["loc"]) if not (i and e["loc"][i - 1] == "generator" and p in ARCH_TAGS)
        ]
        key = ".".join(str(p) for p in loc) or "<root>"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        value = e.get("input")
        shown = (
            ""
            if e["type"] in ("extra_forbidden", "missing") or isinstance(value, dict)
            else f" (got {value!r})"
        )
        lines.append(f"{source}: {key}: {msg}{shown}")
    return "; ".join(lines)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split `dotted.key=value` into its key path and YAML-scalar value."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: expected dotted.key=value, e.g. train.steps=200")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"--set {key}: value {raw!r} is not a YAML scalar ({exc.__class__.__name__})"
        ) from None
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of `data` with each `dotted.key=value` applied (the schema validates the result)."""
    out = _deep_copy(data)
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for i, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"--set {'.'.join(path)}: {'.'.join(path[: i + 1])} is not a section")
            node = child
        node[path[-1]] = value
    return out


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a pipeline.yaml mapping; an empty file is an empty mapping."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections, got {type(data).__name__}")
    if any(not isinstance(k, str) for k in data):
        raise ConfigError(f"{path}: section names must be strings")
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load and validate pipeline.yaml (or the defaults) with `--set` overrides applied.

    `path=None` reads `pipeline.yaml` from the working directory when it exists, else the built-in defaults.
    """
    if path is None:
        default = Path(DEFAULT_CONFIG_NAME)
        source_path = default if default.is_file() else None
    else:
        source_path = Path(path)
    data = read_yaml(source_path) if source_path is not None else {}
    source = str(source_path) if source_path is not None else "<defaults>"
    if overrides:
        data = apply_overrides(data, list(overrides))
        source += " with --set"
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_error(err, source)) from None
    except (TypeError, ValueError, RecursionError) as exc:  # pathological YAML (e.g. unhashable keys)
        raise ConfigError(f"{source}: {exc}") from None


def config_to_dict(cfg: BaseModel) -> dict[str, Any]:
    """Plain-data view of a config (for meta.json, dataset.json and config hashes)."""
    return cfg.model_dump(mode="json", by_alias=True)


def with_flags(section: _Section, **flags: Any) -> Any:
    """Return `section` with the command-line flags that were given (not None) applied and re-validated."""
    given = {k: v for k, v in flags.items() if v is not None}
    if not given:
        return section
    try:
        return type(section).model_validate({**section.model_dump(), **given})
    except ValidationError as err:
        raise ConfigError(_format_error(err, "command line")) from None
