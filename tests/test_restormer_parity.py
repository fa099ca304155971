"""Restormer's published-weights path against the reference code (tests/golden/restormer_d8.*, made with
swz30/Restormer's `restormer_arch.py`, see tests/golden/README.md): `trainctl import-weights` recognizes the
checkpoint, the imported version reproduces the reference outputs through `Deblurrer`, its SavedModel and TFLite
exports stay within one level, and `export --format safetensors` gives back the reference tensors bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from safetensors.numpy import load_file
from typer.testing import CliRunner

from train.cli import app
from train.inference import export
from train.inference.deblurrer import Deblurrer
from train.run.versions import load_generator, read_meta

GOLDEN = Path(__file__).resolve().parent / "golden"
TOLERANCE = 1e-4  # float32, as for NAFNet
runner = CliRunner()


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN / "restormer_d8.npz", allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("import") / "restormer"
    result = runner.invoke(app, ["import-weights", str(GOLDEN / "restormer_d8.pth"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "as restormer dim=8" in result.output and "208,225 parameters" in result.output
    return out / "generator" / "v0001"


def test_settings_are_recognized_from_the_checkpoint(imported: Path, golden: dict[str, np.ndarray]) -> None:
    meta = read_meta(imported)
    assert meta["arch"]["name"] == "restormer" and meta["imported"] == "pytorch"
    assert meta["arch"]["settings"] == {"arch": "restormer", **json.loads(str(golden["settings"]))}
    assert meta["source"]["tensors"] == 98 and meta["source"]["key"] == "params"


@pytest.mark.parametrize("name", ["plain", "rect"])
def test_outputs_match_the_reference(imported: Path, golden: dict[str, np.ndarray], name: str) -> None:
    x, want = golden[f"input_{name}"], golden[f"output_{name}"]
    raw = load_generator(imported)(x, training=False).numpy()  # before the [0, 1] clip inference applies
    assert np.abs(raw - want).max() <= TOLERANCE
    d = Deblurrer(str(imported))
    got = np.stack([d.restore(frame) for frame in x])
    assert np.abs(got - np.clip(want, 0, 1)).max() <= TOLERANCE


def test_savedmodel_and_tflite_stay_within_one_level(
    imported: Path, golden: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """On the uint8 frame, against the Keras model that carries the reference weights (checked above)."""
    frame = np.rint(golden["input_rect"] * 255).astype(np.uint8)
    want = Deblurrer(str(imported))(frame[0]).astype(int)
    export.run(imported, tmp_path / "sm")
    serve = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    got = serve(images=tf.constant(frame))["deblurred"].numpy()[0].astype(int)
    assert np.abs(got - want).max() <= 1
    path = export.run(imported, tmp_path / "tfl", fmt="tflite")
    runner_ = tf.lite.Interpreter(model_path=path).get_signature_runner("serving_default")
    got = runner_(images=frame)["deblurred"][0].astype(int)
    assert np.abs(got - want).max() <= 1


def test_safetensors_export_is_the_reference_state_dict_and_imports_back_bit_for_bit(
    imported: Path, golden: dict[str, np.ndarray], tmp_path: Path
) -> None:
    out = tmp_path / "st"
    result = runner.invoke(
        app, ["export", "--model", str(imported), "--format", "safetensors", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    tensors = load_file(str(out / "generator.safetensors"))
    reference = {k[2:]: v for k, v in golden.items() if k.startswith("w/")}
    assert sorted(tensors) == sorted(reference)
    for name, value in reference.items():
        assert tensors[name].shape == value.shape and np.array_equal(tensors[name], value), name
    back = tmp_path / "back"
    result = runner.invoke(app, ["import-weights", str(out / "generator.safetensors"), "--out", str(back)])
    assert result.exit_code == 0, result.output
    again = load_generator(back / "generator" / "v0001").get_weights()
    for a, b in zip(again, load_generator(imported).get_weights(), strict=True):
        assert np.array_equal(a, b)
