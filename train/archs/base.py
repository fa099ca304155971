"""What every generator architecture provides (`Arch`), its settings base class, and the value-range conversions.

An `Arch` is a registry entry (train/archs/__init__.py): it builds the Keras model from its settings section
(`train.generator` in pipeline.yaml), and knows the model's stride (height and width must be multiples of it),
its minimum size, the value range its input and output use, and its receptive field (how much tiles of a
large frame must overlap). A version's meta.json records all of it, so inference reads them from the version,
not from the code. This module and the arch modules import no Keras at module level: pipeline.yaml is validated
with their settings classes before TensorFlow loads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from train.archs.torch_layout import TorchNames

# The Keras registration package of our layers (train/archs/layers.py, restormer_layers.py): part of the saved-file
# format. Here, not in layers.py, so a layer module imported while Keras is still loading can read it.
PACKAGE = "gopro_deblur"

CANONICAL_RANGE = (-1.0, 1.0)  # what the data pipeline and the losses use


class ArchSettings(BaseModel):
    """A `train.generator` section: strict and immutable, like every pipeline.yaml section."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)

    arch: str


@dataclass(frozen=True)
class Arch:
    """One generator architecture.

    build(settings, dtype, tlc_base) -> keras.Model taking and returning images in `input_range`, NHWC RGB;
    `dtype` is a Keras dtype policy for every layer but the float32 head (None: the global policy);
    `tlc_base` (None: off) is the test-time local statistics window in input pixels, for archs that have
    global statistics (see train/archs/nafnet.py).
    shape_keys(settings) -> the settings that fix the weights' shapes (a resumed run may not change them).
    context(settings) -> the receptive-field radius in input pixels: how far on each side of an output pixel
    the input can change it through the layers' kernels (strides, upsamplings and paddings included; sum the
    per-layer bounds below). Statistics over the whole image (instance norm, global pools) are not counted:
    tiled inference computes them over the whole frame first, and TLC makes them local. Tiles keep this much
    real image around every pixel they contribute, so a tiled frame equals the whole one (tiling.py).
    """

    name: str
    settings: type[ArchSettings]
    build: Callable[..., Any]
    stride: Callable[[Any], int]
    min_size: Callable[[Any], int]
    input_range: tuple[float, float]
    shape_keys: Callable[[Any], dict[str, Any]]
    context: Callable[[Any], int]
    has_global_statistics: bool = False  # a global pool whose statistics TLC makes local
    torch: TorchNames | None = (
        None  # the reference code's checkpoint names (import-weights, safetensors export)
    )

    def describe(self, settings: Any, train_size: int) -> dict[str, Any]:
        """The `arch` entry of a version's meta.json: everything inference needs to run the saved model."""
        return {
            "name": self.name,
            "settings": settings.model_dump(mode="json"),
            "stride": int(self.stride(settings)),
            "min_size": int(self.min_size(settings)),
            "input_range": list(self.input_range),
            "train_size": int(train_size),
            "global_statistics": self.has_global_statistics,
            "context": int(self.context(settings)),
        }


# Receptive-field bounds of single layers, in input pixels, for `Arch.context`: `jump` is the input pixels per
# pixel of the layer's input (its output's for an upsampling). TensorFlow's "same" padding of a stride-s conv
# on a size divisible by s puts (k - s) // 2 pixels before, so a 3x3 stride-2 conv reads offsets 0..2.


def conv_reach(kernel: int, stride: int = 1, jump: int = 1) -> int:
    """How far a k x k conv reads from its output pixel's position: (k - 1) // 2 centred, k - 1 when strided
    (the window starts at the pixel and extends one way), times `jump`."""
    return (kernel - 1 if stride > 1 else (kernel - 1) // 2) * jump


def upsample_reach(factor: int, jump: int) -> int:
    """Nearest / pixel-shuffle upsampling by `factor`: output pixel i reads input pixel i // factor, up to
    factor - 1 output pixels (of `jump` input pixels) away."""
    return (factor - 1) * jump


def to_range(x: Any, src: tuple[float, float], dst: tuple[float, float]) -> Any:
    """Map values linearly from range `src` to range `dst` (works on numpy arrays and tensors alike)."""
    if tuple(src) == tuple(dst):
        return x
    scale = (dst[1] - dst[0]) / (src[1] - src[0])
    return (x - src[0]) * scale + dst[0]
