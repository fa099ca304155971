"""`trainctl evaluate`: full-frame PSNR/SSIM of a version vs the blurred input, per scene, into meta.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from tiny_generators import identity_generator, local_generator, save_version
from typer.testing import CliRunner

from pipeline.config import load_config
from pipeline.errors import DataError
from train.cli import app
from train.evaluation import evaluate
from train.run.versions import read_meta

runner = CliRunner()


def _config(tmp_path: Path, run_dir: Path, src: Path, **evaluate_cfg) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(
        json.dumps({"train": {"run_dir": str(run_dir)}, "evaluate": {"src": str(src), **evaluate_cfg}})
    )
    return path


def _rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("run_local")
    save_version(run_dir, local_generator(seed=2), step=7)
    return run_dir


def test_identity_model_scores_like_the_input(tmp_path: Path, organized_dir: Path) -> None:
    run_dir = tmp_path / "run"
    version = save_version(run_dir, identity_generator())
    cfg = load_config(_config(tmp_path, run_dir, organized_dir, batch_size=2))
    result = evaluate.run(cfg, split="train", out=tmp_path / "metrics.json")
    assert result["psnr"] == result["psnr_input"] and result["ssim"] == result["ssim_input"]
    assert result["psnr_gain"] == 0.0 and result["pairs"] == 9 and result["version"] == "v0001"
    assert 15 < result["psnr_input"] < 60 and 0 < result["ssim_input"] < 1
    assert sorted(result["per_scene"]) == ["GOPR0001_11_00", "GOPR0002_07_00", "GOPR0003_09_00"]
    for scene in result["per_scene"].values():
        assert scene["pairs"] == 3 and scene["psnr"] == scene["psnr_input"]
    assert np.mean([s["psnr"] for s in result["per_scene"].values()]) == pytest.approx(result["psnr"])
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written == result
    metrics = read_meta(version)["metrics"][f"train @ {organized_dir}"]
    assert metrics["psnr"] == result["psnr"] and metrics["split"] == "train" and metrics["pairs"] == 9
    # A test-split evaluation afterwards keeps the train score: one score per (organized dir, split).
    test = evaluate.run(cfg, split="test")
    scores = read_meta(version)["metrics"]
    assert sorted(scores) == [f"test @ {organized_dir}", f"train @ {organized_dir}"]
    assert (
        scores[f"test @ {organized_dir}"]["psnr"] == test["psnr"]
        and scores[f"train @ {organized_dir}"]["pairs"] == 9
    )


def test_values_match_an_independent_computation(
    tmp_path: Path, organized_dir: Path, local_run: Path
) -> None:
    """Full frames through the Keras model, rounded to uint8, scored with skimage, averaged by hand."""
    model = local_generator(seed=2)
    rows = [json.loads(line) for line in (organized_dir / "manifest.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["split"] == "test"]
    want: dict[str, list[float]] = {"psnr": [], "ssim": [], "psnr_input": [], "ssim_input": []}
    crop = slice(4, -4)
    for row in rows:
        blur, sharp = _rgb(organized_dir / row["a"]), _rgb(organized_dir / row["b"])
        y = model(blur[None].astype(np.float32) / 127.5 - 1.0, training=False).numpy()[0]
        out = np.clip(np.rint((y + 1.0) * 127.5), 0, 255).astype(np.uint8)
        for key, img in (("", out), ("_input", blur)):
            a, b = img[crop, crop], sharp[crop, crop]
            want["psnr" + key].append(peak_signal_noise_ratio(b, a, data_range=255))
            want["ssim" + key].append(
                structural_similarity(
                    b,
                    a,
                    gaussian_weights=True,
                    sigma=1.5,
                    use_sample_covariance=False,
                    data_range=255,
                    channel_axis=-1,
                )
            )
    cfg = load_config(_config(tmp_path, local_run, organized_dir, batch_size=2), ["evaluate.crop_border=4"])
    result = evaluate.run(cfg, version="latest")
    assert result["pairs"] == len(rows) == 3 and result["crop_border"] == 4 and result["split"] == "test"
    for key, values in want.items():
        assert result[key] == pytest.approx(float(np.mean(values)), abs=1e-3 if key == "psnr" else 1e-6), key
    assert result["psnr"] != result["psnr_input"]


def test_cli_prints_json_and_summary(tmp_path: Path, organized_dir: Path, local_run: Path) -> None:
    config = _config(tmp_path, local_run, organized_dir)
    out = tmp_path / "reports" / "eval.json"
    result = runner.invoke(
        app, ["evaluate", str(config), "--version", "v0001", "--split", "test", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    for key in ("psnr", "ssim", "psnr_input", "ssim_input", "pairs", "version", "per_scene"):
        assert key in printed
    assert printed == json.loads(out.read_text())
    assert "v0001 on test (3 pairs): PSNR" in result.output and " dB)" in result.output


def test_missing_inputs_are_data_errors_naming_the_path(
    tmp_path: Path, organized_dir: Path, local_run: Path
) -> None:
    missing = tmp_path / "nowhere"
    result = runner.invoke(app, ["evaluate", str(_config(tmp_path, local_run, missing))])
    assert result.exit_code == 1 and f"{missing}: organized dir not found" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["evaluate", str(_config(tmp_path, local_run, empty))])
    assert result.exit_code == 1 and f"{empty / 'manifest.jsonl'}: no manifest" in result.output
    result = runner.invoke(
        app, ["evaluate", str(_config(tmp_path, local_run, organized_dir)), "--split", "val"]
    )
    assert result.exit_code == 1 and "no pairs in split 'val' (splits present: test, train)" in result.output
    result = runner.invoke(app, ["evaluate", str(_config(tmp_path, tmp_path / "norun", organized_dir))])
    assert result.exit_code == 1 and "no generator versions yet" in result.output
    result = runner.invoke(
        app, ["evaluate", str(_config(tmp_path, local_run, organized_dir)), "--version", "v0042"]
    )
    assert result.exit_code == 2 and "v0042" in result.output


def test_unreadable_frame_is_named(tmp_path: Path, local_run: Path) -> None:
    src = tmp_path / "organized"
    (src / "test" / "A").mkdir(parents=True)
    (src / "test" / "B").mkdir(parents=True)
    img = np.full((32, 48, 3), 90, np.uint8)
    cv2.imwrite(str(src / "test" / "B" / "s_1.png"), img)
    (src / "test" / "A" / "s_1.png").write_bytes(b"broken")
    row = {"split": "test", "scene": "s", "frame": "1", "a": "test/A/s_1.png", "b": "test/B/s_1.png"}
    (src / "manifest.jsonl").write_text(json.dumps({**row, "width": 48, "height": 32}) + "\n")
    with pytest.raises(DataError, match=r"test/A/s_1.png: cannot read or decode"):
        evaluate.evaluate_version(
            local_run / "generator" / "v0001", str(src), "test", 0, 4, strategy=_default()
        )
    cv2.imwrite(str(src / "test" / "A" / "s_1.png"), img)
    (src / "manifest.jsonl").write_text(json.dumps({**row, "width": 40, "height": 32}) + "\n")
    with pytest.raises(DataError, match="size 48x32 but the manifest says 40x32"):
        evaluate.evaluate_version(
            local_run / "generator" / "v0001", str(src), "test", 0, 4, strategy=_default()
        )


def _default():
    import tensorflow as tf

    return tf.distribute.get_strategy()


def test_size_batches_group_equal_sizes() -> None:
    rows = [{"height": h, "width": w, "i": i} for i, (h, w) in enumerate([(720, 1280)] * 5 + [(96, 128)] * 2)]
    rows.insert(2, {"height": 96, "width": 128, "i": 99})
    batches = evaluate.size_batches(rows, 2)
    assert [[r["i"] for r in b] for b in batches] == [[0, 1], [2, 3], [4], [99, 5], [6]]


_MIRRORED = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from train.evaluation.evaluate import evaluate_version
from train.strategy import make_strategy
strategy = make_strategy("mirrored")
result = evaluate_version(sys.argv[1], sys.argv[2], "train", 0, 3, strategy)
print(json.dumps(result))
"""


def test_two_replicas_give_the_same_result(tmp_path: Path, organized_dir: Path, local_run: Path) -> None:
    """MirroredStrategy over 2 logical CPUs: a batch of 3 split 2+2 (last frame repeated), same scores."""
    version = local_run / "generator" / "v0001"
    proc = subprocess.run(
        [sys.executable, "-c", _MIRRORED, str(version), str(organized_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    mirrored = json.loads(proc.stdout.strip().splitlines()[-1])
    single = evaluate.evaluate_version(version, str(organized_dir), "train", 0, 3, strategy=_default())
    assert mirrored["replicas"] == 2 and single["replicas"] == 1
    assert mirrored["pairs"] == single["pairs"] == 9
    for key in ("psnr", "ssim", "psnr_input", "ssim_input"):
        assert mirrored[key] == pytest.approx(single[key], abs=1e-9), key
    assert mirrored["per_scene"].keys() == single["per_scene"].keys()
