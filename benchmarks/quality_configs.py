"""The configurations bench_quality.py compares, as `trainctl fit` configs (one or two phases each).

Every configuration trains the same number of steps at the same batch and crop. DeblurGAN small: 16 filters,
3 blocks, L1 weight 1, no perceptual loss, Adam 3e-4 (DeblurGAN's betas 0.5/0.999, constant for half the steps,
then linearly to 0), with or without the WGAN-GP critic and dropout, with no cap on the adversarial share unless
named: `-cap`: the adversarial gradient held at most 1% of L1's at the output kernel (`loss.adversarial_cap: 0.01`,
the default); `-drift`: the critic's drift penalty. NAFNet small: width 16, one block per level, PSNR loss, AdamW
1e-3 (weight decay 1e-3, betas 0.9/0.9), cosine to 1e-7; `nafnet-l1`: the same with DeblurGAN small's L1 loss
instead (architecture against architecture at one loss); `-lr3e-3`: a peak learning rate of 3e-3 instead of 1e-3.
Restormer small: dim 16, one block per level, one refinement block, heads [1, 2, 4, 8], with the reference recipe
(L1, AdamW 3e-4, weight decay 1e-4, betas 0.9/0.999, the rate held for 92/300 of the steps then cosine to 1e-6,
gradient clipping at global norm 0.01); `restormer-2stage`: the same images seen in two stages, the first half of
the steps at 2/3 of the crop with 1.5x the batch, the second at the crop with half the batch (the reference's
shape: small crops in large batches first).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

# Every critic setting spelled out, so a changed default never changes what a configuration name means.
CRITIC = {"filters": 16, "updates": 1, "gradient_penalty": 10.0, "drift": 0.0}
PRETRAIN_FRACTION = 0.5  # deblurgan-l1-then-gan: L1 for this share of the steps, then GAN fine-tuning


def _base(shards: Path, run_dir: Path, budget: dict, seed: int) -> dict[str, Any]:
    steps = budget["steps"]
    return {
        "data": str(shards),
        "run_dir": str(run_dir),
        "steps": steps,
        "batch_size": budget["batch"],
        "crop_size": budget["crop"],
        "checkpoint_every": steps,
        "version_every": steps,
        "keep_versions": 1,
        "log_every": max(1, steps // 30),
        "seed": seed,
    }


def deblurgan(
    adversarial: float, dropout: float = 0.5, critic: dict | None = None, cap: float | None = None
) -> Callable[[Path, Path, dict, int], list[dict]]:
    def phases(shards: Path, run_dir: Path, budget: dict, seed: int) -> list[dict]:
        t = _base(shards, run_dir, budget, seed)
        t.update(
            generator={"arch": "deblurgan", "filters": 16, "blocks": 3, "dropout": dropout},
            critic={**CRITIC, **(critic or {})},
            loss={
                "perceptual": 0.0,
                "adversarial": adversarial,
                "adversarial_cap": cap,
                "pixel": 1.0,
                "perceptual_weights": "none",
            },
            optimizer={
                "name": "adam",
                "lr": 3e-4,
                "beta_1": 0.5,
                "beta_2": 0.999,
                "decay_start": t["steps"] // 2,
            },
        )
        return [{"train": t}]

    return phases


def l1_then_gan(adversarial: float) -> Callable[[Path, Path, dict, int], list[dict]]:
    """The BasicSR/ESRGAN route: L1 pre-training, then GAN fine-tuning from it via `train.init_from`, the two
    phases sharing the steps (each with its own schedule)."""

    def phases(shards: Path, run_dir: Path, budget: dict, seed: int) -> list[dict]:
        first = int(budget["steps"] * PRETRAIN_FRACTION)
        pre = deblurgan(0.0)(
            shards, run_dir.with_name(run_dir.name + "-pretrain"), {**budget, "steps": first}, seed
        )
        rest = {**budget, "steps": budget["steps"] - first}
        tune = deblurgan(adversarial)(shards, run_dir, rest, seed)
        tune[0]["train"]["init_from"] = pre[0]["train"]["run_dir"]
        return pre + tune

    return phases


# The small NAFNet every benchmark trains (quality, fit vs model.fit, input headroom): width 16, one block per
# level, PSNR loss, AdamW 1e-3 (weight decay 1e-3, betas 0.9/0.9), cosine to 1e-7 (configs/nafnet-gopro.yaml's
# recipe at a CPU size).
NAFNET_SMALL: dict[str, Any] = {
    "generator": {
        "arch": "nafnet",
        "width": 16,
        "enc_blocks": [1, 1, 1, 1],
        "middle_blocks": 1,
        "dec_blocks": [1, 1, 1, 1],
    },
    "loss": {"perceptual": 0.0, "adversarial": 0.0, "psnr": 1.0, "perceptual_weights": "none"},
    "optimizer": {
        "name": "adamw",
        "lr": 1e-3,
        "weight_decay": 1e-3,
        "beta_1": 0.9,
        "beta_2": 0.9,
        "schedule": "cosine",
        "min_lr": 1e-7,
    },
}


def nafnet(
    loss: dict | None = None, lr: float | None = None
) -> Callable[[Path, Path, dict, int], list[dict]]:
    """NAFNET_SMALL, with `loss` (the train.loss section) in place of its PSNR loss and `lr` in place of its peak
    learning rate if given."""

    def phases(shards: Path, run_dir: Path, budget: dict, seed: int) -> list[dict]:
        t = _base(shards, run_dir, budget, seed)
        t.update(copy.deepcopy(NAFNET_SMALL))
        if lr is not None:
            t["optimizer"]["lr"] = lr
        if loss is not None:
            t["loss"] = {"perceptual": 0.0, "adversarial": 0.0, "pixel": 0.0, "psnr": 0.0, **loss}
        return [{"train": t}]

    return phases


# The small Restormer (dim 16, one block per level, one refinement block) with configs/restormer-gopro.yaml's loss
# and optimizer, read from that file so the two cannot drift; `hold_steps` is set per budget (the same fraction of
# the steps as the recipe's 92k of 300k).
_RECIPE = yaml.safe_load(
    (Path(__file__).resolve().parents[1] / "configs" / "restormer-gopro.yaml").read_text()
)["train"]
RESTORMER_SMALL: dict[str, Any] = {
    "generator": {**_RECIPE["generator"], "dim": 16, "num_blocks": [1, 1, 1, 1], "num_refinement_blocks": 1},
    "loss": _RECIPE["loss"],
    "optimizer": {k: v for k, v in _RECIPE["optimizer"].items() if k != "hold_steps"},
}
HOLD_FRACTION = _RECIPE["optimizer"]["hold_steps"] / sum(st["steps"] for st in _RECIPE["stages"])


def restormer(stages: int = 1) -> Callable[[Path, Path, dict, int], list[dict]]:
    """RESTORMER_SMALL in one stage at the budget's crop and batch, or in two stages seeing as many images (the
    first half of the steps at 2/3 of the crop, rounded to the stride 8, in batches of 1.5x, the rest at the crop
    in batches of 0.5x)."""

    def phases(shards: Path, run_dir: Path, budget: dict, seed: int) -> list[dict]:
        t = _base(shards, run_dir, budget, seed)
        t.update(copy.deepcopy(RESTORMER_SMALL))
        t["optimizer"]["hold_steps"] = int(t["steps"] * HOLD_FRACTION)
        if stages == 2:
            steps, crop, batch = t.pop("steps"), t.pop("crop_size"), t.pop("batch_size")
            first = steps // 2
            t["stages"] = [
                {"steps": first, "crop_size": crop * 2 // 3 // 8 * 8, "batch_size": batch * 3 // 2},
                {"steps": steps - first, "crop_size": crop, "batch_size": batch // 2},
            ]
        return [{"train": t}]

    return phases


L1 = {"pixel": 1.0, "perceptual_weights": "none"}  # DeblurGAN small's loss, for NAFNet against it at one loss

CONFIGS: dict[str, Callable[[Path, Path, dict, int], list[dict]]] = {
    "deblurgan-l1": deblurgan(0.0),
    "deblurgan-l1-nodrop": deblurgan(0.0, dropout=0.0),
    "deblurgan-gan": deblurgan(0.001),
    "deblurgan-gan-nodrop": deblurgan(0.001, dropout=0.0),
    "deblurgan-gan-drift": deblurgan(0.001, critic={"drift": 0.001}),
    "deblurgan-gan-cap": deblurgan(0.001, cap=0.01),
    "deblurgan-l1-then-gan": l1_then_gan(0.001),
    "nafnet": nafnet(),
    "nafnet-l1": nafnet(L1),
    "nafnet-lr3e-3": nafnet(lr=3e-3),
    "nafnet-l1-lr3e-3": nafnet(L1, lr=3e-3),
    "restormer": restormer(),
    "restormer-2stage": restormer(stages=2),
}


def phases(name: str, shards: Path, run_dir: Path, budget: dict, seed: int) -> list[dict]:
    """The fit configs (dicts for `Config.model_validate`) of configuration `name`, run in order."""
    return CONFIGS[name](shards, run_dir, budget, seed)
