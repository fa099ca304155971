"""train.fit.trainer with each recipe and architecture: NAFNet on the restoration recipe (no critic), EMA weights,
validation during fit, fine-tuning with init_from (lineage, arch mismatch), and what versions record."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from shards_fixture import write_shards

from pipeline.errors import UsageError
from train.config import Config
from train.evaluation.evaluate import evaluate_version
from train.fit.trainer import run
from train.run import versions

NAFNET = {"arch": "nafnet", "width": 4, "enc_blocks": [1, 1], "middle_blocks": 1, "dec_blocks": [1, 1]}
TINY = {
    "batch_size": 4,
    "crop_size": 32,
    "mixed_precision": "float32",
    "generator": NAFNET,
    "loss": {"perceptual": 0.0, "adversarial": 0.0, "pixel": 0.0, "psnr": 1.0, "perceptual_weights": "none"},
    "optimizer": {
        "name": "adamw",
        "lr": 1e-3,
        "weight_decay": 1e-3,
        "beta_1": 0.9,
        "beta_2": 0.9,
        "schedule": "cosine",
        "min_lr": 1e-7,
        "clip_norm": 1.0,
    },
    "checkpoint_every": 2,
    "version_every": 3,
    "keep_versions": 5,
    "log_every": 1,
}


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shards(tmp_path_factory.mktemp("fit") / "shards", pairs=6, crop_size=40, crops_per_pair=2)


def cfg(shards: Path, run_dir: Path, **train: object) -> Config:
    return Config.model_validate({"train": {**TINY, "data": str(shards), "run_dir": str(run_dir), **train}})


def weights(model: object) -> list[np.ndarray]:
    return [np.array(w) for w in model.get_weights()]  # type: ignore[attr-defined]


def checkpoint_objects(run_dir: Path) -> set[str]:
    latest = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    return {key.split("/", 1)[0] for key, _ in tf.train.list_variables(latest)}


def test_nafnet_with_ema_resumes_exactly_and_versions_hold_the_ema_weights(
    shards: Path, tmp_path: Path
) -> None:
    # The linear schedule is constant here; a cosine curve depends on train.steps, which 3 + 3 changes.
    linear = {**TINY["optimizer"], "schedule": "linear", "decay_start": 100}
    resumed = run(cfg(shards, tmp_path / "a", steps=3, ema_decay=0.5, optimizer=linear))
    resumed = run(cfg(shards, tmp_path / "a", steps=6, ema_decay=0.5, optimizer=linear))
    straight = run(cfg(shards, tmp_path / "b", steps=6, ema_decay=0.5, optimizer=linear))
    assert resumed.step == straight.step == 6
    for a, b in zip(weights(resumed.generator), weights(straight.generator), strict=True):
        assert np.array_equal(a, b)
    # No critic with adversarial 0: nothing of it is built, checkpointed or updated.
    assert "critic" not in checkpoint_objects(tmp_path / "a") and "ema" in checkpoint_objects(tmp_path / "a")
    meta = versions.read_meta(versions.resolve_version(tmp_path / "a", "latest"))
    assert (
        meta["arch"]["name"] == "nafnet"
        and meta["arch"]["stride"] == 4
        and meta["arch"]["input_range"] == [0, 1]
    )
    assert meta["arch"]["settings"]["enc_blocks"] == [1, 1] and meta["arch"]["train_size"] == 32
    assert meta["ema"] == {"decay": 0.5}
    # The version holds the EMA weights (same in both runs), not the last step's.
    saved = versions.load_generator(versions.resolve_version(tmp_path / "a", "latest"))
    other = versions.load_generator(versions.resolve_version(tmp_path / "b", "latest"))
    for a, b in zip(weights(saved), weights(other), strict=True):
        np.testing.assert_array_equal(a, b)
    trained = weights(resumed.generator)
    assert any(not np.allclose(a, b) for a, b in zip(weights(saved), trained, strict=True))


def test_ema_average_follows_the_formula(shards: Path, tmp_path: Path) -> None:
    """One step with decay d: ema = d * initial + (1 - d) * after_one_step, per weight."""
    zero = run(cfg(shards, tmp_path / "z", steps=1, ema_decay=0.25, optimizer={"lr": 1e-12}, version_every=1))
    first = versions.load_generator(versions.resolve_version(tmp_path / "z", "latest"))
    one = run(cfg(shards, tmp_path / "o", steps=1, ema_decay=0.25, version_every=1))
    ema = versions.load_generator(versions.resolve_version(tmp_path / "o", "latest"))
    for initial, after, got in zip(weights(first), weights(one.generator), weights(ema), strict=True):
        np.testing.assert_allclose(got, 0.25 * initial + 0.75 * after, rtol=1e-5, atol=1e-7)
    assert zero.step == 1


def test_validation_during_fit_scores_each_version(
    shards: Path, tmp_path: Path, organized_dir: Path, capfd: pytest.CaptureFixture
) -> None:
    validate = {"every": 2, "src": str(organized_dir), "split": "test", "frames": 3}  # all 3 test frames
    run(cfg(shards, tmp_path / "r", steps=3, validate=validate))
    err = capfd.readouterr().err
    assert "validation at step 2 on 3 test frames" in err and "validation at step 3 on 3 test frames" in err
    version = versions.resolve_version(tmp_path / "r", "latest")
    meta = versions.read_meta(version)
    scope = f"test @ {organized_dir} (3 frames)"
    score = meta["metrics"][scope]
    assert score["frames"] == 3 and score["step"] == 3 and 10 < score["psnr_input"] < 60
    # A version's validation score is what `evaluate` gives that version on the same frames and settings (TLC
    # on): validation scoring a stale copy of the generator (TLC's, made at step 2) would differ.
    evaluated = evaluate_version(version, str(organized_dir), "test", 0, 4, tf.distribute.get_strategy())
    assert evaluated["pairs"] == 3 and evaluated["tlc"] is True
    for key in ("psnr", "ssim", "psnr_input", "ssim_input"):
        assert score[key] == pytest.approx(evaluated[key], abs=1e-5), key
    assert score["psnr_gain"] == pytest.approx(score["psnr"] - score["psnr_input"])
    rows = versions.table_rows(tmp_path / "r")
    assert [(r[0], r[3]) for r in rows] == [("v0001", scope)]
    assert versions.resolve_version(tmp_path / "r", "best").endswith("v0001")
    tags = set()
    for event_file in (tmp_path / "r" / "logs").iterdir():
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags.update(v.tag for v in event.summary.value)
    assert {"validation/psnr", "validation/ssim", "validation/psnr_gain"} <= tags


def test_init_from_starts_from_a_version_and_records_the_lineage(
    shards: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    pre = run(cfg(shards, tmp_path / "pre", steps=2, version_every=2))
    assert pre.learning_rate == pytest.approx(1e-7, rel=1e-4)  # cosine on the step counter: min_lr at the end
    source = versions.resolve_version(tmp_path / "pre", "latest")
    # A learning rate of ~0: the fine-tuned generator stays at the source version's weights.
    tuned = run(
        cfg(
            shards,
            tmp_path / "ft",
            steps=1,
            version_every=1,
            optimizer={"lr": 1e-12},
            init_from=str(tmp_path / "pre"),
        )
    )
    for a, b in zip(weights(tuned.generator), weights(versions.load_generator(source)), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    lineage = json.loads((tmp_path / "ft" / "run.json").read_text())["init_from"]
    assert lineage["path"] == source and lineage["step"] == 2 and lineage["version"] == "v0001"
    assert versions.read_meta(versions.resolve_version(tmp_path / "ft", "latest"))["init_from"] == lineage
    # A resumed run keeps its own weights and says init_from is ignored.
    run(
        cfg(
            shards,
            tmp_path / "ft",
            steps=2,
            version_every=1,
            optimizer={"lr": 1e-12},
            init_from=str(tmp_path / "pre"),
        )
    )
    assert "train.init_from=" in capfd.readouterr().err
    assert json.loads((tmp_path / "ft" / "run.json").read_text())["init_from"] == lineage
    # Another architecture, or another shape of the same one, is refused naming the difference.
    deblurgan = {"filters": 4, "blocks": 1, "dropout": 0.0}
    with pytest.raises(UsageError, match=r"holds a nafnet generator, but train.generator.arch is deblurgan"):
        run(cfg(shards, tmp_path / "x", steps=1, generator=deblurgan, init_from=source))
    with pytest.raises(UsageError, match=r"generator.width=4, but train.generator.width is 8"):
        run(cfg(shards, tmp_path / "y", steps=1, generator={**NAFNET, "width": 8}, init_from=source))
    with pytest.raises(UsageError, match=r"train.init_from: .*nowhere"):
        run(cfg(shards, tmp_path / "z", steps=1, init_from=str(tmp_path / "nowhere")))


def test_the_nafnet_gopro_recipe_file_trains_when_shrunk(shards: Path, tmp_path: Path) -> None:
    """configs/nafnet-gopro.yaml as outside checks run it: the width and block lists overridden to a small size."""
    from pipeline.config import load_config

    overrides = [
        "train.generator.width=4",
        "train.generator.enc_blocks=[1,1,1,1]",
        "train.generator.dec_blocks=[1,1,1,1]",
        f"train.data={shards}",
        f"train.run_dir={tmp_path / 'run'}",
        "train.crop_size=32",
        "train.batch_size=4",
        "train.steps=2",
        "train.mixed_precision=float32",
    ]
    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "nafnet-gopro.yaml", overrides)
    assert (
        cfg.train.optimizer.name == "adamw" and cfg.train.loss.psnr == 1.0 and cfg.train.loss.adversarial == 0
    )
    assert cfg.organize.blur == "blur" and cfg.evaluate.src == [cfg.organize.out]  # the papers' GOPRO frames
    result = run(cfg)
    assert result.step == 2
    meta = versions.read_meta(versions.resolve_version(tmp_path / "run", "latest"))
    assert meta["arch"]["name"] == "nafnet" and meta["arch"]["stride"] == 16


def critic_score_bias(run_dir: Path) -> float:
    """The critic's last bias (the only one-element trainable variable), from the run's latest checkpoint."""
    latest = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    keys = [
        key
        for key, shape in tf.train.list_variables(latest)
        if key.startswith("critic_optimizer/_trainable_variables/") and shape == [1]
    ]
    assert len(keys) == 1, keys
    return float(tf.train.load_variable(latest, keys[0])[0])


def test_critic_drift_term_holds_the_score_level(shards: Path, tmp_path: Path) -> None:
    """The Wasserstein and penalty terms give the critic's score bias a gradient of exactly 0 (a constant on every
    score changes neither), so Adam never moves it and the scores' level is left to drift with the weights;
    `train.critic.drift` gives it a gradient toward the zero level, and Adam moves it by about lr per update."""
    gan = {
        "generator": {"arch": "deblurgan", "filters": 4, "blocks": 1},
        "loss": {"perceptual": 0.0, "adversarial": 0.01, "pixel": 1.0, "perceptual_weights": "none"},
        "optimizer": {"lr": 1e-3},
        "steps": 3,
    }
    bias = {}
    for drift in (0.0, 0.01):
        run_dir = tmp_path / f"drift-{drift}"
        run(cfg(shards, run_dir, **gan, critic={"filters": 4, "updates": 2, "drift": drift}))
        bias[drift] = critic_score_bias(run_dir)
    assert bias[0.0] == 0.0
    assert 0.0 < abs(bias[0.01]) < 2 * (3 * 2 * 1e-3)  # 3 steps of 2 critic updates


def logged(run_dir: Path, tag: str) -> dict[int, float]:
    """A `loss/*` scalar from RUN/logs by step."""
    found = {}
    for event_file in sorted((run_dir / "logs").iterdir()):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            for value in event.summary.value:
                if value.tag == tag:
                    found[event.step] = float(tf.make_ndarray(value.tensor))
    return found


def test_adversarial_weight_is_lowered_to_the_cap_and_only_then() -> None:
    from train.recipes.gan import adversarial_weight

    def plain(weight: float, cap: float, rec: float, adv: float) -> tuple[float, float]:
        applied, share = adversarial_weight(weight, cap, tf.constant(rec), tf.constant(adv))
        return float(applied), float(share)

    assert plain(0.01, 0.05, 2.0, 30.0) == pytest.approx((0.05 * 2 / 30, 0.05))  # binds: share = cap
    # above the share 0.01 * 30 / 2: no change
    assert plain(0.01, 0.5, 2.0, 30.0) == pytest.approx((0.01, 0.15))
    assert plain(0.01, 0.05, 2.0, 0.0) == pytest.approx((0.01, 0.0))  # no adversarial gradient: weight kept


def test_adversarial_cap_is_the_same_step_as_the_weight_it_computes(shards: Path, tmp_path: Path) -> None:
    """One GAN step four ways from the same start: with a cap far above the share (it logs the share s of the
    output-kernel gradient and changes nothing, to the bit, against no cap, which skips the kernel gradients),
    with a cap c < s (the weight is lowered to w * c / s, the logged share is c), and without a cap at that
    lowered weight: the last two are the same update."""
    w = 0.05
    gan = {
        "generator": {"arch": "deblurgan", "filters": 4, "blocks": 1, "dropout": 0.0},
        "critic": {"filters": 4, "updates": 1},
        "optimizer": {"lr": 1e-3},
        "steps": 1,
        "checkpoint_every": 1,
        "version_every": 1,
    }

    def step(name: str, adversarial: float, cap: float | None) -> tuple[list[np.ndarray], dict[str, float]]:
        loss = {"perceptual": 0.0, "adversarial": adversarial, "adversarial_cap": cap, "pixel": 1.0}
        result = run(cfg(shards, tmp_path / name, **gan, loss={**loss, "perceptual_weights": "none"}))
        tags = ("adversarial_share", "generator_total")
        return weights(result.generator), {tag: logged(tmp_path / name, f"loss/{tag}").get(1) for tag in tags}

    free, free_log = step("free", w, None)
    assert free_log["adversarial_share"] is None  # not computed without a cap
    loose, loose_log = step("loose", w, 1e6)
    share = loose_log["adversarial_share"]
    assert share > 0
    for a, b in zip(free, loose, strict=True):
        np.testing.assert_array_equal(a, b)
    cap = share / 4
    capped, capped_log = step("capped", w, cap)
    assert capped_log["adversarial_share"] == pytest.approx(cap, rel=1e-5)
    lowered, lowered_log = step("lowered", w * cap / share, None)
    # The logged total is L1 + applied weight * adversarial: the same for both, not the free run's.
    capped_total, lowered_total = capped_log["generator_total"], lowered_log["generator_total"]
    assert capped_total == pytest.approx(lowered_total, rel=1e-6)
    assert abs(capped_total - free_log["generator_total"]) > 1e-4
    for a, b in zip(capped, lowered, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert any(not np.allclose(a, b, rtol=1e-5, atol=1e-7) for a, b in zip(free, capped, strict=True))


def test_no_cap_without_a_restoration_loss(shards: Path, tmp_path: Path) -> None:
    """An adversarial-only generator loss has nothing to compare the adversarial gradient with: the default cap
    does not apply (it would set the weight to 0), and no share is logged."""
    loss = {"perceptual": 0.0, "adversarial": 1.0, "pixel": 0.0, "perceptual_weights": "none"}
    gan = {
        "generator": {"arch": "deblurgan", "filters": 4, "blocks": 1},
        "critic": {"filters": 4, "updates": 1},
    }
    run(cfg(shards, tmp_path / "r", **gan, loss=loss, steps=1, checkpoint_every=1, version_every=1))
    assert Config.model_validate({"train": {"loss": loss}}).train.loss.adversarial_cap == 0.01
    assert logged(tmp_path / "r", "loss/adversarial_share") == {}
    total, adversarial = (
        logged(tmp_path / "r", f"loss/{tag}")[1] for tag in ("generator_total", "adversarial")
    )
    assert total == pytest.approx(adversarial, rel=1e-6) and total != 0.0


@pytest.mark.slow
def test_jit_compile_trains_the_same_steps_through_xla(
    shards: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    """`train.jit_compile: true` has XLA compile each replica's step: the same two steps from the same start give
    the same weights (up to float rounding in fused kernels)."""
    plain = run(cfg(shards, tmp_path / "p", steps=2))
    assert "XLA" not in capfd.readouterr().err
    xla = run(cfg(shards, tmp_path / "x", steps=2, jit_compile=True))
    assert "precision float32, XLA," in capfd.readouterr().err
    assert json.loads((tmp_path / "x" / "run.json").read_text())["train"]["jit_compile"] is True
    for a, b in zip(weights(plain.generator), weights(xla.generator), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
