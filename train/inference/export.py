"""`trainctl export`: a generator version as a SavedModel, a TFLite model or a Keras file, for serving and phones.

savedmodel (default): signature `serving_default`, input `images` uint8 [batch, height, width, 3] of any size,
  output `deblurred` uint8 of the same shape. Padding to the stride and the crop back happen inside the graph.
tflite: the same uint8 function converted for the TFLite runtime (float32 or float16 weights), with dynamic
  height and width: resize the input tensor (or use the signature runner, which does) to the image's size.
keras: `generator.keras` as trained (TLC applied where it is on), to fine-tune or run from Python; its input
  contract is in the README (float32 RGB in the arch's range, sizes multiples of the stride).
safetensors: the weights under the reference PyTorch code's names and layouts (`generator.safetensors`), the way
  back to it: `model.load_state_dict(safetensors.torch.load_file(F))`; `trainctl import-weights` reads it back
  bit for bit. TLC is a run-time choice there (NAFNetLocal), not part of the weights.
Every export holds the version's meta.json beside it, with what was exported. Local exports are written under a
temporary name and renamed into place; on an object store the SavedModel is uploaded with saved_model.pb last.
An older export at the same path is replaced, anything else is not.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pipeline.console import log
from pipeline.errors import UsageError
from train.inference.serving import INPUT_NAME, OUTPUT_NAME, SIGNATURE, check_pad, serving_function
from train.run import rundir
from train.run.rundir import join

FORMATS = ("savedmodel", "tflite", "keras", "safetensors")


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


def save_serving(
    generator: Any,
    spec: Any,
    path: str,
    ensemble: bool = False,
    batch: int | None = None,
    pad: str = "reflect",
) -> None:
    """Write the uint8 serving function of `generator` as a SavedModel at `path` (a new local dir)."""
    import keras

    archive = keras.export.ExportArchive()
    archive.track(generator)
    archive.add_endpoint(SIGNATURE, serving_function(generator, spec, ensemble, batch, pad))
    archive.write_out(path, verbose=False)


def write_saved_model(
    generator: Any,
    out: str | Path,
    spec: Any,
    extra_files: dict[str, bytes] | None = None,
    ensemble: bool = False,
    pad: str = "reflect",
) -> str:
    """Trace the serving function and save it to a temp dir; locally swap that dir into place, remotely upload it
    (see `_upload`)."""
    out = str(out)
    _check_out(out)
    remote = rundir.is_remote(out)
    parent, name = rundir.split(out)
    if not remote:
        os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=None if remote else parent)
    old = join(parent, f".{name}.old-{os.getpid()}")
    try:
        save_serving(generator, spec, tmp, ensemble, pad=pad)
        for file_name, data in (extra_files or {}).items():
            with open(os.path.join(tmp, file_name), "wb") as fh:
                fh.write(data)
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


def tflite_bytes(generator: Any, spec: Any, float16: bool = False, pad: str = "reflect") -> bytes:
    """The serving function as a TFLite flatbuffer: through a SavedModel (converting a concrete function directly
    loses the variables' values in TF 2.21), batch 1, height and width resizable at run time."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        save_serving(generator, spec, tmp, batch=1, pad=pad)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=[SIGNATURE])
        if float16:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        return converter.convert()


def _write_file(out: str, name: str, data: bytes, meta: bytes) -> str:
    """A single-file export (TFLite, Keras): OUT/<name> and OUT/meta.json, each written atomically."""
    if rundir.isfile(out):
        raise UsageError(f"--out {out}: is a file; give a folder")
    rundir.makedirs(out)
    rundir.write_bytes(join(out, name), data)
    rundir.write_bytes(join(out, "meta.json"), meta)
    return join(out, name)


def _safetensors(loaded: Any) -> tuple[bytes, str]:
    """The version's weights in the reference code's names and layouts, and the line saying how to load them."""
    import json

    from safetensors.numpy import save

    from train import archs
    from train.weights.convert import to_torch

    arch = archs.get(loaded.spec.arch)
    if arch.torch is None:
        readable = ", ".join(n for n, a in archs.ARCHS.items() if a.torch is not None)
        raise UsageError(
            f"--format safetensors: {arch.name} has no PyTorch reference (formats for: {readable})"
        )
    settings = arch.settings.model_validate(loaded.spec.settings)
    tensors = to_torch(loaded.model, arch.torch.table(settings))
    metadata = {"format": "pt", "arch": arch.name, "settings": json.dumps(settings.model_dump(mode="json"))}
    detail = (
        f"{len(tensors)} tensors in the names of {arch.torch.reference}: "
        "model.load_state_dict(safetensors.torch.load_file(PATH))"
    )
    return save(tensors, metadata=metadata), detail


def run(
    model_dir: str | Path,
    out: str | Path,
    fmt: str = "savedmodel",
    tlc: bool = True,
    float16: bool = False,
    ensemble: bool = False,
    pad: str = "reflect",
) -> str:
    """`trainctl export`: the version at `model_dir` in format `fmt` at `out` (with the version's meta.json)."""
    import json

    from train.inference.deblurrer import load
    from train.run.versions import MODEL_FILE

    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt}: unknown (use {', '.join(FORMATS)})")
    if float16 and fmt != "tflite":
        raise UsageError("--float16 applies to --format tflite only")
    if check_pad(pad) != "reflect" and fmt not in ("savedmodel", "tflite"):
        raise UsageError(
            f"--pad {pad} applies to --format savedmodel and tflite only (the others hold weights)"
        )
    if ensemble and fmt != "savedmodel":
        raise UsageError("--ensemble applies to --format savedmodel only")
    loaded = load(str(model_dir), tlc and fmt != "safetensors")  # TLC changes no weight
    meta = {
        **loaded.meta,
        "export": {"format": fmt, "tlc": loaded.tlc, "float16": float16, "ensemble": ensemble, "pad": pad},
    }
    meta_bytes = json.dumps(meta, indent=2, sort_keys=True).encode()
    out = str(out)
    if fmt == "savedmodel":
        path = write_saved_model(loaded.model, out, loaded.spec, {"meta.json": meta_bytes}, ensemble, pad)
        detail = f"signature {SIGNATURE}: {INPUT_NAME} uint8 [batch, height, width, 3] -> {OUTPUT_NAME} uint8, any size"
    elif fmt == "tflite":
        data = tflite_bytes(loaded.model, loaded.spec, float16, pad)
        path = _write_file(out, "generator.tflite", data, meta_bytes)
        detail = (
            f"{'float16' if float16 else 'float32'} weights, {len(data) / 1e6:.1f} MB; input {INPUT_NAME} uint8 "
            f"[1, height, width, 3]: resize it to the image (or use the signature runner)"
        )
    elif fmt == "safetensors":
        data, detail = _safetensors(loaded)
        path = _write_file(out, "generator.safetensors", data, meta_bytes)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            loaded.model.save(os.path.join(tmp, MODEL_FILE))
            data = Path(tmp, MODEL_FILE).read_bytes()
        path = _write_file(out, MODEL_FILE, data, meta_bytes)
        lo, hi = loaded.spec.input_range
        detail = (
            f"float32 RGB in [{lo:g}, {hi:g}], height and width multiples of {loaded.spec.stride}; "
            "load with `import train` then keras.saving.load_model"
        )
    name = loaded.meta.get("version", rundir.name(str(model_dir)))
    weights_only = fmt == "safetensors"  # TLC is the reference code's run-time choice there
    tlc_note = f", TLC {'on' if loaded.tlc else 'off'}" if loaded.spec.tlc_base() and not weights_only else ""
    log(f"exported {name} (step {loaded.meta.get('step', '?')}{tlc_note}) as {fmt} to {path}")
    log(f"  {detail}")
    return path
