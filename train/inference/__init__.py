"""Inference: running a trained generator version wherever it is needed.

tiling.py      where tiles go and how they blend (pure numpy)
serving.py     the one graph function: pad -> model -> crop (-> uint8), optionally the x8 self-ensemble
frame_stats.py full-frame statistics, so tiled frames agree with whole ones
images.py      gray / RGB / RGBA, 8 / 16 bit / float, kept as they came
deblurrer.py   `Deblurrer`: loads a version (arch, stride, range and TLC from its meta.json) and runs it
files.py       `trainctl deblur`: files, folders and videos in, the same names out
video.py       videos through OpenCV, frames batched
export.py      `trainctl export`: SavedModel, TFLite, Keras
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("Deblurrer", "Loaded", "load"):
        from train.inference import deblurrer

        return getattr(deblurrer, name)
    raise AttributeError(name)
