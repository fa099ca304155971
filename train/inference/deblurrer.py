"""`Deblurrer`: a trained generator version, ready to deblur images of any size, depth and channel layout.

    from train import Deblurrer
    d = Deblurrer("runs/deblurgan")          # a run dir (its latest version), RUN/generator/vNNNN, .../latest
    sharp = d(blurred)                        # numpy HxW / HxWx3 / HxWx4, uint8 / uint16 / float in [0, 1]

It reads the version's architecture, stride and value range from its meta.json, turns on TLC for architectures
with global statistics (NAFNet; `tlc=False` turns it off), pads to the stride (`pad="reflect"`, or `"zero"` as
the NAFNet reference code does) and crops back, tiles frames larger than `tile` (overlapping by the model's
receptive field, with full-frame statistics, so tiles agree with the whole frame; a tile too small for that is
refused), and can average the x8 self-ensemble (`ensemble=True`). The CLI (`trainctl deblur`), video, evaluation
and export all go through here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from train.inference import images
from train.inference.tiling import Blender, check_tile, default_tile, plan_tiles, tile_input


@dataclass(frozen=True)
class Loaded:
    """A version's generator as inference runs it."""

    model: Any
    spec: Any  # train.archs.ModelSpec
    tlc: bool  # test-time local statistics on
    meta: dict[str, Any]
    path: str


def load(version_dir: str, tlc: bool = True) -> Loaded:
    """Load a version dir's generator (with TLC where its arch has global statistics and `tlc` asks for it)."""
    from train.archs import spec_from_meta, with_tlc
    from train.run.rundir import join
    from train.run.versions import META_FILE, load_generator, read_meta

    meta = read_meta(version_dir)
    spec = spec_from_meta(meta, join(str(version_dir), META_FILE))
    generator = load_generator(version_dir)
    use_tlc = tlc and spec.tlc_base() is not None
    return Loaded(with_tlc(spec, generator) if use_tlc else generator, spec, use_tlc, meta, str(version_dir))


class Deblurrer:
    """Callable: image in, deblurred image of the same shape and sample type out."""

    def __init__(
        self,
        model: str | Path | Loaded = "runs/deblurgan",
        version: str | None = None,
        *,
        tlc: bool = True,
        ensemble: bool = False,
        tile: int | None = None,
        overlap: int | None = None,
        pad: str = "reflect",
    ) -> None:
        import tensorflow as tf

        from train.inference.serving import check_pad, restore_uint8, restore_unit

        if isinstance(model, Loaded):
            self.loaded = model
        else:
            from train.run.versions import resolve_model

            self.loaded = load(resolve_model(str(model), version), tlc)
        self.spec = self.loaded.spec
        self.ensemble = ensemble
        self.pad = check_pad(pad)
        # Tiles overlap by what the model sees around a pixel; a tile too small for that is refused up front.
        self.context = self.spec.tile_context(self.loaded.tlc)
        self.tile = default_tile(self.context, self.spec.stride, overlap) if tile is None else int(tile)
        self.overlap = overlap
        check_tile(self.tile, self.context, self.spec.stride, overlap)
        model_ = self.loaded.model
        self._unit = tf.function(restore_unit(model_, self.spec, ensemble, self.pad), reduce_retracing=True)
        self._uint8 = tf.function(restore_uint8(model_, self.spec, ensemble, self.pad), reduce_retracing=True)
        self._frame_stats: Any = None  # built on the first frame larger than a tile
        self._frame_unit: Any = None

    # ---- what it is ------------------------------------------------------------------------------------------

    @property
    def settings(self) -> dict[str, Any]:
        """How this deblurrer runs (what results record next to their metrics)."""
        meta = self.loaded.meta
        out: dict[str, Any] = {
            "model": self.loaded.path,
            "version": meta.get("version"),
            "step": meta.get("step"),
            "arch": self.spec.arch,
            "ensemble": self.ensemble,
            "pad": self.pad,
        }
        if self.spec.tlc_base() is not None:
            out["tlc"] = self.loaded.tlc
        return out

    def describe(self) -> str:
        s = self.settings
        extras = [f"step {s['step']}"] if s.get("step") is not None else []
        if "tlc" in s:
            extras.append(f"TLC {'on' if s['tlc'] else 'off'}")
        if self.ensemble:
            extras.append("x8 self-ensemble")
        if self.pad != "reflect":
            extras.append(f"{self.pad} padding")
        return f"{s.get('version') or self.loaded.path} ({self.spec.arch}{', ' if extras else ''}{', '.join(extras)})"

    # ---- running it ------------------------------------------------------------------------------------------

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Deblur one image: HxW, HxWx3 (RGB) or HxWx4 (RGBA); uint8, uint16 or float in [0, 1]. The output has
        the input's shape and sample type; alpha is carried through, gray stays gray."""
        rgb01, alpha, layout = images.split(image)
        return images.join(self.restore(rgb01), alpha, layout)

    def restore(self, rgb01: np.ndarray) -> np.ndarray:
        """Deblur an RGB float32 [h, w, 3] image in [0, 1]; tiled (with full-frame statistics) above `tile`."""
        plan = self.plan(rgb01.shape[0], rgb01.shape[1])
        if plan.whole:
            return self._unit(rgb01[None]).numpy()[0]
        unit = self._unit
        if self._frame_stats is None:
            self._prepare_frame_stats()
        if self._frame_stats:
            self._frame_stats.compute(rgb01, plan)
            unit = self._frame_unit
        blender = Blender(plan, 3)
        for t in plan.tiles:
            blender.add(t, unit(tile_input(rgb01, t)[None]).numpy()[0])
        return blender.result()

    def restore_uint8(self, batch: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Deblur a batch of same-size uint8 RGB frames [n, h, w, 3] (an array, or a list of frames: stacked) in
        one model call (video, evaluation); frames larger than a tile go one by one through `restore`."""
        batch = _uint8_batch(batch)
        if self.plan(batch.shape[1], batch.shape[2]).whole:
            return self._uint8(batch).numpy()
        return np.stack([images.join(self.restore(f.astype(np.float32) / 255.0), None, _RGB8) for f in batch])

    def plan(self, height: int, width: int) -> Any:
        return plan_tiles(height, width, self.spec.stride, self.tile, self.context, self.overlap)

    def _prepare_frame_stats(self) -> None:
        import tensorflow as tf

        from train.inference.frame_stats import FrameStats
        from train.inference.serving import restore_unit

        self._frame_stats = FrameStats(self.loaded.model, self.spec, self.pad)
        if self._frame_stats:
            model = self._frame_stats.model
            self._frame_unit = tf.function(
                restore_unit(model, self.spec, self.ensemble, self.pad), reduce_retracing=True
            )


_RGB8 = images.Layout(gray=False, alpha=False, dtype="uint8")


def _uint8_batch(batch: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """`batch` as a uint8 [n, h, w, 3] array; TypeError/ValueError naming what is wrong with it otherwise."""
    if isinstance(batch, list | tuple):
        shapes = sorted({np.shape(frame) for frame in batch})
        if len(shapes) > 1:
            raise ValueError(f"restore_uint8: the frames must all be the same size, got shapes {shapes}")
    batch = np.asarray(batch)
    if batch.dtype != np.uint8:
        raise TypeError(
            f"restore_uint8 takes uint8 frames, got {batch.dtype} (call the Deblurrer itself on uint16 or "
            "float images)"
        )
    if batch.ndim != 4 or batch.shape[3] != 3:
        raise ValueError(
            f"restore_uint8 takes a batch [n, height, width, 3] of RGB frames, got shape {batch.shape} "
            "(one frame: frame[None])"
        )
    return batch
