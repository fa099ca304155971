"""`trainctl export`: a generator version as a TF SavedModel that serves uint8 RGB images of any size.

Signature `serving_default`: input `images` uint8 [batch, height, width, 3], output `deblurred` uint8 of the same
shape. Padding to the generator's stride (mirror reflection, bottom/right) and the crop back happen inside the
graph, exactly as `trainctl deblur` does without tiling, so clients send raw frames. The SavedModel is written
under a temporary name and renamed into place; an older export at the same path is replaced, anything else is not.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pipeline.console import log
from pipeline.errors import UsageError
from train.deblur import MIN_SIDE, forward_fn, generator_stride

SIGNATURE = "serving_default"
INPUT_NAME = "images"
OUTPUT_NAME = "deblurred"


def _reflect_indices(n: Any, total: Any) -> Any:
    """Graph twin of train.deblur.reflect_indices: 0..total-1 mirrored into [0, n)."""
    import tensorflow as tf

    i = tf.range(total)
    period = tf.maximum(2 * (n - 1), 1)
    j = i % period
    return tf.where(j < n, j, period - j)


def serving_fn(generator: Any, stride: int, min_side: int = MIN_SIDE) -> Any:
    """A tf.function: uint8 [b,h,w,3] of any h/w -> uint8 deblurred [b,h,w,3]."""
    import tensorflow as tf

    forward = forward_fn(generator)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name=INPUT_NAME)])
    def serve(images: Any) -> dict[str, Any]:
        shape = tf.shape(images)
        h, w = shape[1], shape[2]
        ph = tf.maximum((h + stride - 1) // stride, (min_side + stride - 1) // stride) * stride
        pw = tf.maximum((w + stride - 1) // stride, (min_side + stride - 1) // stride) * stride
        padded = tf.gather(images, _reflect_indices(h, ph), axis=1)
        padded = tf.gather(padded, _reflect_indices(w, pw), axis=2)
        out = tf.cast(tf.round(forward(padded)), tf.uint8)[:, :h, :w, :]
        return {OUTPUT_NAME: out}

    return serve


def _check_out(out: Path) -> None:
    """An existing `out` may only be an empty folder or an earlier SavedModel: never replace unrelated data."""
    if out.is_file():
        raise UsageError(f"--out {out}: is a file; give a folder for the SavedModel")
    if out.is_dir() and any(out.iterdir()) and not (out / "saved_model.pb").is_file():
        raise UsageError(f"--out {out}: folder exists and is not a SavedModel; refusing to replace it")


def write_saved_model(
    generator: Any, out: Path, stride: int, extra_files: dict[str, Path] | None = None
) -> Path:
    """Trace the serving function, save to a temp dir beside `out`, then swap it into place."""
    import keras

    _check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    try:
        archive = keras.export.ExportArchive()
        archive.track(generator)
        archive.add_endpoint(SIGNATURE, serving_fn(generator, stride))
        archive.write_out(str(tmp), verbose=False)
        for name, src in (extra_files or {}).items():
            shutil.copyfile(src, tmp / name)
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out.exists():
            os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return out


def run(model_dir: str | Path, out: str | Path) -> Path:
    """`trainctl export`: load the version's generator and write the SavedModel (with its meta.json) to `out`."""
    from train.versions import META_FILE, load_generator, read_meta

    meta = read_meta(model_dir)
    generator = load_generator(model_dir)
    path = write_saved_model(
        generator, Path(out), generator_stride(), {META_FILE: Path(model_dir) / META_FILE}
    )
    log(f"exported {meta.get('version', Path(model_dir).name)} (step {meta.get('step', '?')}) to {path}")
    log(
        f"  signature {SIGNATURE}: {INPUT_NAME} uint8 [batch, height, width, 3] -> {OUTPUT_NAME} uint8, any size"
    )
    return path
