"""`trainctl import-weights`: a published PyTorch checkpoint becomes version v0001 of a new run dir.

The file is read without PyTorch (train/weights/state_file.py), its architecture and settings are recognized from
the tensor names and shapes (each arch's `TorchNames.infer`; `--arch` forces one), the weights go through the
arch's table into a float32 Keras generator, and `RUN_DIR/generator/v0001` is written like a trained version:
meta.json holds the arch, the training crop TLC needs (`--train-size`), the source file's name and sha256, the
key used and `imported: pytorch`. The run dir is staged beside its final place and renamed in when complete (and
held by a lock while that happens): a refused or interrupted import leaves nothing.
"""

from __future__ import annotations

from typing import Any

from pipeline.console import log
from pipeline.errors import DataError, UsageError
from train import archs
from train.weights.state_file import State, read_state

MARKER = "generator"  # what a complete imported run dir holds (moved last to an object store)


def choose_arch(state: State, arch: str) -> tuple[archs.Arch, dict[str, Any]]:
    """The arch and settings of a state dict: recognized among every arch with PyTorch names, or `arch`'s."""
    shapes = {name: tuple(t.shape) for name, t in state.tensors.items()}
    readable = {name: a for name, a in archs.ARCHS.items() if a.torch is not None}
    if arch != "auto":
        chosen = archs.get(arch)
        if chosen.torch is None:
            raise UsageError(
                f"--arch {arch}: has no PyTorch reference to import from (can: {', '.join(readable)})"
            )
        settings = chosen.torch.infer(shapes)
        if settings is None:
            raise DataError(f"{state.file}: not a {arch} state dict (keys start {_first_keys(shapes)})")
        return chosen, settings
    found = {name: s for name, a in readable.items() if (s := a.torch.infer(shapes)) is not None}
    if len(found) != 1:
        what = "none" if not found else f"several ({', '.join(found)}): choose one with --arch"
        raise DataError(
            f"{state.file}: the state dict matches {what} of the known architectures "
            f"({', '.join(readable)}); keys start {_first_keys(shapes)}"
        )
    name, settings = next(iter(found.items()))
    return readable[name], settings


def _first_keys(shapes: dict[str, tuple[int, ...]]) -> str:
    return ", ".join(list(shapes)[:3]) + (", ..." if len(shapes) > 3 else "")


def build_from_state(state: State, arch: str = "auto") -> tuple[archs.Arch, Any, Any]:
    """(arch, settings, float32 Keras generator holding the state's weights)."""
    from pydantic import ValidationError

    from train.weights.convert import to_keras

    chosen, raw = choose_arch(state, arch)
    try:
        settings = chosen.settings.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise DataError(
            f"{state.file}: inferred {chosen.name} settings do not validate ({first['msg']})"
        ) from None
    model = archs.build(settings, dtype="float32")
    to_keras(model, chosen.torch.table(settings), state.tensors, state.file)
    return chosen, settings, model


def import_weights(file: str, out: str, arch: str = "auto", train_size: int = 256, key: str = "auto") -> str:
    """Write `out`/generator/v0001 from the checkpoint `file`; returns the version dir."""
    from pipeline import publish
    from pipeline.dirlock import OutputLock
    from train.run.rundir import join, name
    from train.run.versions import write_version

    if train_size < 1:
        raise UsageError(f"--train-size {train_size}: must be a positive crop size in pixels")
    _check_new(out)
    state = read_state(file, key)
    chosen, settings, model = build_from_state(state, arch)
    meta = {
        "step": 0,
        "arch": chosen.describe(settings, train_size),
        "imported": "pytorch",
        "source": {
            "file": name(file),
            "sha256": state.sha256,
            "key": state.key,
            "reference": chosen.torch.reference,
            "tensors": len(state.tensors),
        },
        "ema": None,
        "init_from": None,
        "metrics": {},
        "precision": "float32",
    }
    with OutputLock(out, "import-weights", tool="trainctl"):
        staging = publish.prepare(out, overwrite=False, marker=MARKER, owned=lambda _: False)
        try:
            write_version(staging, model, meta)
            publish.publish(staging, out, MARKER)
        except BaseException:
            publish.discard(staging)
            raise
    version_dir = join(out, MARKER, "v0001")
    params = sum(int(w.numpy().size) for w in model.weights)
    log(
        f"imported {name(file)} ({state.key or 'bare state dict'}, {len(state.tensors)} tensors, sha256 "
        f"{state.sha256[:12]}) as {chosen.name} {_settings_line(settings)}, {params:,} parameters, train size "
        f"{train_size}: {version_dir}"
    )
    return version_dir


def _check_new(out: str) -> None:
    """The run dir must be new (or empty): an import never mixes with, or replaces, a run."""
    from train.run import rundir

    if rundir.isfile(out):
        raise UsageError(f"--out {out}: is a file; give a new run dir")
    entries = rundir.listdir(out) if rundir.isdir(out) else []
    if entries:
        raise UsageError(
            f"--out {out}: already holds a run dir ({sorted(entries)[0]}, ...); import into a new one"
        )


def _settings_line(settings: Any) -> str:
    return " ".join(f"{k}={v}" for k, v in settings.model_dump(mode="json").items() if k != "arch")
