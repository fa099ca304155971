"""The one graph-side inference function: pad -> model -> crop (-> uint8), shared by every way a model runs.

`restore_unit(model, spec)` maps a float32 batch in [0, 1] of any height and width to the deblurred batch in
[0, 1]: convert to the model's value range, pad (bottom/right) to the model's stride and minimum size, run,
convert back, crop, clip. Padding is `reflect` (the default: no dark border for the model to see) or `zero`
(zeros in the model's value range, what the NAFNet reference code does inside its forward: use it to reproduce a
paper's numbers on sizes that are not multiples of the stride). `restore_uint8` wraps it for uint8 images (rounding once, at the end); SavedModel,
TFLite, evaluation, video and the Python API all call one of these two. With `ensemble`, the batch goes through
the model in all 8 flips and transposes and the outputs, mapped back, are averaged (the x8 self-ensemble).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from train.inference.tiling import MIN_SIDE

SIGNATURE = "serving_default"
INPUT_NAME = "images"
OUTPUT_NAME = "deblurred"
ENSEMBLE_SIZE = 8
PADS = ("reflect", "zero")


def check_pad(pad: str) -> str:
    """`pad` if it is a padding mode; UsageError naming it otherwise."""
    if pad not in PADS:
        from pipeline.errors import UsageError

        raise UsageError(f"--pad {pad}: unknown padding (use {' or '.join(PADS)})")
    return pad


def _reflect_indices(n: Any, total: Any) -> Any:
    """0..total-1 mirrored into [0, n) (the graph form of tiling.reflect_indices)."""
    import tensorflow as tf

    i = tf.range(total)
    period = tf.maximum(2 * (n - 1), 1)
    j = i % period
    return tf.where(j < n, j, period - j)


def pad_to_stride(images: Any, stride: int, min_side: int = MIN_SIDE, pad: str = "reflect") -> Any:
    """Pad [b, h, w, c] at the bottom and right to multiples of `stride`, at least `min_side`: by reflection, or
    with zeros (`pad="zero"`)."""
    import tensorflow as tf

    shape = tf.shape(images)
    h, w = shape[1], shape[2]
    ph = tf.maximum((h + stride - 1) // stride, (min_side + stride - 1) // stride) * stride
    pw = tf.maximum((w + stride - 1) // stride, (min_side + stride - 1) // stride) * stride
    if check_pad(pad) == "zero":
        return tf.pad(images, [[0, 0], [0, ph - h], [0, pw - w], [0, 0]])
    padded = tf.gather(images, _reflect_indices(h, ph), axis=1)
    return tf.gather(padded, _reflect_indices(w, pw), axis=2)


def _dihedral(x: Any, k: int, inverse: bool = False) -> Any:
    """One of the 8 flips/transposes of an NHWC batch (k bits: flip rows, flip columns, transpose), or its inverse."""
    import tensorflow as tf

    flip_h, flip_w, transpose = k & 1, k & 2, k & 4
    if not inverse:
        x = x[:, ::-1] if flip_h else x
        x = x[:, :, ::-1] if flip_w else x
        return tf.transpose(x, [0, 2, 1, 3]) if transpose else x
    x = tf.transpose(x, [0, 2, 1, 3]) if transpose else x
    x = x[:, :, ::-1] if flip_w else x
    return x[:, ::-1] if flip_h else x


def model_input(x01: Any, spec: Any, pad: str = "reflect") -> Any:
    """A [0, 1] batch as the model takes it: in its value range, padded to its stride and minimum size."""
    import tensorflow as tf

    lo, hi = spec.input_range
    x = tf.cast(x01, tf.float32) * (hi - lo) + lo
    return pad_to_stride(x, spec.stride, max(MIN_SIDE, spec.min_size), pad)


def restore_unit(model: Any, spec: Any, ensemble: bool = False, pad: str = "reflect") -> Callable[[Any], Any]:
    """The graph body: float32 [b, h, w, 3] in [0, 1] -> float32 deblurred in [0, 1], same shape."""
    import tensorflow as tf

    lo, hi = spec.input_range

    def once(x01: Any) -> Any:
        h, w = tf.shape(x01)[1], tf.shape(x01)[2]
        y = (tf.cast(model(model_input(x01, spec, pad), training=False), tf.float32) - lo) / (hi - lo)
        return y[:, :h, :w, :]

    def restore(x01: Any) -> Any:
        x01 = tf.cast(x01, tf.float32)
        if ensemble:
            y = tf.add_n([_dihedral(once(_dihedral(x01, k)), k, inverse=True) for k in range(ENSEMBLE_SIZE)])
            y = y / ENSEMBLE_SIZE
        else:
            y = once(x01)
        return tf.clip_by_value(y, 0.0, 1.0)

    return restore


def restore_uint8(
    model: Any, spec: Any, ensemble: bool = False, pad: str = "reflect"
) -> Callable[[Any], Any]:
    """The graph body for uint8 images: uint8 [b, h, w, 3] -> uint8 deblurred (rounded once)."""
    import tensorflow as tf

    unit = restore_unit(model, spec, ensemble, pad)

    def restore(images: Any) -> Any:
        y = unit(tf.cast(images, tf.float32) / 255.0)
        return tf.cast(tf.round(y * 255.0), tf.uint8)

    return restore


def serving_function(
    model: Any, spec: Any, ensemble: bool = False, batch: int | None = None, pad: str = "reflect"
) -> Any:
    """`serving_default` for exports: uint8 `images` [batch, height, width, 3] (any size) -> {deblurred: uint8}.

    The channel count is fixed (TFLite's converter needs it); `batch` fixes the batch size (None: any)."""
    import tensorflow as tf

    body = restore_uint8(model, spec, ensemble, pad)

    @tf.function(input_signature=[tf.TensorSpec([batch, None, None, 3], tf.uint8, name=INPUT_NAME)])
    def serve(images: Any) -> dict[str, Any]:
        return {OUTPUT_NAME: body(images)}

    return serve
