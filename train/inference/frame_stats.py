"""Full-frame statistics for tiled inference: tiles then agree with the whole frame.

Instance normalization (DeblurGAN), a global mean pool (NAFNet without TLC) and the channel attention's cosine
matrix (Restormer: q and k normalized over all pixels, then their channel Gram matrix) compute statistics over the
whole image they see. Run tile by tile, each tile gets its own statistics and the blended result differs from the
whole-frame one (a faint grid, 1.9 levels on average on a 4000x3000 photo). Here the statistics of every such
layer are computed over the whole (padded) frame first, layer by layer in graph order, from the tiles' cores
(which partition the frame, so no pixel counts twice), each layer's statistics feeding the next; the tiles then
run with those statistics fixed. Memory stays that of one tile; the cost is about (layers / 2) extra passes, paid
only for frames larger than a tile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from train.inference.tiling import TilePlan, tile_input


def _moments(layer: Any, core: np.ndarray) -> list[np.ndarray]:
    """Instance norm and the mean pool: per-channel sums of x and x^2 over a core [h, w, c]."""
    return [core.sum(axis=(0, 1)), np.square(core).sum(axis=(0, 1))]


def _mean_var(layer: Any, sums: list[np.ndarray], count: int) -> list[np.ndarray]:
    mean = sums[0] / count
    return [mean, np.maximum(sums[1] / count - np.square(mean), 0.0)]


def _gram(layer: Any, core: np.ndarray) -> list[np.ndarray]:
    """Restormer's channel attention ([q | k | v] input): per head, sum over pixels of q_i k_j, and the squared
    norms of q's and k's channels."""
    c = core.shape[-1] // 3
    heads, ch = layer.heads, c // layer.heads
    q = core[..., :c].reshape(-1, heads, ch)
    k = core[..., c : 2 * c].reshape(-1, heads, ch)
    return [np.einsum("nhi,nhj->hij", q, k), np.square(q).sum(axis=0), np.square(k).sum(axis=0)]


def _cosine(layer: Any, sums: list[np.ndarray], count: int) -> list[np.ndarray]:
    """The normalized q/k Gram matrix [heads, c, c] (F.normalize's floor on the norms)."""
    from train.archs.restormer_layers import NORM_EPS

    qn, kn = (np.maximum(np.sqrt(v), NORM_EPS) for v in sums[1:])
    return [sums[0] / (qn[:, :, None] * kn[:, None, :])]


@dataclass(frozen=True)
class _Statistic:
    """How one kind of statistic layer's whole-frame values are made: what a tile's core adds to the totals
    (`sums`), the values from the totals (`values`), and their shapes (the `_frame_stats` variables)."""

    sums: Callable[[Any, np.ndarray], list[np.ndarray]]
    values: Callable[[Any, list[np.ndarray], int], list[np.ndarray]]
    shapes: Callable[[Any], list[tuple[int, ...]]]


MOMENTS = _Statistic(_moments, _mean_var, lambda layer: [(int(layer.input.shape[-1]),)] * 2)
COSINE = _Statistic(
    _gram, _cosine, lambda layer: [(layer.heads,) + (int(layer.input.shape[-1]) // 3 // layer.heads,) * 2]
)


def _kind(layer: Any) -> _Statistic | None:
    """The statistic `layer` computes over the whole image it sees (None: it has none)."""
    from train.archs.layers import InstanceNormalization, MeanPool2D
    from train.archs.restormer_layers import ChannelAttention

    if isinstance(layer, InstanceNormalization) or (isinstance(layer, MeanPool2D) and layer.window is None):
        return MOMENTS
    return COSINE if isinstance(layer, ChannelAttention) else None


def statistic_layers(model: Any) -> list[Any]:
    """The layers with whole-image statistics, in graph order (a functional model lists layers topologically)."""
    return [layer for layer in model.layers if _kind(layer) is not None]


class FrameStats:
    """An inference copy of `model` whose statistic layers use statistics set by `compute(frame, plan)`."""

    def __init__(self, model: Any, spec: Any, pad: str = "reflect") -> None:
        import keras
        import tensorflow as tf

        from train.inference.serving import model_input

        self.spec = spec
        self.model = keras.models.clone_model(model)
        self.model.set_weights(model.get_weights())
        self.layers = statistic_layers(self.model)
        self.kinds = [_kind(layer) for layer in self.layers]
        self._probes: dict[int, Any] = {}
        for layer, kind in zip(self.layers, self.kinds, strict=True):
            stats = tuple(tf.Variable(tf.zeros(shape)) for shape in kind.shapes(layer))
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
        """Set every statistic layer's statistics to their values over the whole padded frame."""
        for k, (layer, kind) in enumerate(zip(self.layers, self.kinds, strict=True)):
            totals: list[np.ndarray] | None = None
            count = 0
            for t in plan.tiles:
                features = self._probe(k)(tile_input(frame01, t)[None]).numpy()[0].astype(np.float64)
                scale = t.h // features.shape[0]
                y0, y1, x0, x1 = (v // scale for v in t.core)
                sums = kind.sums(layer, features[y0:y1, x0:x1])
                totals = sums if totals is None else [a + b for a, b in zip(totals, sums, strict=True)]
                count += (y1 - y0) * (x1 - x0)
            for variable, value in zip(layer._frame_stats, kind.values(layer, totals, count), strict=True):
                variable.assign(value.astype(np.float32))
