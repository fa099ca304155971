"""Generator architectures: an explicit registry, name -> `Arch` (see train/archs/base.py).

A new architecture is one module here defining its settings class, `build` and an `ARCH` entry, plus its line in
`ARCHS` (custom Keras layers it needs go to train/archs/layers.py, or to a module of their own listed in
train/__init__.py's REGISTERING_MODULES, as Restormer's; a layer with whole-image statistics is made known to
tiled inference in train/inference/frame_stats.py). pipeline.yaml's `train.generator` accepts the settings of every
registered arch, chosen by `arch:`. Importing this package does not import Keras.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.errors import DataError, UsageError
from train.archs import deblurgan, nafnet, restormer
from train.archs.base import Arch, ArchSettings

ARCHS: dict[str, Arch] = {
    deblurgan.ARCH.name: deblurgan.ARCH,
    nafnet.ARCH.name: nafnet.ARCH,
    restormer.ARCH.name: restormer.ARCH,
}
DEFAULT_ARCH = deblurgan.ARCH.name


def get(name: str) -> Arch:
    """The registered arch `name`; UsageError naming the known ones otherwise."""
    try:
        return ARCHS[name]
    except KeyError:
        raise UsageError(f"unknown generator arch {name!r} (known: {', '.join(ARCHS)})") from None


def of(settings: ArchSettings) -> Arch:
    return get(settings.arch)


def build(
    settings: ArchSettings, dtype: Any = None, tlc_base: int | None = None, name: str = "generator"
) -> Any:
    """Build the generator `settings` describe."""
    return of(settings).build(settings, dtype=dtype, tlc_base=tlc_base, name=name)


def float32_copy(settings: ArchSettings, source: Any) -> Any:
    """A float32 generator with `source`'s weights: versions load and run fast on any machine, whatever the
    precision policy used in training."""
    clone = build(settings, dtype="float32", name=source.name)
    clone.set_weights(source.get_weights())
    return clone


@dataclass(frozen=True)
class ModelSpec:
    """What a saved version says about its model (meta.json `arch`): all inference needs besides the weights."""

    arch: str
    settings: dict[str, Any]
    stride: int
    min_size: int
    input_range: tuple[float, float]
    train_size: int | None = None  # the training crop (TLC's window is 1.5x it)
    global_statistics: bool = False
    context: int = 0  # receptive-field radius in input pixels (Arch.context): what tiles must overlap by

    def tlc_base(self) -> int | None:
        """TLC's window for this model, or None when it has no global statistics (or no known training size)."""
        if not self.global_statistics or not self.train_size:
            return None
        return nafnet.tlc_base(self.train_size)

    def tile_context(self, tlc: bool) -> int:
        """How much image around a pixel its output needs, for tiling: the receptive field, and with TLC also
        half the statistics window (in input pixels, plus a stride for its alignment at coarse scales), so every
        statistic window of a pixel a tile contributes lies inside that tile. What the windows' contents then
        still see of the tile border changes a random NAFNet by at most a grey level (tests/test_tiles.py)."""
        base = self.tlc_base() if tlc else None
        return self.context + (base // 2 + self.stride if base else 0)


def spec_from_meta(meta: dict[str, Any], where: str = "meta.json") -> ModelSpec:
    """The ModelSpec of a version; versions written before architectures were recorded are DeblurGAN's."""
    info = meta.get("arch")
    if info is None:
        context = deblurgan.context(deblurgan.DeblurGanSettings())
        return ModelSpec("deblurgan", {}, deblurgan.STRIDE, deblurgan.MIN_SIZE, (-1.0, 1.0), context=context)
    try:
        name, settings = str(info["name"]), dict(info.get("settings", {}))
        return ModelSpec(
            arch=name,
            settings=settings,
            stride=int(info["stride"]),
            min_size=int(info.get("min_size", info["stride"])),
            input_range=(float(info["input_range"][0]), float(info["input_range"][1])),
            train_size=int(info["train_size"]) if info.get("train_size") else None,
            global_statistics=bool(info.get("global_statistics", False)),
            context=int(info["context"]) if "context" in info else _context(name, settings, where),
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise DataError(f"{where}: unreadable `arch` entry ({exc.__class__.__name__}: {exc})") from None


def _context(name: str, settings: dict[str, Any], where: str) -> int:
    """The receptive-field radius of a version written before meta.json recorded it, from the registry."""
    from pydantic import ValidationError

    arch = get(name)
    try:
        return int(arch.context(arch.settings.model_validate(settings)))
    except ValidationError as exc:
        raise DataError(
            f"{where}: `arch.settings` do not fit arch {name!r}: {exc.errors()[0]['msg']}"
        ) from None


def with_tlc(spec: ModelSpec, model: Any) -> Any:
    """`model` rebuilt with test-time local statistics (same weights), or `model` itself when TLC does not
    apply to it."""
    base = spec.tlc_base()
    if base is None:
        return model
    settings = get(spec.arch).settings.model_validate(spec.settings)
    local = build(settings, dtype="float32", tlc_base=base, name=model.name)
    local.set_weights(model.get_weights())
    return local


__all__ = [
    "ModelSpec",
    "spec_from_meta",
    "with_tlc",
    "ARCHS",
    "DEFAULT_ARCH",
    "Arch",
    "ArchSettings",
    "build",
    "float32_copy",
    "get",
    "of",
]
