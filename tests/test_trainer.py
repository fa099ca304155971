"""train.fit.trainer end to end on tiny models: exact resume, versions, logs, samples, NaN stop, signals, lock,
replica-count invariance (MirroredStrategy over 2 logical CPUs) and 2-process MultiWorkerMirroredStrategy."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow as tf
import yaml
from fault_helpers import ROOT, env, read_stderr_until, rest_of, run_local_cluster
from shards_fixture import write_pair_shards, write_shards
from typer.testing import CliRunner

from pipeline.errors import DataError, UsageError
from train.cli import app
from train.config import Config
from train.fit.data import make_dataset
from train.fit.hooks import Hook, steps_until_boundary
from train.fit.trainer import run
from train.recipes.gan import GanRecipe
from train.run.runlog import SCALAR_NAMES
from train.run.versions import VersionInfo, list_versions, load_generator, read_meta

DRIVER = Path(__file__).resolve().parent / "fit_driver.py"
HANG = 600  # subprocess timeout: catches a hang, not slowness (the test machines' cores are shared)
TINY = {
    "batch_size": 4,
    "crop_size": 32,
    "mixed_precision": "float32",
    "generator": {"filters": 8, "blocks": 1, "dropout": 0.5},
    "critic": {"filters": 8, "updates": 2, "gradient_penalty": 10.0},
    "loss": {"perceptual": 0.01, "adversarial": 1.0, "pixel": 1.0, "perceptual_weights": "none"},
    "checkpoint_every": 2,
    "version_every": 3,
    "keep_versions": 2,
    "log_every": 1,
}


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shards(tmp_path_factory.mktemp("fit") / "shards", pairs=6, crop_size=40, crops_per_pair=2)


def config_file(tmp: Path, shards: Path, run_dir: Path, **train: object) -> Path:
    path = tmp / f"{run_dir.name}.yaml"
    path.write_text(
        yaml.safe_dump({"train": {**TINY, "data": str(shards), "run_dir": str(run_dir), **train}})
    )
    return path


def tiny(shards: Path, run_dir: Path, **train: object) -> Config:
    return Config.model_validate({"train": {**TINY, "data": str(shards), "run_dir": str(run_dir), **train}})


def weights(model: object) -> list[np.ndarray]:
    return [np.array(w) for w in model.get_weights()]  # type: ignore[attr-defined]


def assert_version_is(version: VersionInfo, generator: object, blur: tf.Tensor) -> None:
    """`version` loads as `generator`: the same weights, and the same restoration of `blur`, which differs from
    `blur` itself (the untrained generator is exactly the identity, so that would pass any weights check)."""
    loaded = load_generator(version.path)
    for i, (got, want) in enumerate(zip(weights(loaded), weights(generator), strict=True)):
        np.testing.assert_array_equal(got, want, err_msg=f"{version.name}: weight {i}")
    restored = generator(blur, training=False).numpy()  # type: ignore[operator]
    np.testing.assert_allclose(
        loaded(blur, training=False).numpy(), restored, atol=1e-6, err_msg=version.name
    )
    assert np.abs(restored - blur.numpy()).max() > 1e-3, "the trained generator is still the identity"


def test_steps_until_boundary_stops_at_every_hook_and_the_end() -> None:
    def hook(every: int) -> Hook:
        return Hook("h", every, lambda step, values: None)

    hooks = [hook(10), hook(25), hook(40), hook(0)]  # log, checkpoint, version, validation off
    assert steps_until_boundary(0, hooks, 100, cap=100) == 10
    assert steps_until_boundary(20, hooks, 100, cap=100) == 5  # checkpoint at 25
    assert steps_until_boundary(36, hooks, 100, cap=100) == 4  # log at 40 (and version)
    assert steps_until_boundary(41, hooks, 100, cap=3) == 3
    assert steps_until_boundary(99, hooks, 100, cap=100) == 1
    assert [h.due(100, 100) for h in hooks] == [True, True, True, False]  # the end, except hooks that are off
    assert [h.due(50, 100) for h in hooks] == [True, True, False, False]


@pytest.mark.slow
def test_resume_3_plus_3_steps_equals_6_steps(shards: Path, tmp_path: Path) -> None:
    """Rerunning fit on the same run dir continues at the exact step with the exact next batch and RNG state."""
    resumed = tmp_path / "resumed"
    cli = CliRunner().invoke(
        app, ["fit", str(config_file(tmp_path, shards, resumed)), "--set", "train.steps=3"]
    )
    assert cli.exit_code == 0, cli.output
    assert "starting at step 0" in cli.output and "version v0001 at step 3" in cli.output
    second = run(tiny(shards, resumed, steps=6))
    straight = run(tiny(shards, tmp_path / "straight", steps=6))
    assert second.step == straight.step == 6
    for a, b in zip(weights(second.generator), weights(straight.generator), strict=True):
        assert np.array_equal(a, b)

    # Versions at 3 and 6 (version_every=3, and the end), pruned to keep_versions=2, latest -> the newest.
    versions = list_versions(resumed)
    assert [(v.name, v.step) for v in versions] == [("v0001", 3), ("v0002", 6)]
    assert (resumed / "generator" / "latest").read_text().strip() == "v0002"
    meta = read_meta(versions[-1].path)
    dataset_sha = hashlib.sha256((shards / "dataset.json").read_bytes()).hexdigest()
    assert meta["dataset"] == {"sha256": dataset_sha, "examples": 12, "path": str(shards)}
    assert meta["step"] == 6 and meta["metrics"] == {} and len(meta["config_sha256"]) == 64
    assert json.loads((resumed / "run.json").read_text())["dataset"]["sha256"] == dataset_sha
    # Checkpoints by step, max 3 kept; samples grid: 4 rows of 40px crops, blur | restored | sharp.
    assert tf.train.latest_checkpoint(str(resumed / "checkpoints")).endswith("ckpt-6")
    grid = cv2.imread(str(resumed / "samples" / "step_000006.png"))
    assert grid.shape == (4 * 40 + 3 * 2, 3 * 40 + 2 * 2, 3)
    # TensorBoard scalars and images in RUN/logs.
    tags = set()
    for event_file in (resumed / "logs").iterdir():
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags.update(v.tag for v in event.summary.value)
    assert {
        "loss/generator_total",
        "loss/gradient_penalty",
        "train/learning_rate",
        "train/images_per_s",
    } <= tags
    assert "samples/blur_restored_sharp" in tags
    assert not (resumed / "fit.lock").exists()

    # Each published version holds the weights the run trained, not a fresh or stale copy: the resumed run's
    # first version and the straight run's second (a re-used export model) both load as their run's generator.
    blur = next(iter(make_dataset(str(shards), "train", 4, 32, False)))[0]
    for run_dir, result in ((resumed, second), (tmp_path / "straight", straight)):
        assert_version_is(list_versions(run_dir)[-1], result.generator, blur)


def test_rerun_after_the_end_trains_nothing(shards: Path, tmp_path: Path) -> None:
    first = run(tiny(shards, tmp_path / "r", steps=2))
    again = run(tiny(shards, tmp_path / "r", steps=2))
    assert first.step == again.step == 2 and again.versions == []
    assert [v.step for v in list_versions(tmp_path / "r")] == [2]


def test_changed_model_shape_is_refused(shards: Path, tmp_path: Path) -> None:
    run(tiny(shards, tmp_path / "r", steps=1))
    with pytest.raises(UsageError, match="train.generator.blocks changed from 1 to 2"):
        run(tiny(shards, tmp_path / "r", steps=2, generator={"filters": 8, "blocks": 2}))


@pytest.mark.slow
def test_changed_batch_size_resumes_weights_with_a_fresh_data_stream(
    shards: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    run(tiny(shards, tmp_path / "r", steps=2))
    result = run(tiny(shards, tmp_path / "r", steps=3, batch_size=2))
    err = capfd.readouterr().err
    assert result.step == 3 and "batch_size changed since the last checkpoint" in err
    assert "resuming at step 2" in err
    record = json.loads((tmp_path / "r" / "run.json").read_text())
    assert record["data"]["batch_size"] == 2
    assert record["data_seed"] == record["data"]["seed"] + 7919 * 2  # the fresh stream's own seed, kept
    # A plain resume of that stream rebuilds it with the same seed (else crops and shuffles would diverge).
    run(tiny(shards, tmp_path / "r", steps=4, batch_size=2))
    assert json.loads((tmp_path / "r" / "run.json").read_text())["data_seed"] == record["data_seed"]


@pytest.mark.slow
def test_changed_learning_rate_and_loss_weight_are_named_at_resume_and_recorded(
    shards: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    run(tiny(shards, tmp_path / "r", steps=2))
    capfd.readouterr()
    loss = {**TINY["loss"], "pixel": 2.0}
    result = run(tiny(shards, tmp_path / "r", steps=3, optimizer={"lr": 2e-4}, loss=loss))
    err = capfd.readouterr().err
    assert result.step == 3
    assert (
        "resume at step 2: changed since the last checkpoint: train.loss.pixel 1.0 -> 2.0, "
        "train.optimizer.lr 0.0001 -> 0.0002, train.steps 2 -> 3"
    ) in err
    record = json.loads((tmp_path / "r" / "run.json").read_text())
    assert record["train"]["optimizer"]["lr"] == 2e-4
    assert [c["step"] for c in record["changes"]] == [2]
    assert record["changes"][0]["changed"]["train.optimizer.lr"] == [1e-4, 2e-4]
    # The new rate is the one the optimizer applies (the schedule is constant before decay_start).
    assert result.learning_rate == pytest.approx(2e-4, rel=1e-6)
    # The next resume names only what changed then, and the history grows.
    run(tiny(shards, tmp_path / "r", steps=4, optimizer={"lr": 2e-4}, loss=loss))
    assert "changed since the last checkpoint: train.steps 3 -> 4\n" in capfd.readouterr().err
    assert len(json.loads((tmp_path / "r" / "run.json").read_text())["changes"]) == 2


@pytest.mark.slow
def test_mixed_float16_steps_move_the_weights_like_float32_steps(shards: Path, tmp_path: Path) -> None:
    """The GPU precision path (LossScaleOptimizer per optimizer) runs on CPU too, slowly: 3 tiny GAN steps from
    the same start move the generator about as far, and the same way, as float32 steps. A generator gradient
    left divided by the loss scale (GanRecipe multiplies it back by hand) moves it far less: measured 0.18x the
    distance at cosine 0.22, against 1.01x at cosine 0.94 when right."""
    import keras

    plain = {"filters": 8, "blocks": 1, "dropout": 0.0}  # dropout masks could differ between precisions
    start = run(tiny(shards, tmp_path / "s", steps=1, generator=plain, optimizer={"lr": 1e-12}))
    single = run(tiny(shards, tmp_path / "f", steps=3, generator=plain))
    result = run(tiny(shards, tmp_path / "r", steps=3, generator=plain, mixed_precision="mixed_float16"))
    assert result.step == 3 and keras.mixed_precision.global_policy().name == "float32"
    names = [n for n, _ in tf.train.list_variables(str(tmp_path / "r" / "checkpoints" / "ckpt-2"))]
    assert {
        "generator_optimizer/dynamic_scale/.ATTRIBUTES/VARIABLE_VALUE",
        "critic_optimizer/dynamic_scale/.ATTRIBUTES/VARIABLE_VALUE",
    } <= set(names)
    begin = np.concatenate([w.ravel() for w in weights(start.generator)])
    moved32 = np.concatenate([w.ravel() for w in weights(single.generator)]) - begin
    moved16 = np.concatenate([w.ravel() for w in weights(result.generator)]) - begin
    assert np.isfinite(moved16).all() and np.linalg.norm(moved32) > 1e-3
    ratio = np.linalg.norm(moved16) / np.linalg.norm(moved32)
    cosine = moved16 @ moved32 / (np.linalg.norm(moved16) * np.linalg.norm(moved32))
    assert 0.7 < ratio < 1.4 and cosine > 0.8, (ratio, cosine)


@pytest.mark.slow
def test_a_mixed_precision_change_of_loss_scaling_is_refused_at_resume(shards: Path, tmp_path: Path) -> None:
    """float16 loss scaling adds optimizer state (the scales): turning it on or off at resume is refused, naming
    train.mixed_precision; a change that keeps it (float32 -> mixed_bfloat16) resumes."""
    run(tiny(shards, tmp_path / "r", steps=1))
    before = sorted(p.name for p in (tmp_path / "r" / "checkpoints").iterdir())
    with pytest.raises(
        UsageError, match=r"^train.mixed_precision \(float16 loss scaling\) changed from False to True"
    ):
        run(tiny(shards, tmp_path / "r", steps=2, mixed_precision="mixed_float16"))
    assert sorted(p.name for p in (tmp_path / "r" / "checkpoints").iterdir()) == before
    assert run(tiny(shards, tmp_path / "r", steps=2, mixed_precision="mixed_bfloat16")).step == 2
    run(tiny(shards, tmp_path / "h", steps=1, mixed_precision="mixed_float16"))
    with pytest.raises(UsageError, match="^train.mixed_precision .* changed from True to False"):
        run(tiny(shards, tmp_path / "h", steps=2))


def test_missing_shard_file_is_one_line_naming_it(shards: Path, tmp_path: Path) -> None:
    """A shard listed in dataset.json but gone: exit 1 with the file named, no traceback."""
    copy = tmp_path / "shards"
    shutil.copytree(shards, copy)
    gone = sorted(copy.glob("gopro-train.tfrecord-*"))[0]
    gone.unlink()
    result = CliRunner().invoke(app, ["fit", str(config_file(tmp_path, copy, tmp_path / "run", steps=2))])
    assert result.exit_code == 1
    assert gone.name in result.output and "Traceback" not in result.output


def test_dir_without_dataset_json_is_refused_by_the_cli(tmp_path: Path) -> None:
    empty = tmp_path / "not-shards"
    empty.mkdir()
    result = CliRunner().invoke(app, ["fit", str(config_file(tmp_path, empty, tmp_path / "run"))])
    assert result.exit_code == 1
    assert f"error: {empty}: no dataset.json" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(
    shards: Path, tmp_path: Path
) -> None:
    run(tiny(shards, tmp_path / "r", steps=2))
    with pytest.raises(DataError, match=r"step 3: loss is not finite .*last good checkpoint is step 2"):
        run(tiny(shards, tmp_path / "r", steps=10, optimizer={"lr": 1e30}))
    assert tf.train.latest_checkpoint(str(tmp_path / "r" / "checkpoints")).endswith("ckpt-2")
    assert [v.step for v in list_versions(tmp_path / "r")] == [2]


@pytest.mark.slow
def test_loss_goes_down_on_a_tiny_overfit_case(tmp_path: Path) -> None:
    one = write_shards(tmp_path / "one", pairs=1, crop_size=32, crops_per_pair=1, shards={"train": 1})
    cfg = tiny(
        one,
        tmp_path / "r",
        steps=100,
        log_every=100,
        version_every=100,
        checkpoint_every=100,
        generator={"filters": 8, "blocks": 1, "dropout": 0.0},
        loss={"perceptual": 0.001, "adversarial": 0.0, "pixel": 1.0, "perceptual_weights": "none"},
        optimizer={"lr": 2e-3},
    )
    blur, sharp = next(iter(make_dataset(str(one), "train", 1, 32, False)))
    result = run(cfg)
    before = float(tf.reduce_mean(tf.abs(blur - sharp)))
    after = float(tf.reduce_mean(tf.abs(result.generator(blur, training=False) - sharp)))
    assert after < 0.8 * before, (before, after)


def _start_fit(cfg: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "train.cli", "fit", str(cfg), *extra]
    return subprocess.Popen(cmd, cwd=ROOT, env=env(), stderr=subprocess.PIPE, text=True)


def _wait_for_step(proc: subprocess.Popen, step: int) -> list[str]:
    return read_stderr_until(
        proc, lambda line: line.startswith("step ") and int(line.split()[1].split("/")[0]) >= step
    )


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_the_rerun_resumes(shards: Path, tmp_path: Path) -> None:
    cfg = config_file(tmp_path, shards, tmp_path / "r", steps=100_000, checkpoint_every=1000)
    proc = _start_fit(cfg)
    _wait_for_step(proc, 2)
    proc.send_signal(signal.SIGTERM)
    err = rest_of(proc, timeout=120)
    assert proc.returncode == 143, err  # saved, but not finished: `fit && evaluate` must not go on
    assert "exit 143" in err
    stopped = [line for line in err.splitlines() if "stopped by SIGTERM at step" in line]
    assert stopped, err
    step = int(stopped[0].split("at step ")[1].split(";")[0])
    assert tf.train.latest_checkpoint(str(tmp_path / "r" / "checkpoints")).endswith(f"ckpt-{step}")
    resumed = run(tiny(shards, tmp_path / "r", steps=step + 1, checkpoint_every=1000))
    assert resumed.step == step + 1


@pytest.mark.slow
def test_sigint_exits_130_and_a_second_one_leaves_without_a_traceback(shards: Path, tmp_path: Path) -> None:
    cfg = config_file(tmp_path, shards, tmp_path / "r", steps=100_000, checkpoint_every=1000)
    proc = _start_fit(cfg)
    _wait_for_step(proc, 2)
    proc.send_signal(signal.SIGINT)
    err = rest_of(proc, timeout=120)
    assert proc.returncode == 130, err
    assert "stopped by SIGINT" in err and "Traceback" not in err
    # Ctrl-C twice: the second one lands while the first is being handled (the save or the step before it).
    proc = _start_fit(cfg)
    _wait_for_step(proc, 1)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    err = rest_of(proc, timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Exception ignored" not in err and "KeyboardInterrupt" not in err, err
    assert "SIGINT again: exiting" in err or "stopped by SIGINT" in err


def test_second_signal_exits_at_once_with_the_signal_code() -> None:
    """The handler itself, deterministically: the first signal sets the flag, the second leaves with 128 + signum."""
    code = (
        "import signal; from train.run.signals import StopFlag\n"
        "with StopFlag() as stop:\n"
        "    signal.raise_signal(signal.SIGTERM)\n"
        "    assert stop.signal_name == 'SIGTERM'\n"
        "    print('flag set', flush=True)\n"
        "    signal.raise_signal(signal.SIGINT)\n"
        "    print('still running', flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 130 and done.stdout == "flag set\n", (done.stdout, done.stderr)
    assert done.stderr.startswith("fit: SIGINT again: exiting") and "Traceback" not in done.stderr


@pytest.mark.slow
def test_sigkill_between_checkpoints_resumes_from_the_last_one(shards: Path, tmp_path: Path) -> None:
    cfg = config_file(tmp_path, shards, tmp_path / "r", steps=100_000, checkpoint_every=2, version_every=1000)
    proc = _start_fit(cfg)
    _wait_for_step(proc, 3)
    proc.kill()
    proc.wait(timeout=60)
    saved = tf.train.latest_checkpoint(str(tmp_path / "r" / "checkpoints"))
    step = int(saved.rsplit("-", 1)[1])
    assert step >= 2 and (tmp_path / "r" / "fit.lock").exists()
    rerun = subprocess.run(
        [sys.executable, "-m", "train.cli", "fit", str(cfg), "--set", f"train.steps={step + 1}"],
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert "taking over a stale lock" in rerun.stderr
    assert f"resuming at step {step} from" in rerun.stderr and f"step {step + 1}/{step + 1}" in rerun.stderr


def logged_losses(run_dir: Path) -> dict[tuple[str, int], float]:
    """Every `loss/*` scalar in RUN/logs by (tag, step): what the user sees in TensorBoard."""
    found = {}
    for event_file in sorted((run_dir / "logs").iterdir()):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            for value in event.summary.value:
                if value.tag.startswith("loss/"):
                    found[(value.tag, event.step)] = float(tf.make_ndarray(value.tensor))
    return found


@pytest.mark.slow
def test_same_step_on_1_and_2_replicas_gives_the_same_weights_and_losses(
    shards: Path, tmp_path: Path
) -> None:
    """MirroredStrategy over 2 logical CPU devices vs one device, same global batch: losses are per-example sums
    divided by the GLOBAL batch, so the logged losses agree and so do the weights.

    Averaging over the per-replica batch instead doubles every logged loss on 2 replicas (the replicas' values
    are summed), while Adam all but hides it in the weights: they then differ by 1.7e-5 to 2.7e-5, honest code
    by 2.8e-7 to 5.4e-7, hence the tight weight tolerance. Honest logged losses agree to 2.2e-6 relative."""
    # Clipping on, at a norm the gradients exceed: it must clip the gradient summed over replicas, not each part.
    cfg = config_file(
        tmp_path,
        shards,
        tmp_path / "unused",
        steps=2,
        generator={"filters": 8, "blocks": 1, "dropout": 0.0},
        optimizer={"lr": 1e-4, "clip_norm": 0.01},
    )
    outs = {}
    for strategy in ("one_device", "mirrored"):
        outs[strategy] = tmp_path / f"{strategy}.npz"
        cmd = [
            sys.executable,
            str(DRIVER),
            str(cfg),
            str(outs[strategy]),
            "--logical-cpus",
            "2",
            "--set",
            f"train.strategy={strategy}",
            "--set",
            f"train.run_dir={tmp_path / strategy}",
        ]
        done = subprocess.run(cmd, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=HANG)
        assert done.returncode == 0, done.stderr
    assert "MirroredStrategy, 2 replica(s)" in done.stderr and "(2 per replica)" in done.stderr
    one, two = np.load(outs["one_device"]), np.load(outs["mirrored"])
    assert int(one["step"]) == int(two["step"]) == 2
    losses_one, losses_two = logged_losses(tmp_path / "one_device"), logged_losses(tmp_path / "mirrored")
    # Every metric of the GAN recipe, drift included (logged even at weight 0: it shows the critic's level).
    tags = {f"loss/{SCALAR_NAMES.get(name, name)}" for name in GanRecipe.metrics}
    assert len(tags) == 10 and {tag for tag, _ in losses_one} == tags
    assert {step for _, step in losses_one} == {1, 2} and len(losses_one) == 2 * len(tags)
    assert losses_two.keys() == losses_one.keys()
    for key, value in losses_one.items():
        assert losses_two[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    for key in one.files:
        np.testing.assert_allclose(one[key], two[key], rtol=0, atol=5e-6, err_msg=key)


def dihedral_pair(period: float, colour: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """A 32x32 (blur, sharp) pair of concentric rings around the centre: a function of the distance to the
    centre only, so every flip and 90-degree rotation of it (the training augmentation) is the same image."""
    yy, xx = np.mgrid[0:32, 0:32]
    r = np.sqrt((yy - 15.5) ** 2 + (xx - 15.5) ** 2)
    rings = np.cos(2 * np.pi * r / period)[..., None] * np.array(colour)
    sharp, blur = 127.5 + 100 * rings, 127.5 + 40 * rings * np.exp(-r / 16)[..., None]
    pair = (np.rint(blur).astype(np.uint8), np.rint(sharp).astype(np.uint8))
    for image in pair:
        assert all(np.array_equal(view, image) for view in (np.rot90(image), image[:, ::-1]))
    return pair


def kinds_per_step(shards: Path, seed: int, patterns: list[np.ndarray], steps: int) -> list[list[int]]:
    """Which pattern each example of the first `steps` global batches is, in the stream a 1-worker 2-replica fit
    with global batch 2 builds (train.fit.trainer: InputContext(1, 0, 2), the data seed of a fresh run = train.seed,
    and the global seed set to train.seed first, which tf.data's seeded shuffles combine with their own)."""
    import keras

    from train.fit.data import stack_replicas

    keras.utils.set_random_seed(seed)
    context = tf.distribute.InputContext(1, 0, 2)
    stream = stack_replicas(make_dataset(str(shards), "train", 2, 32, True, context, seed), 2)
    found = []
    for blur, _ in stream.take(steps):
        examples = blur.numpy().reshape(-1, 32, 32, 3)
        found.append(
            [next(k for k, p in enumerate(patterns) if np.allclose(x, p, atol=1e-6)) for x in examples]
        )
    return found


@pytest.mark.slow
def test_two_workers_train_like_one_worker_on_the_same_global_batches(tmp_path: Path) -> None:
    """2 workers x 1 replica vs 1 worker x 2 replicas (MirroredStrategy), global batch 2, 3 steps.

    The data makes the global batch of every step the same in both: two shard files, the first holding only
    pattern P0, the second only P1, each a pair that every flip/rotation leaves unchanged. Two workers split the
    files between them (one each), so each step's global batch is {P0, P1} whatever the shuffles. One worker
    reads both files through one shuffled stream: the test picks the first seed whose first 3 global batches are
    {P0, P1} too (asserted). With dropout and the gradient penalty off the order inside a batch does not matter,
    so both runs must log the same losses and end with the same weights. If every worker read the same data,
    the 2-worker global batch would hold one example twice ({P0, P0}, or twice the first example of the shared
    stream): other losses at step 1 already (measured: generator_total 14.84 instead of 17.52, whether every
    worker read worker 0's files or all files; honest runs agree exactly here).
    Also: the workers end identical, and only the chief keeps model checkpoints and versions."""
    pairs = [dihedral_pair(7.0, (1.0, 0.6, -0.4)), dihedral_pair(4.0, (-0.5, 1.0, 0.8))]
    shards = write_pair_shards(tmp_path / "shards", [[pairs[0]] * 4, [pairs[1]] * 4])
    patterns = [blur.astype(np.float32) / 127.5 - 1.0 for blur, _ in pairs]
    seed = next(
        s for s in range(100) if all(sorted(k) == [0, 1] for k in kinds_per_step(shards, s, patterns, 3))
    )
    train = {
        "batch_size": 2,
        "steps": 3,
        "checkpoint_every": 2,
        "seed": seed,
        "generator": {"filters": 8, "blocks": 1, "dropout": 0.0},
        "critic": {"filters": 8, "updates": 2, "gradient_penalty": 0.0},
    }
    cfg = config_file(tmp_path, shards, tmp_path / "r", **train)
    workers = run_local_cluster(
        lambda i: [sys.executable, str(DRIVER), str(cfg), str(tmp_path / f"w{i}.npz")],
        tmp_path / "logs",
        timeout=HANG,
    )
    assert [w.returncode for w in workers] == [0, 0], [w.stderr for w in workers]
    assert "MultiWorkerMirroredStrategy, 2 replica(s) on 2 worker(s), global batch 2" in workers[0].stderr
    one = tmp_path / "one"
    cmd = [sys.executable, str(DRIVER), str(cfg), str(tmp_path / "one.npz"), "--logical-cpus", "2"]
    cmd += ["--set", "train.strategy=mirrored", "--set", f"train.run_dir={one}"]
    done = subprocess.run(cmd, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=HANG)
    assert done.returncode == 0, done.stderr
    assert "MirroredStrategy, 2 replica(s) on 1 worker(s), global batch 2" in done.stderr

    expected, got = logged_losses(one), logged_losses(tmp_path / "r")
    # At step 1 the generator is the identity: the pixel loss is the mean L1 of the batch, here of {P0, P1}.
    pixel = np.mean([np.abs(b / 127.5 - s / 127.5).mean() for b, s in pairs])
    assert expected[("loss/pixel", 1)] == pytest.approx(pixel, rel=1e-5), (
        "kinds_per_step is not the fit's stream"
    )
    assert got.keys() == expected.keys() and {step for _, step in got} == {1, 2, 3}
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    w0, w1, ref = (np.load(tmp_path / name) for name in ("w0.npz", "w1.npz", "one.npz"))
    assert int(w0["step"]) == int(w1["step"]) == int(ref["step"]) == 3
    for key in ref.files:
        np.testing.assert_array_equal(w0[key], w1[key], err_msg=key)
        np.testing.assert_allclose(w0[key], ref[key], rtol=0, atol=5e-6, err_msg=key)
    # Only the chief keeps model checkpoints and versions; the other worker keeps its data position.
    ckpts = tmp_path / "r" / "checkpoints"
    assert tf.train.latest_checkpoint(str(ckpts)).endswith("ckpt-3")
    assert (ckpts / "worker-1" / "data-3.index").exists()
    assert not list(ckpts.glob(".worker-*"))
    assert [v.step for v in list_versions(tmp_path / "r")] == [3]
