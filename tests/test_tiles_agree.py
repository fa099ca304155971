"""Issue 19, defect 3: tiled inference agrees with the whole frame within one grey level at every tile size a
model accepts, because tiles overlap by the model's receptive field (its arch's `context`); a smaller tile is
refused naming the smallest. 700x400 photo-like image, random-weight DeblurGAN, NAFNet and Restormer."""

from __future__ import annotations

import numpy as np
import pytest
from test_deblurrer import loaded, random_weights, smooth_image
from tiny_generators import random_deblurgan, random_nafnet

from pipeline.errors import UsageError
from train import archs
from train.archs import deblurgan, nafnet, restormer
from train.inference import tiling
from train.inference.deblurrer import Deblurrer

H, W = 400, 700


def _model(name: str):
    """(model, spec, tlc) of a random-weight generator; NAFNet as trained on 64 px crops (TLC window 96)."""
    if name == "deblurgan":
        settings = deblurgan.DeblurGanSettings(filters=4, blocks=1, dropout=0.0)
        return (
            random_deblurgan(4, 1),
            archs.spec_from_meta({"arch": deblurgan.ARCH.describe(settings, 64)}),
            False,
        )
    if name == "restormer":  # channel attention over all pixels: frame statistics, like NAFNet's global pool
        settings = restormer.RestormerSettings(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1)
        model = random_weights(archs.build(settings, dtype="float32"), seed=3, scale=0.05)
        return model, archs.spec_from_meta({"arch": restormer.ARCH.describe(settings, 64)}), False
    model, settings = random_nafnet()
    spec = archs.spec_from_meta({"arch": nafnet.ARCH.describe(settings, 64)})
    tlc = name == "nafnet-tlc"
    return (archs.with_tlc(spec, model) if tlc else model), spec, tlc


def _accepted_sizes(smallest: int, stride: int) -> list[int]:
    """The smallest tile, the next one, a middle one and the largest that still cuts the frame."""
    largest = (tiling.padded_size(W, stride) - 1) // stride * stride
    return sorted({smallest, smallest + stride, (smallest + largest) // 2 // stride * stride, largest})


@pytest.mark.slow
@pytest.mark.parametrize("name", ["deblurgan", "nafnet-global-statistics", "nafnet-tlc", "restormer"])
def test_tiles_agree_with_the_whole_frame_at_every_accepted_size(name: str) -> None:
    model, spec, tlc = _model(name)
    img = smooth_image(H, W, seed=5)
    whole = Deblurrer(loaded(model, spec, tlc))(img).astype(np.int16)
    assert np.abs(whole - img).mean() > 10  # the model really changes the image
    context = spec.tile_context(tlc)
    smallest = tiling.min_tile(context, spec.stride)
    for tile in _accepted_sizes(smallest, spec.stride):
        d = Deblurrer(loaded(model, spec, tlc), tile=tile)
        assert len(d.plan(H, W).tiles) > 1
        diff = np.abs(d(img).astype(np.int16) - whole)
        assert diff.max() <= 1, (name, tile, int(diff.max()), int((diff > 1).sum()))
    with pytest.raises(
        UsageError, match=rf"^--tile {smallest - spec.stride}: .* the smallest is {smallest}$"
    ):
        Deblurrer(loaded(model, spec, tlc), tile=smallest - spec.stride)


def test_context_per_arch_and_settings() -> None:
    """The receptive-field radius grows with the blocks at each scale; it bounds what an impulse reaches
    (measured on random weights with statistics held fixed: DeblurGAN 15 + 8 per block, NAFNet below its
    bound), and sets the smallest tile. The published models: DeblurGAN 90 px (smallest tile 404), NAFNet-32
    294 px, 502 with TLC for 256 px training crops: tiles of at least 2128 px, so that is its default tile."""
    gan = deblurgan.DeblurGanSettings
    assert [deblurgan.context(gan(blocks=b)) for b in (0, 1, 9)] == [18, 26, 90]
    gopro = nafnet.NafNetSettings()
    assert nafnet.context(gopro) == 294 and nafnet.context(nafnet.NafNetSettings(width=64)) == 294
    small = nafnet.NafNetSettings(width=4, enc_blocks=(1, 1), middle_blocks=1, dec_blocks=(1, 1))
    assert nafnet.context(small) == 18
    spec = archs.spec_from_meta({"arch": nafnet.ARCH.describe(gopro, 256)})
    assert (
        spec.context == 294 and spec.tile_context(False) == 294 and spec.tile_context(True) == 294 + 192 + 16
    )
    assert tiling.default_tile(spec.tile_context(True), 16) == 2128
    legacy = archs.spec_from_meta({})  # a version from before meta.json recorded its arch: DeblurGAN defaults
    assert legacy.context == 90 and tiling.default_tile(90, 4) == tiling.DEFAULT_TILE == 2048
    assert tiling.min_tile(90, 4) == 404
    recorded = deblurgan.ARCH.describe(gan(blocks=3), 256)
    assert recorded["context"] == 42  # meta.json records it; an older meta.json gets it from the registry
    del recorded["context"]
    assert archs.spec_from_meta({"arch": recorded}).context == 42
