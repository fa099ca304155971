"""Full-frame statistics for tiled inference: tiles then agree with the whole frame.

Instance normalization (DeblurGAN) and a global mean pool (NAFNet without TLC) compute statistics over the whole
image they see. Run tile by tile, each tile gets its own statistics and the blended result differs from the
whole-frame one (a faint grid, 1.9 levels on average on a 4000x3000 photo). Here the statistics of every such
layer are computed over the whole (padded) frame first, layer by layer in graph order, from the tiles' cores
(which partition the frame, so no pixel counts twice), each layer's statistics feeding the next; the tiles then
run with those statistics fixed. Memory stays that of one tile; the cost is about (layers / 2) extra passes, paid
only for frames larger than a tile.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from train.inference.tiling import TilePlan, tile_input


def statistic_layers(model: Any) -> list[Any]:
    """The layers with whole-image statistics, in graph order (a functional model lists layers topologically)."""
    from train.archs.layers import InstanceNormalization, MeanPool2D

    return [
        layer
        for layer in model.layers
        if isinstance(layer, InstanceNormalization)
        or (isinstance(layer, MeanPool2D) and layer.window is None)
    ]


class FrameStats:
    """An inference copy of `model` whose statistic layers use statistics set by `compute(frame, plan)`."""

    def __init__(self, model: Any, spec: Any, pad: str = "reflect") -> None:
        import keras
        import tensorflow as tf

        from train.archs.layers import InstanceNormalization
        from train.inference.serving import model_input

        self.spec = spec
        self.model = keras.models.clone_model(model)
        self.model.set_weights(model.get_weights())
        self.layers = statistic_layers(self.model)
        self.is_norm = [isinstance(layer, InstanceNormalization) for layer in self.layers]
        self._probes: dict[int, Any] = {}
        for layer in self.layers:
            channels = int(layer.input.shape[-1])
            stats = (tf.Variable(tf.zeros([channels])), tf.Variable(tf.ones([channels])))
            object.__setattr__(
                layer, "_frame_stats", stats
            )  # not a tracked weight: never saved, never trained
        self._to_model = lambda x01: model_input(x01, spec, pad)

    def __bool__(self) -> bool:
        return bool(self.layers)

    def _probe(self, k: int) -> Any:
        """A traced function giving the input of statistic layer k for a [0, 1] tile."""
        if k not in self._probes:
            import keras
            import tensorflow as tf

            sub = keras.Model(self.model.input, self.layers[k].input)
            self._probes[k] = tf.function(lambda x01: sub(self._to_model(x01), training=False))
        return self._probes[k]

    def compute(self, frame01: np.ndarray, plan: TilePlan) -> None:
        """Set every statistic layer's mean (and variance) to its value over the whole padded frame."""
        for k, layer in enumerate(self.layers):
            total = count = 0
            total_sq = 0.0
            for t in plan.tiles:
                features = self._probe(k)(tile_input(frame01, t)[None]).numpy()[0].astype(np.float64)
                scale = t.h // features.shape[0]
                y0, y1, x0, x1 = (v // scale for v in t.core)
                core = features[y0:y1, x0:x1]
                total = total + core.sum(axis=(0, 1))
                total_sq = total_sq + np.square(core).sum(axis=(0, 1))
                count += core.shape[0] * core.shape[1]
            mean = total / count
            var = np.maximum(total_sq / count - np.square(mean), 0.0)
            stats = layer._frame_stats
            stats[0].assign(mean.astype(np.float32))
            if self.is_norm[k]:
                stats[1].assign(var.astype(np.float32))
