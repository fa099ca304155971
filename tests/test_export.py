"""`trainctl export`: a SavedModel whose serving signature deblurs uint8 images of any size like the Keras model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tiny_generators import local_generator, random_deblurgan, save_version
from typer.testing import CliRunner

from train import deblur, export
from train.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def version(tmp_path_factory) -> Path:
    return save_version(tmp_path_factory.mktemp("run"), local_generator(seed=4), step=42)


def _images(n: int, h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_round_trip_matches_keras_model(tmp_path: Path, version: Path) -> None:
    out = tmp_path / "export"
    result = runner.invoke(app, ["export", "--model", str(version), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "serving_default" in result.output
    assert json.loads((out / "meta.json").read_text())["step"] == 42
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left

    loaded = tf.saved_model.load(str(out))
    serve = loaded.signatures["serving_default"]
    _, inputs = serve.structured_input_signature
    assert inputs["images"].dtype == tf.uint8 and inputs["images"].shape.as_list() == [None, None, None, 3]

    predict = deblur.make_predict(local_generator(seed=4))
    for n, h, w in ((2, 37, 53), (1, 64, 64), (1, 1, 5)):  # odd sizes, a stride multiple, a sliver
        batch = _images(n, h, w, seed=h)
        got = serve(images=tf.constant(batch))["deblurred"].numpy()
        assert got.dtype == np.uint8 and got.shape == batch.shape
        want = np.stack([deblur.deblur_image(predict, img, stride=4) for img in batch])
        np.testing.assert_array_equal(got, want)


def test_reexport_replaces_and_foreign_folder_is_refused(tmp_path: Path, version: Path) -> None:
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


def test_project_generator_exports(tmp_path: Path) -> None:
    """The DeblurGAN generator (custom layers, instance norm; random weights) serves any size through the
    SavedModel as the Keras model computes it."""
    model = random_deblurgan(filters=4, blocks=1, seed=2)
    out = export.run(save_version(tmp_path / "run", model), tmp_path / "export")
    serve = tf.saved_model.load(str(out)).signatures["serving_default"]
    batch = _images(1, 50, 70, seed=5)
    got = serve(images=tf.constant(batch))["deblurred"].numpy()
    want = deblur.deblur_image(deblur.make_predict(model), batch[0], stride=4)
    assert np.abs(want.astype(np.int16) - batch[0]).mean() > 5  # the model really changes the image
    assert got.shape == batch.shape
    worst = int(np.abs(got[0].astype(np.int16) - want).max())
    assert worst <= 1, worst
