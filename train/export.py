"""`trainctl export`: a generator version as a TF SavedModel that serves uint8 RGB images of any size.

Signature `serving_default`: input `images` uint8 [batch, height, width, 3], output `deblurred` uint8 of the same
shape. Padding to the generator's stride (mirror reflection, bottom/right) and the crop back happen inside the
graph, exactly as `trainctl deblur` does without tiling, so clients send raw frames. The SavedModel is written
under a temporary name and renamed into place (on an object store: uploaded with saved_model.pb last); an older
export at the same path is replaced, anything else is not.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pipeline.console import log
from pipeline.errors import UsageError
from train import rundir
from train.deblur import MIN_SIDE, forward_fn
from train.rundir import join

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


def serving_fn(
    generator: Any, stride: int, min_side: int = MIN_SIDE, input_range: tuple[float, float] = (-1.0, 1.0)
) -> Any:
    """A tf.function: uint8 [b,h,w,3] of any h/w -> uint8 deblurred [b,h,w,3]."""
    import tensorflow as tf

    forward = forward_fn(generator, input_range)

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


# What a remote export cut short may leave (local exports are atomic and leave nothing).
SAVED_MODEL_NAMES = frozenset({"saved_model.pb", "variables", "assets", "fingerprint.pb", "meta.json"})


def _check_out(out: str) -> None:
    """An existing `out` may only be an empty folder or an earlier SavedModel: never replace unrelated data."""
    if rundir.isfile(out):
        raise UsageError(f"--out {out}: is a file; give a folder for the SavedModel")
    entries = set(rundir.listdir(out))
    leftover = rundir.is_remote(out) and entries <= SAVED_MODEL_NAMES
    if entries and not leftover and not rundir.isfile(join(out, "saved_model.pb")):
        raise UsageError(f"--out {out}: folder exists and is not a SavedModel; refusing to replace it")


def _upload(local: str, out: str) -> None:
    """Copy a SavedModel dir to an object store with saved_model.pb last: a loader never sees a mix of exports.

    Not atomic: the old export is deleted first (its saved_model.pb before the rest), and a failed upload is
    removed again, so `out` holds the new export, or nothing a loader would take for one."""
    if rundir.exists(join(out, "saved_model.pb")):
        rundir.remove(join(out, "saved_model.pb"))  # the old export stops loading before its files change
    rundir.rmtree(out)
    files = [
        os.path.relpath(os.path.join(top, name), local) for top, _, names in os.walk(local) for name in names
    ]
    try:
        for rel in sorted(files, key=lambda rel: rel == "saved_model.pb"):
            dst = join(out, *rel.split(os.sep))
            rundir.makedirs(rundir.split(dst)[0])
            rundir.copy(os.path.join(local, rel), dst)
    except BaseException:
        rundir.discard(out)
        raise


def write_saved_model(
    generator: Any,
    out: str | Path,
    stride: int,
    extra_files: dict[str, str] | None = None,
    input_range: tuple[float, float] = (-1.0, 1.0),
) -> str:
    """Trace the serving function and save it to a temp dir; locally swap that dir into place, remotely upload it
    (see `_upload`)."""
    import keras

    out = str(out)
    _check_out(out)
    remote = rundir.is_remote(out)
    parent, name = rundir.split(out)
    if not remote:
        os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=None if remote else parent)
    old = join(parent, f".{name}.old-{os.getpid()}")
    try:
        archive = keras.export.ExportArchive()
        archive.track(generator)
        archive.add_endpoint(SIGNATURE, serving_fn(generator, stride, input_range=input_range))
        archive.write_out(tmp, verbose=False)
        for file_name, src in (extra_files or {}).items():
            with open(os.path.join(tmp, file_name), "wb") as fh:
                fh.write(rundir.read_bytes(src))
        if remote:
            _upload(tmp, out)
        else:
            if os.path.exists(out):
                os.replace(out, old)
            os.replace(tmp, out)
    except BaseException:
        if not remote and os.path.exists(old) and not os.path.exists(out):
            os.replace(old, out)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not remote:
        shutil.rmtree(old, ignore_errors=True)
    return out


def run(model_dir: str | Path, out: str | Path, tlc: bool = True) -> str:
    """`trainctl export`: load the version's generator and write the SavedModel (with its meta.json) to `out`."""
    from train.deblur import load_inference_model
    from train.versions import META_FILE, read_meta

    meta = read_meta(model_dir)
    generator, spec, used_tlc = load_inference_model(model_dir, tlc)
    path = write_saved_model(
        generator, out, spec.stride, {META_FILE: join(str(model_dir), META_FILE)}, spec.input_range
    )
    if spec.tlc_base() is not None:
        log(
            f"  test-time local statistics (TLC): {'on, window ' + str(spec.tlc_base()) + ' px' if used_tlc else 'off'}"
        )
    log(
        f"exported {meta.get('version', rundir.name(str(model_dir)))} (step {meta.get('step', '?')}) to {path}"
    )
    log(
        f"  signature {SIGNATURE}: {INPUT_NAME} uint8 [batch, height, width, 3] -> {OUTPUT_NAME} uint8, any size"
    )
    return path
