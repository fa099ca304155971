"""`train.init_from`: start a new run's generator from another run's version (fine-tuning, pretrain-then-GAN).

The version's architecture must match `train.generator` (name and every setting that fixes a weight's shape),
or the run is refused with one line naming the difference. The lineage (which version, of which run, at which
step, and that version's own lineage) goes into run.json and every later version's meta.json.
"""

from __future__ import annotations

from typing import Any

from pipeline.errors import UsageError
from train import archs
from train.archs.base import ArchSettings


def lineage_of(version_dir: str, meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "path": version_dir,
        "version": meta.get("version"),
        "step": meta.get("step"),
        "config_sha256": meta.get("config_sha256"),
        "init_from": meta.get("init_from"),
    }


def check_same_arch(spec: archs.ModelSpec, settings: ArchSettings, where: str) -> None:
    """UsageError naming the first difference between a version's architecture and `settings`."""
    if spec.arch != settings.arch:
        raise UsageError(
            f"train.init_from: {where} holds a {spec.arch} generator, but train.generator.arch is {settings.arch}"
        )
    if not spec.settings:  # a version from before architectures were recorded: the weights will tell
        return
    arch = archs.of(settings)
    theirs = arch.shape_keys(arch.settings.model_validate(spec.settings))
    ours = arch.shape_keys(settings)
    for key, value in ours.items():
        if theirs.get(key) != value:
            raise UsageError(
                f"train.init_from: {where} has generator.{key}={theirs.get(key)!r}, "
                f"but train.generator.{key} is {value!r}; the weights would not fit"
            )


def load_init_weights(init_from: str, settings: ArchSettings) -> tuple[list[Any], dict[str, Any]]:
    """The generator weights of the version `init_from` names (a version dir, or a run dir: its latest), and
    the lineage to record."""
    from train.run.versions import load_generator, read_meta, resolve_model

    try:
        version_dir = resolve_model(init_from)
    except UsageError as exc:
        raise UsageError(f"train.init_from: {str(exc).removeprefix('--model ')}") from None
    meta = read_meta(version_dir)
    check_same_arch(archs.spec_from_meta(meta, version_dir), settings, version_dir)
    return load_generator(version_dir).get_weights(), lineage_of(version_dir, meta)


def apply_weights(generator: Any, weights: list[Any], where: str) -> None:
    try:
        generator.set_weights(weights)
    except ValueError as exc:
        reason = str(exc).splitlines()[0][:200]
        raise UsageError(f"train.init_from: {where}: weights do not fit train.generator ({reason})") from None
