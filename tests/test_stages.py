"""Progressive training (`train.stages`): the stage plan and its config checks, the one-stage list as today's run
bit for bit, the input changing shape at a stage boundary without stopping, resume at and inside a stage (kill -9
across a boundary included) equal to a straight run, a stage list that rewrites trained steps refused, and the stage
in the progress line and TensorBoard."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import yaml
from fault_helpers import ROOT, env, kill_when, read_stderr_until, rest_of
from shards_fixture import write_shards

from pipeline.config import load_config
from pipeline.errors import ConfigError, UsageError
from train import stages
from train.config import Config
from train.fit.trainer import run
from train.run.versions import read_meta, resolve_version

DRIVER = Path(__file__).resolve().parent / "fit_driver.py"
# The GAN recipe (its per-example mixing weights depend on the global batch) on a tiny DeblurGAN.
TINY = {
    "mixed_precision": "float32",
    "generator": {"filters": 4, "blocks": 1, "dropout": 0.5},
    "critic": {"filters": 4, "updates": 1},
    "loss": {"perceptual": 0.0, "adversarial": 1.0, "pixel": 1.0, "perceptual_weights": "none"},
    "checkpoint_every": 2,
    "version_every": 100,
    "log_every": 1,
}


def stage(steps: int, crop: int, batch: int) -> dict[str, int]:
    return {"steps": steps, "crop_size": crop, "batch_size": batch}


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shards(tmp_path_factory.mktemp("stages") / "shards", pairs=6, crop_size=40, crops_per_pair=2)


def tiny(shards: Path, run_dir: Path, **train: object) -> Config:
    return Config.model_validate({"train": {**TINY, "data": str(shards), "run_dir": str(run_dir), **train}})


def weights(model: object) -> list[np.ndarray]:
    return [np.array(w) for w in model.get_weights()]  # type: ignore[attr-defined]


def assert_same_weights(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        assert np.array_equal(x, y), f"weight {i} differs by {np.abs(x - y).max()}"


# ---- the plan and the config ---------------------------------------------------------------------------------


def test_plan_places_each_step_in_its_stage() -> None:
    plan = stages.from_rows([(3, 128, 8), (2, 160, 5)])
    assert [(s.start, s.end) for s in plan] == [(0, 3), (3, 5)]
    assert [stages.at(plan, k).index for k in range(7)] == [0, 0, 0, 1, 1, 1, 1]  # at/past the end: the last
    assert stages.data_seed(7, plan[0]) == 7 and stages.data_seed(7, plan[1]) == 7 + stages.STAGE_SEED
    assert plan[1].describe(2) == "stage 2/2 (steps 3-5, 160 px, batch 5)"


def test_a_changed_stage_list_may_change_only_what_lies_after_the_checkpoint() -> None:
    old = stages.from_rows([(3, 128, 8), (4, 160, 5)])
    later = stages.from_rows([(3, 128, 8), (6, 160, 5), (2, 192, 4)])  # stage 2 longer, a third one
    stages.check_resume(old, later, 5, "RUN")
    assert stages.resumes_position(old, later, 5)  # inside stage 2, the same stage in both lists
    assert not stages.resumes_position(old, later, 3)  # at its start: the stream begins afresh anyway
    split = stages.from_rows([(3, 128, 8), (2, 160, 5), (2, 192, 4)])  # stage 2 ends at the checkpoint
    stages.check_resume(old, split, 5, "RUN")
    assert not stages.resumes_position(old, split, 5)
    with pytest.raises(UsageError, match=r"stage 2 trained steps 3-5 at 160 px, batch 5 before the checkpoint at "
                       r"step 5 in RUN, but the stages now say steps 3-5 at 192 px, batch 5"):  # fmt: skip
        stages.check_resume(old, stages.from_rows([(3, 128, 8), (4, 192, 5)]), 5, "RUN")
    with pytest.raises(
        UsageError, match=r"stage 1 trained steps 0-3 .* now say steps 0-2 at 128 px, batch 8"
    ):
        stages.check_resume(old, stages.from_rows([(2, 128, 8), (5, 160, 5)]), 5, "RUN")


def test_config_derives_the_totals_and_checks_each_stage(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("train: {stages: [{steps: 4, crop_size: 32, batch_size: 8}, {steps: 2, crop_size: 48, "
                    "batch_size: 4}]}\n")  # fmt: skip
    t = load_config(path).train
    assert (t.steps, t.crop_size, t.batch_size) == (6, 48, 4)  # the total, the last stage's crop and batch
    with pytest.raises(ConfigError, match=r"steps=10 disagrees with train.stages \(the stages' total is 6\)"):
        load_config(path, ["train.steps=10"])
    with pytest.raises(ConfigError, match=r"stages.1.crop_size=50 must be a multiple of 4"):
        load_config(path, ["train.stages=[{steps: 4, crop_size: 32, batch_size: 8}, {steps: 2, crop_size: 50, "
                           "batch_size: 4}]"])  # fmt: skip
    assert load_config(path, ["train.steps=6", "train.crop_size=48"]).train.steps == 6  # agreeing values
    with pytest.raises(ConfigError, match=r"hold_steps=6 leaves no step of the 6 for the cosine decay"):
        load_config(path, ["train.optimizer.schedule=cosine", "train.optimizer.hold_steps=6"])


def test_a_stage_crop_larger_than_the_shards_is_refused_before_training(shards: Path, tmp_path: Path) -> None:
    cfg = tiny(shards, tmp_path / "r", stages=[stage(1, 32, 2), stage(1, 48, 2)])
    with pytest.raises(
        ConfigError, match=r"train.stages.1.crop_size=48 is larger than the shards' crop_size 40"
    ):
        run(cfg)
    assert not (tmp_path / "r" / "checkpoints").exists()


# ---- fits ------------------------------------------------------------------------------------------------------


def test_a_one_stage_list_is_the_plain_run_bit_for_bit(shards: Path, tmp_path: Path) -> None:
    plain = run(tiny(shards, tmp_path / "plain", steps=3, crop_size=32, batch_size=4))
    listed = run(tiny(shards, tmp_path / "listed", stages=[stage(3, 32, 4)]))
    assert plain.step == listed.step == 3
    assert_same_weights(weights(plain.generator), weights(listed.generator))


@pytest.mark.slow
def test_resume_at_and_inside_a_stage_equals_a_straight_run(
    shards: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    two = [stage(3, 24, 4), stage(3, 32, 2)]
    straight = run(tiny(shards, tmp_path / "straight", stages=two))
    err = capfd.readouterr().err
    assert "fit: stage 2/2 (steps 3-6, 32 px, batch 2) begins at step 3: 32 px crops, global batch 2" in err
    assert "step 3/6  stage 1/2 (steps 0-3, 24 px, batch 4)" in err
    assert "step 4/6  stage 2/2 (steps 3-6, 32 px, batch 2)" in err
    # At the boundary: the first stage alone, then the list extended by the second.
    run(tiny(shards, tmp_path / "boundary", stages=two[:1]))
    at_boundary = run(tiny(shards, tmp_path / "boundary", stages=two))
    # Inside stage 2: its first step, then the stage lengthened to 3 steps (the data position continues).
    run(tiny(shards, tmp_path / "inside", stages=[two[0], stage(1, 32, 2)]))
    capfd.readouterr()
    inside = run(tiny(shards, tmp_path / "inside", stages=two))
    err = capfd.readouterr().err
    assert "resuming at step 4 from" in err and "in stage 2/2" in err and "fresh data stream" not in err
    assert "train.stages [" in err  # the change is named
    for result in (at_boundary, inside):
        assert result.step == 6
        assert_same_weights(weights(result.generator), weights(straight.generator))
    record = json.loads((tmp_path / "inside" / "run.json").read_text())
    assert record["data"]["stages"] == two and record["train"]["stages"] == two
    meta = read_meta(resolve_version(tmp_path / "straight", "latest"))
    assert meta["arch"]["train_size"] == 32  # the crop the generator trained on last
    logged = {}
    for event_file in (tmp_path / "straight" / "logs").iterdir():
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            for v in event.summary.value:
                if v.tag == "train/stage":
                    logged[event.step] = float(tf.make_ndarray(v.tensor))
    assert logged == {1: 1, 2: 1, 3: 1, 4: 2, 5: 2, 6: 2}


@pytest.mark.slow
def test_a_stage_list_that_rewrites_trained_steps_is_refused(shards: Path, tmp_path: Path) -> None:
    run(tiny(shards, tmp_path / "r", stages=[stage(3, 24, 4)]))
    before = (tmp_path / "r" / "run.json").read_text()
    with pytest.raises(UsageError, match=r"stage 1 trained steps 0-3 at 24 px, batch 4 .* now say steps 0-3 at "
                       r"32 px, batch 4"):  # fmt: skip
        run(tiny(shards, tmp_path / "r", stages=[stage(5, 32, 4)]))
    assert (tmp_path / "r" / "run.json").read_text() == before  # refused before anything was written


def _driver(config: Path, out: Path) -> subprocess.Popen:
    cmd = [sys.executable, str(DRIVER), str(config), str(out)]
    return subprocess.Popen(cmd, cwd=ROOT, env=env(), stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_kill_9_after_a_stage_boundary_resumes_exactly(shards: Path, tmp_path: Path) -> None:
    """SIGKILL in stage 2, then a rerun: the checkpoint's stage, data position and seed are restored, and the
    run ends with the weights of a run never interrupted."""
    train = {**TINY, "data": str(shards), "stages": [stage(3, 24, 4), stage(20, 32, 2)]}
    configs = {}
    for name in ("killed", "straight"):
        configs[name] = tmp_path / f"{name}.yaml"
        configs[name].write_text(yaml.safe_dump({"train": {**train, "run_dir": str(tmp_path / name)}}))
    proc = _driver(configs["killed"], tmp_path / "unused.npz")
    read_stderr_until(proc, lambda line: line.startswith("step ") and line.split()[1] == "5/23", timeout=300)
    kill_when(proc, lambda: True)
    saved = tf.train.latest_checkpoint(str(tmp_path / "killed" / "checkpoints"))
    at = int(saved.rsplit("-", 1)[1])
    assert 3 < at < 23, at  # inside stage 2
    again = _driver(configs["killed"], tmp_path / "killed.npz")
    err = rest_of(again, timeout=600)
    assert again.returncode == 0, err
    assert f"resuming at step {at} from" in err and "in stage 2/2" in err
    straight = _driver(configs["straight"], tmp_path / "straight.npz")
    err = rest_of(straight, timeout=600)
    assert straight.returncode == 0, err
    with np.load(tmp_path / "killed.npz") as a, np.load(tmp_path / "straight.npz") as b:
        assert int(a["step"]) == int(b["step"]) == 23
        assert_same_weights(
            [a[f"arr_{i}"] for i in range(len(a.files) - 1)], [b[f"arr_{i}"] for i in range(len(b.files) - 1)]
        )
