"""Validation during fit: full-frame PSNR/SSIM of the current generator on a few held-out frames.

`train.validate: {every: N, src: ORGANIZED_DIR, split: test, frames: K}` scores the first K frames of the split
(by scene and frame, the same K every time) with the weights versions are written from (EMA when on), run as
inference runs them (padded to the stride, TLC for archs with global statistics). The result is logged to
TensorBoard and stored in each version's meta.json under its own scope (`test @ DIR (K frames)`): `versions`
and `best` then show quality without a separate `trainctl evaluate`.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from train.config import ValidateConfig
from train.evaluation.evaluate import load_pair, make_batch_predictor, read_split_rows
from train.evaluation.pair_scores import score_pair, summarize


class Validator:
    """The K held-out frames, decoded once and kept (small K: a handful of frames)."""

    def __init__(self, v: ValidateConfig) -> None:
        self.cfg = v
        self.rows = read_split_rows(v.src, v.split)[: v.frames]
        self.pairs = [load_pair(v.src, row) for row in self.rows]
        self._predict: tuple[Any, Any] | None = None  # (model, its traced predictor): traced once per model

    def __call__(self, model: Any, spec: Any, step: int) -> dict[str, Any]:
        import tensorflow as tf

        if self._predict is None or self._predict[0] is not model:
            self._predict = (model, make_batch_predictor(model, tf.distribute.get_strategy(), spec))
        predict = self._predict[1]
        scores = [
            score_pair(row, blur, predict(blur[None])[0], sharp, crop_border=0)
            for row, (blur, sharp) in zip(self.rows, self.pairs, strict=True)
        ]
        result = summarize(scores, version="", split=self.cfg.split, crop_border=0)
        result.pop("version")
        result.pop("per_scene")
        result.pop("per_source", None)
        result.update(
            src=self.cfg.src,
            frames=len(scores),
            step=step,
            evaluated=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        return result


def headline(result: dict[str, Any]) -> dict[str, float]:
    """The scalars TensorBoard gets."""
    return {k: float(np.float32(result[k])) for k in ("psnr", "ssim", "psnr_gain")}
