"""The `train` and `evaluate` sections of pipeline.yaml: training (generator per registered arch, critic, losses,
optimizer, stages, validation) and scoring.

`Config` is the whole file as train/ reads it: pipeline/'s sections (organize, shard) plus these two. It is
registered under pipeline.config.CONFIG_GROUP (pyproject.toml), so `gopro-prep` validates these sections too without
importing train/. Importing this module imports no Keras (the arch settings classes are plain pydantic).
"""

from __future__ import annotations

import operator
from functools import reduce
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from pipeline import config as pipeline_config
from pipeline.config import Section
from train.archs import ARCHS, DEFAULT_ARCH


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


class CriticConfig(Section):
    filters: int = Field(64, ge=1, le=1024)
    updates: int = Field(5, ge=1, le=100)
    gradient_penalty: float = Field(10.0, ge=0.0)
    drift: float = Field(0.0, ge=0.0)  # progressive GAN's drift * D(real)^2 on the critic: anchors its scores


class LossConfig(Section):
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


class OptimizerConfig(Section):
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


class StageConfig(Section):
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


class ValidateConfig(Section):
    """Full-frame PSNR/SSIM of the current generator on held-out frames during fit (every: 0 = off)."""

    every: int = Field(0, ge=0)
    src: str = "data/organized"
    split: str = "test"
    frames: int = Field(8, ge=1)


class TrainConfig(Section):
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


class EvaluateConfig(Section):
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


class Config(pipeline_config.Config):
    """pipeline.yaml with the training stage's sections."""

    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """pipeline.config.load_config for trainctl: the whole file, with these sections whether or not the package's
    entry points are installed."""
    return pipeline_config.load_config(path, overrides, pipeline_config.config_model(Config))
