"""A Restormer through every command: `trainctl fit` from a config file, `evaluate`, `deblur` of an image (tiled,
with full-frame attention) and of a video, and `train.init_from` into a new run (the export formats are in
tests/test_export.py, the published weights in tests/test_restormer_parity.py)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from shards_fixture import write_shards
from test_deblurrer import smooth_image
from test_video import read_clip, write_clip
from typer.testing import CliRunner

from train.cli import app
from train.inference import images, tiling
from train.inference.deblurrer import Deblurrer
from train.run import versions

pytestmark = pytest.mark.slow  # end-to-end: a fit, then every command on its version
runner = CliRunner()
RESTORMER = {
    "arch": "restormer",
    "dim": 4,
    "num_blocks": [1, 1, 1, 1],
    "num_refinement_blocks": 1,
    "heads": [1, 2, 2, 4],
}


def write_config(path: Path, shards: Path, run_dir: Path, organized: Path, **train: object) -> Path:
    train_section = {
        "data": str(shards),
        "run_dir": str(run_dir),
        "batch_size": 2,
        "crop_size": 32,
        "steps": 3,
        "mixed_precision": "float32",
        "generator": RESTORMER,
        "loss": {"perceptual": 0.0, "adversarial": 0.0, "pixel": 1.0, "perceptual_weights": "none"},
        "optimizer": {
            "name": "adamw",
            "lr": 3e-4,
            "weight_decay": 1e-4,
            "beta_1": 0.9,
            "beta_2": 0.999,
            "clip_norm": 0.01,
        },
        "checkpoint_every": 3,
        "version_every": 3,
        "log_every": 1,
        **train,
    }
    path.write_text(yaml.safe_dump({"train": train_section, "evaluate": {"src": str(organized)}}))
    return path


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shards(tmp_path_factory.mktemp("restormer_shards"), pairs=4, crop_size=40, crops_per_pair=2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, shards: Path, organized_dir: Path) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("restormer")
    config = write_config(root / "pipeline.yaml", shards, root / "run", organized_dir)
    result = runner.invoke(app, ["fit", str(config)])
    assert result.exit_code == 0, result.output
    return config, root / "run"


def test_fit_writes_a_restormer_version(trained: tuple[Path, Path]) -> None:
    _, run_dir = trained
    meta = versions.read_meta(versions.resolve_version(run_dir, "latest"))
    assert meta["step"] == 3 and meta["arch"]["name"] == "restormer" and meta["arch"]["stride"] == 8
    assert meta["arch"]["settings"]["heads"] == [1, 2, 2, 4] and meta["arch"]["global_statistics"] is False


def test_evaluate_scores_the_version(trained: tuple[Path, Path]) -> None:
    config, _ = trained
    result = runner.invoke(app, ["evaluate", str(config)])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["pairs"] == 3 and 10 < printed["psnr_input"] < 60 and 10 < printed["psnr"] < 60
    assert "tlc" not in printed.get("settings", {})  # no test-time local variant for Restormer


def test_deblur_tiles_an_image_and_runs_a_video(trained: tuple[Path, Path], tmp_path: Path) -> None:
    _, run_dir = trained
    whole_d = Deblurrer(str(run_dir))
    smallest = tiling.min_tile(whole_d.context, whole_d.spec.stride)  # tiles overlap by the receptive field
    src = tmp_path / "in" / "odd.png"
    src.parent.mkdir()
    image = smooth_image(smallest - 5, smallest + 37, seed=12)
    cv2.imwrite(str(src), image[:, :, ::-1])
    frames = [np.ascontiguousarray(smooth_image(48, 64, seed=20 + i)) for i in range(3)]  # one tile each
    clip = write_clip(tmp_path / "in" / "clip.avi", frames, 10, "mjpeg", "yuvj420p")
    out = tmp_path / "out"
    args = [
        "deblur",
        "--model",
        str(run_dir),
        str(src),
        str(clip),
        "--out",
        str(out),
        "--tile",
        str(smallest),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    got = images.read(out / "odd.png")
    whole = whole_d(image)  # one tile: the frame's own attention
    assert len(Deblurrer(whole_d.loaded, tile=smallest).plan(*image.shape[:2]).tiles) == 2
    assert got.shape == image.shape
    assert np.abs(got.astype(int) - whole).max() <= 1  # 2 tiles with the whole frame's attention
    assert "frames 64x48 at 10 fps" in result.output
    restored, _ = read_clip(out / "clip.mp4")  # AVI in, H.264 in MP4 out
    assert len(restored) == 3 and restored[0].shape == (48, 64, 3)


def test_init_from_starts_a_new_run_from_the_version(trained: tuple[Path, Path], tmp_path: Path) -> None:
    config, run_dir = trained
    source = versions.resolve_version(run_dir, "latest")
    data = yaml.safe_load(config.read_text())
    data["train"].update(run_dir=str(tmp_path / "tuned"), init_from=str(run_dir), steps=1, version_every=1)
    data["train"]["optimizer"]["lr"] = 1e-12
    (tmp_path / "tuned.yaml").write_text(yaml.safe_dump(data))
    result = runner.invoke(app, ["fit", str(tmp_path / "tuned.yaml")])
    assert result.exit_code == 0, result.output
    tuned = versions.load_generator(versions.resolve_version(tmp_path / "tuned", "latest"))
    for a, b in zip(tuned.get_weights(), versions.load_generator(source).get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    lineage = json.loads((tmp_path / "tuned" / "run.json").read_text())["init_from"]
    assert lineage["path"] == source and lineage["step"] == 3


def test_the_restormer_gopro_recipe_file_trains_when_shrunk(shards: Path, tmp_path: Path) -> None:
    """configs/restormer-gopro.yaml as outside checks run it: the model, the stages and the hold shrunk."""
    from pipeline.config import load_config
    from train.fit.trainer import run

    path = Path(__file__).resolve().parents[1] / "configs" / "restormer-gopro.yaml"
    full = load_config(path)
    assert (full.train.steps, full.train.crop_size, full.train.batch_size) == (300_000, 384, 8)
    assert [(s.steps, s.crop_size, s.batch_size) for s in full.train.stages] == [
        (92000, 128, 64), (64000, 160, 40), (48000, 192, 32), (36000, 256, 16), (36000, 320, 8), (24000, 384, 8)
    ]  # fmt: skip
    o = full.train.optimizer
    assert (o.name, o.lr, o.weight_decay, o.beta_2, o.hold_steps, o.min_lr, o.clip_norm) == (
        "adamw", 3e-4, 1e-4, 0.999, 92000, 1e-6, 0.01
    )  # fmt: skip
    assert full.organize.blur == "blur" and full.shard.crop_size == 384 and full.train.loss.pixel == 1.0
    overrides = [
        *(f"train.generator.{k}={v}" for k, v in RESTORMER.items() if k != "arch"),
        "train.stages=[{steps: 2, crop_size: 16, batch_size: 4}, {steps: 1, crop_size: 32, batch_size: 2}]",
        "train.optimizer.hold_steps=1",
        f"train.data={shards}",
        f"train.run_dir={tmp_path / 'run'}",
        "train.mixed_precision=float32",
    ]
    result = run(load_config(path, overrides))
    assert result.step == 3
    meta = versions.read_meta(versions.resolve_version(tmp_path / "run", "latest"))
    assert meta["arch"]["name"] == "restormer" and meta["arch"]["train_size"] == 32
