"""`trainctl export`: SavedModel, TFLite (float32 / float16) and Keras exports deblur like the Keras model, at odd
sizes, for every architecture (NAFNet with TLC, as evaluate and deblur run it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from fault_helpers import ROOT, env
from test_deblurrer import random_weights
from typer.testing import CliRunner

from train import archs
from train.archs import deblurgan, nafnet, restormer
from train.cli import app
from train.inference import export
from train.inference.deblurrer import Deblurrer
from train.run.versions import write_version

runner = CliRunner()
ARCHS = {
    "deblurgan": deblurgan.DeblurGanSettings(filters=4, blocks=1, dropout=0.0),
    "nafnet": nafnet.NafNetSettings(width=4, enc_blocks=(1, 1), middle_blocks=1, dec_blocks=(1, 1)),
    "restormer": restormer.RestormerSettings(
        dim=4, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1, heads=(1, 2, 2, 4)
    ),
}


def arch_version(run_dir: Path, name: str, seed: int = 4) -> Path:
    """A version with random weights (an untrained generator is near the identity) and its arch in meta.json."""
    settings = ARCHS[name]
    model = random_weights(archs.build(settings, dtype="float32"), seed=seed)
    meta = {"step": 42, "arch": archs.of(settings).describe(settings, train_size=16)}
    return Path(write_version(run_dir, model, meta))


@pytest.fixture(scope="module", params=sorted(ARCHS))
def version(request, tmp_path_factory) -> Path:
    return arch_version(tmp_path_factory.mktemp(f"run_{request.param}"), request.param)


def _images(n: int, h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_savedmodel_round_trip_matches_the_deblurrer(tmp_path: Path, version: Path) -> None:
    out = tmp_path / "export"
    result = runner.invoke(app, ["export", "--model", str(version), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "serving_default" in result.output
    meta = json.loads((out / "meta.json").read_text())
    assert meta["step"] == 42 and meta["export"]["format"] == "savedmodel"
    assert meta["export"]["tlc"] is (meta["arch"]["name"] == "nafnet")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left
    serve = tf.saved_model.load(str(out)).signatures["serving_default"]
    _, inputs = serve.structured_input_signature
    assert inputs["images"].dtype == tf.uint8 and inputs["images"].shape.as_list() == [None, None, None, 3]
    d = Deblurrer(str(version))
    for n, h, w in ((2, 37, 53), (1, 64, 64), (1, 1, 5)):  # odd sizes, a stride multiple, a sliver
        batch = _images(n, h, w, seed=h)
        got = serve(images=tf.constant(batch))["deblurred"].numpy()
        assert got.dtype == np.uint8 and got.shape == batch.shape
        want = np.stack([d(img) for img in batch])
        assert np.abs(got.astype(int) - want).max() <= 1  # the same function; float rounding only


def test_tflite_float32_and_float16_match_the_keras_model(tmp_path: Path, version: Path, capsys) -> None:
    d = Deblurrer(str(version))
    image = _images(1, 37, 53, seed=3)
    want = d(image[0]).astype(int)
    for float16 in (False, True):
        path = export.run(version, tmp_path / f"tfl{int(float16)}", fmt="tflite", float16=float16)
        runner_ = tf.lite.Interpreter(model_path=path).get_signature_runner("serving_default")
        got = runner_(images=image)["deblurred"][0].astype(int)
        diff = np.abs(got - want)
        print(f"tflite float16={float16}: max {diff.max()}, mean {diff.mean():.4f} levels")
        assert got.shape == want.shape
        assert diff.max() <= (4 if float16 else 1)  # float32: the same function; float16: reported, bounded
    assert json.loads((tmp_path / "tfl1" / "meta.json").read_text())["export"]["float16"] is True


def test_keras_export_loads_with_import_train_and_runs_like_the_version(
    tmp_path: Path, version: Path
) -> None:
    path = export.run(version, tmp_path / "k", fmt="keras")
    meta = json.loads((tmp_path / "k" / "meta.json").read_text())
    lo, hi = meta["arch"]["input_range"]
    x = np.random.default_rng(0).uniform(0, 1, (1, 32, 48, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x * (hi - lo) + lo)
    code = (
        "import sys, numpy as np, train, keras; m = keras.saving.load_model(sys.argv[1]); "
        "np.save(sys.argv[3], m(np.load(sys.argv[2])).numpy())"
    )
    args = [path, str(tmp_path / "x.npy"), str(tmp_path / "y.npy")]
    done = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, env=env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    y = (np.load(tmp_path / "y.npy") - lo) / (hi - lo)
    want = Deblurrer(str(version)).restore(x[0])
    np.testing.assert_allclose(np.clip(y[0], 0, 1), want, atol=1e-5)


def test_reexport_replaces_and_foreign_folder_is_refused(tmp_path: Path) -> None:
    version = arch_version(tmp_path / "run", "deblurgan")
    out = tmp_path / "export"
    export.run(version, out)
    (out / "stale.txt").write_text("from the previous export")
    export.run(version, out)
    assert (out / "saved_model.pb").is_file() and not (out / "stale.txt").exists()
    foreign = tmp_path / "docs"
    foreign.mkdir()
    (foreign / "notes.md").write_text("mine")
    result = runner.invoke(app, ["export", "--model", str(version), "--out", str(foreign)])
    assert result.exit_code == 2 and "is not a SavedModel; refusing" in result.output
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.md"]
    result = runner.invoke(app, ["export", "--model", str(tmp_path), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "not a generator version dir" in result.output
    result = runner.invoke(
        app, ["export", "--model", str(version), "--out", str(tmp_path / "y"), "--format", "onnx"]
    )
    assert (
        result.exit_code == 2
        and "--format onnx: unknown (use savedmodel, tflite, keras, safetensors)" in result.output
    )
