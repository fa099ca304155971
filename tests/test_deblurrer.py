"""train.inference.Deblurrer: any size, tiles that agree with the whole frame (full-frame statistics, TLC), images
kept gray / RGBA / 16-bit, and the x8 self-ensemble."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from tiny_generators import identity_generator, local_generator

from train import archs
from train.archs import deblurgan, nafnet
from train.inference.deblurrer import Deblurrer, Loaded
from train.inference.tiling import Blender, tile_input

DEFAULT_SPEC = archs.spec_from_meta({})  # a version without `arch`: DeblurGAN's stride 4 and [-1, 1]
POINTWISE_SPEC = replace(DEFAULT_SPEC, context=0)  # identity_generator: a 1x1 conv
LOCAL_SPEC = replace(DEFAULT_SPEC, context=2)  # local_generator: two 3x3 convs


def smooth_image(h: int, w: int, seed: int, dtype: type = np.uint8) -> np.ndarray:
    """A textured RGB image (coarse noise, upsampled), like a photo rather than white noise."""
    import cv2

    small = np.random.default_rng(seed).uniform(0, 1, (h // 8 + 2, w // 8 + 2, 3)).astype(np.float32)
    unit = np.clip(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1)
    scale = {np.uint8: 255, np.uint16: 65535}.get(dtype, 1)
    return np.rint(unit * scale).astype(dtype) if scale > 1 else unit.astype(dtype)


def loaded(model: object, spec: archs.ModelSpec = DEFAULT_SPEC, tlc: bool = False) -> Loaded:
    return Loaded(model, spec, tlc, {"version": "test"}, "test")


def random_weights(model: object, seed: int, scale: float = 0.1) -> object:
    rng = np.random.default_rng(seed)
    model.set_weights([w + rng.normal(0, scale, w.shape).astype(w.dtype) for w in model.get_weights()])  # type: ignore[attr-defined]
    return model


@pytest.mark.parametrize(("h", "w"), [(64, 64), (333, 517), (1, 1), (7, 30)])
def test_identity_model_returns_the_input_at_any_size(h: int, w: int) -> None:
    d = Deblurrer(loaded(identity_generator()))
    img = smooth_image(h, w, seed=h * w)
    np.testing.assert_array_equal(d(img), img)
    np.testing.assert_array_equal(Deblurrer(loaded(identity_generator(), POINTWISE_SPEC), tile=64)(img), img)


def test_local_model_tiles_match_the_whole_frame() -> None:
    """A model with a 2-pixel receptive field: tiles agree with the whole frame up to float rounding."""
    img = smooth_image(700, 1100, seed=7)
    whole = Deblurrer(loaded(local_generator(seed=1)))(img)
    tiled = Deblurrer(loaded(local_generator(seed=1), LOCAL_SPEC), tile=256)(img)
    assert not np.array_equal(whole, img)
    diff = np.abs(whole.astype(np.int16) - tiled.astype(np.int16))
    assert diff.max() <= 1 and diff.mean() < 1e-3


def per_tile_statistics(d: Deblurrer, rgb01: np.ndarray) -> np.ndarray:
    """What tiling gave before full-frame statistics: every tile normalized by its own statistics."""
    plan = d.plan(*rgb01.shape[:2])
    blender = Blender(plan, 3)
    for t in plan.tiles:
        blender.add(t, d._unit(tile_input(rgb01, t)[None]).numpy()[0])
    return blender.result()


def test_deblurgan_tiles_agree_with_the_whole_frame_through_full_frame_statistics() -> None:
    settings = deblurgan.DeblurGanSettings(filters=4, blocks=2, dropout=0.0)
    model = random_weights(deblurgan.build(settings, dtype="float32"), seed=3)
    spec = archs.spec_from_meta({"arch": deblurgan.ARCH.describe(settings, 64)})
    img = smooth_image(400, 600, seed=5)
    whole = Deblurrer(loaded(model, spec))(img).astype(np.float32)
    tiled_d = Deblurrer(loaded(model, spec), tile=256, overlap=96)  # receptive radius 34: 88 would do
    tiled = tiled_d(img).astype(np.float32)
    naive = np.rint(per_tile_statistics(tiled_d, img.astype(np.float32) / 255) * 255)
    assert len(tiled_d.plan(400, 600).tiles) == 8
    assert np.abs(tiled - whole).mean() < 0.05 and np.abs(tiled - whole).max() <= 2
    assert np.abs(naive - whole).mean() > 1.0  # the error full-frame statistics remove


SMALL_NAFNET = nafnet.NafNetSettings(width=4, enc_blocks=(1, 1), middle_blocks=1, dec_blocks=(1, 1))


@pytest.mark.parametrize("tlc", [True, False], ids=["tlc", "global-statistics"])
def test_nafnet_tiles_agree_with_the_whole_frame(tlc: bool) -> None:
    """With TLC the statistics are local (a 24 px window here) and fit inside a tile; without it the global mean
    pool is computed over the whole frame first. Either way tiles agree with the whole frame."""
    model = random_weights(nafnet.build(SMALL_NAFNET, dtype="float32"), seed=4, scale=0.2)
    spec = archs.spec_from_meta({"arch": nafnet.ARCH.describe(SMALL_NAFNET, train_size=16)})
    local = archs.with_tlc(spec, model) if tlc else model
    img = smooth_image(300, 420, seed=6)
    whole = Deblurrer(loaded(local, spec, tlc))(img).astype(np.float32)
    tiled = Deblurrer(loaded(local, spec, tlc), tile=192, overlap=88)(img).astype(np.float32)
    assert np.abs(tiled - whole).mean() < 0.05 and np.abs(tiled - whole).max() <= 2


def test_gray_rgba_and_16_bit_images_keep_their_layout() -> None:
    d = Deblurrer(loaded(local_generator(seed=2)))
    rgb = smooth_image(40, 56, seed=8)
    gray = rgb[:, :, 0]
    out = d(gray)
    assert out.shape == gray.shape and out.dtype == np.uint8
    # Deblurred as RGB (the gray replicated), then the luminance of the float output, rounded once.
    through_rgb = d.restore(np.repeat(gray[:, :, None], 3, axis=2).astype(np.float32) / 255)
    luma = np.clip(through_rgb @ np.array([0.299, 0.587, 0.114], np.float32), 0, 1)
    np.testing.assert_array_equal(out, np.rint(luma * 255).astype(np.uint8))
    alpha = np.random.default_rng(1).integers(0, 256, (40, 56), dtype=np.uint8)
    rgba = d(np.dstack([rgb, alpha]))
    assert rgba.shape == (40, 56, 4)
    np.testing.assert_array_equal(rgba[:, :, 3], alpha)  # untouched
    np.testing.assert_array_equal(rgba[:, :, :3], d(rgb))
    # 16 bit: processed in float, never rounded to 8 bit on the way (the identity gives every level back).
    deep = smooth_image(40, 56, seed=9, dtype=np.uint16)
    assert np.any(deep % 257)  # levels an 8-bit round trip would lose
    same = Deblurrer(loaded(identity_generator()))(deep)
    assert same.dtype == np.uint16
    np.testing.assert_array_equal(same, deep)
    floats = Deblurrer(loaded(identity_generator()))(deep.astype(np.float32) / 65535)
    assert floats.dtype == np.float32 and np.abs(floats - deep / 65535).max() < 1e-6


def test_self_ensemble_averages_the_eight_flips_and_transposes() -> None:
    model = local_generator(seed=3)
    x = smooth_image(36, 52, seed=10).astype(np.float32) / 255
    plain, ensemble = Deblurrer(loaded(model)), Deblurrer(loaded(model), ensemble=True)
    outs = []
    for k in range(8):
        t = x[::-1] if k & 1 else x
        t = t[:, ::-1] if k & 2 else t
        t = t.transpose(1, 0, 2) if k & 4 else t
        y = plain.restore(np.ascontiguousarray(t))
        y = y.transpose(1, 0, 2) if k & 4 else y
        y = y[:, ::-1] if k & 2 else y
        outs.append(y[::-1] if k & 1 else y)
    np.testing.assert_allclose(ensemble.restore(x), np.mean(outs, axis=0), atol=1e-5)
    assert (
        np.abs(ensemble.restore(x) - plain.restore(x)).max() > 1e-3
    )  # not flip-invariant: it changes things
    assert ensemble.settings["ensemble"] is True and "x8 self-ensemble" in ensemble.describe()


def _seam_generator() -> object:
    """The project's DeblurGAN generator (8 filters, 2 blocks) with a random tail conv whose 7x7 kernels are
    Gaussian-weighted (sigma 1.5): it changes a photo by tens of grey levels with a residual smooth enough that a
    discontinuity stands out, and it sees 34 px around each pixel."""
    import keras

    keras.utils.set_random_seed(4)
    model = deblurgan.build(deblurgan.DeblurGanSettings(filters=8, blocks=2, dropout=0.0))
    tail = model.get_layer("tail_conv")
    kernel, bias = tail.get_weights()
    k = np.arange(7) - 3
    window = np.exp(-(k[:, None] ** 2 + k[None, :] ** 2) / (2 * 1.5**2))
    mixing = np.random.default_rng(4).normal(0, 0.4, kernel.shape[2:])
    tail.set_weights([(window[:, :, None, None] / window.sum() * mixing).astype(np.float32), bias])
    return model


def test_tiles_of_a_real_generator_show_no_seam_because_they_overlap_by_its_receptive_field() -> None:
    """480x480 photo-like image in 256 px tiles vs the whole image. With the overlap the arch's receptive field
    asks for (34 px: 36 px margins), every pixel a tile contributes saw only real image: tiles agree within a
    level. Told a smaller receptive field (8 px), the tiles' borders show, which is what the derivation is for."""
    settings = deblurgan.DeblurGanSettings(filters=8, blocks=2, dropout=0.0)
    spec = archs.spec_from_meta({"arch": deblurgan.ARCH.describe(settings, 256)})
    assert spec.context == 34
    model = _seam_generator()
    img = smooth_image(480, 480, seed=5)
    whole = Deblurrer(loaded(model, spec))(img).astype(np.int16)
    assert np.abs(whole - img).mean() > 10  # the model really changes the image
    tiled_d = Deblurrer(loaded(model, spec), tile=256)
    assert len(tiled_d.plan(480, 480).tiles) == 9  # 3 x 3: starts 0, 168, 224
    assert np.abs(tiled_d(img).astype(np.int16) - whole).max() <= 1
    short = np.abs(Deblurrer(loaded(model, replace(spec, context=8)), tile=256)(img).astype(np.int16) - whole)
    assert short.max() > 2, short.max()
