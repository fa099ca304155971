"""`pad: reflect|zero`: how a frame is padded to the model's stride, checked on pixels, through every path."""

from __future__ import annotations

import numpy as np
import pytest
from test_deblurrer import loaded, random_weights, smooth_image
from typer.testing import CliRunner

from train import archs
from train.archs import nafnet
from train.inference.deblurrer import Deblurrer

UNIT_SPEC = archs.ModelSpec("nafnet", {}, stride=16, min_size=16, input_range=(0.0, 1.0))


def box_model():
    """A 3x3 mean filter (Keras zero padding at the padded frame's border): an output pixel at the frame's
    edge shows what the padding put beyond it."""
    import keras

    inputs = keras.Input(shape=(None, None, 3))
    conv = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="box")
    outputs = conv(inputs)
    conv.set_weights([np.full((3, 3, 3, 1), 1 / 9, np.float32)])
    return keras.Model(inputs, outputs)


def box_mean(padded: np.ndarray) -> np.ndarray:
    z = np.pad(padded, ((1, 1), (1, 1), (0, 0)))
    h, w = padded.shape[:2]
    return sum(z[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)) / 9


@pytest.mark.parametrize("pad", ["reflect", "zero"])
def test_the_frame_is_padded_as_asked_at_the_bottom_and_right(pad: str) -> None:
    img = smooth_image(61, 83, seed=1).astype(np.float32) / 255  # padded to 64 x 96 for stride 16
    out = Deblurrer(loaded(box_model(), UNIT_SPEC), pad=pad).restore(img)
    mode = "reflect" if pad == "reflect" else "constant"
    expected = box_mean(np.pad(img, ((0, 3), (0, 13), (0, 0)), mode=mode))[:61, :83]
    np.testing.assert_allclose(out, np.clip(expected, 0, 1), atol=1e-6)
    other = Deblurrer(loaded(box_model(), UNIT_SPEC), pad="zero" if pad == "reflect" else "reflect").restore(
        img
    )
    assert np.abs(out[-1] - other[-1]).max() > 0.05  # the last row sees the padding: the modes differ there
    np.testing.assert_allclose(out[:-1, :-1], other[:-1, :-1], atol=1e-6)  # and nowhere else


def test_zero_padding_is_zero_in_the_models_value_range() -> None:
    """For a model in [-1, 1], `zero` pads with 0 there (mid-grey in [0, 1]), as the reference code's F.pad does
    on its own input tensor."""
    spec = archs.ModelSpec("deblurgan", {}, stride=4, min_size=8, input_range=(-1.0, 1.0))
    img = np.zeros((33, 33, 3), np.float32)  # black: -1 in the model's range, padded to 36 x 36 with 0
    out = Deblurrer(loaded(box_model(), spec), pad="zero").restore(img)
    # the corner pixel averages 4 black pixels (-1), 2 padded rows/columns of 0 and the Keras border (0)
    assert out[-1, -1, 0] == pytest.approx(((-4 / 9) + 1) / 2, abs=1e-6)


def test_tiles_agree_with_the_whole_frame_under_zero_padding() -> None:
    settings = nafnet.NafNetSettings(width=4, enc_blocks=(1, 1), middle_blocks=1, dec_blocks=(1, 1))
    model = random_weights(nafnet.build(settings, dtype="float32"), seed=4, scale=0.2)
    spec = archs.spec_from_meta({"arch": nafnet.ARCH.describe(settings, train_size=16)})
    img = smooth_image(301, 419, seed=6)
    whole = Deblurrer(loaded(model, spec), pad="zero")(img).astype(np.float32)
    tiled = Deblurrer(loaded(model, spec), tile=192, overlap=88, pad="zero")(img).astype(np.float32)
    reflect = Deblurrer(loaded(model, spec))(img).astype(np.float32)
    assert np.abs(tiled - whole).max() <= 2 and np.abs(tiled - whole).mean() < 0.05
    assert np.abs(reflect - whole).max() > 2  # the global mean sees the padding: zero is not reflect


def test_an_unknown_pad_is_one_line_and_exit_2(tmp_path) -> None:
    from train.cli import app

    result = CliRunner().invoke(app, ["deblur", str(tmp_path), "--out", str(tmp_path / "o"), "--pad", "edge"])
    assert result.exit_code == 2
    assert result.output == "error: --pad edge: unknown padding (use reflect or zero)\n"
