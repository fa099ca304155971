"""train.run.runlog: progress line format and TensorBoard event files readable without the tensorboard package."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from train.run.runlog import RunLog, format_duration, format_progress

METRICS = {
    "generator": 12.5,
    "perceptual": 0.1,
    "adversarial": -0.5,
    "pixel": 0.25,
    "critic": 1.5,
    "wasserstein": -0.2,
    "gp": 0.03,
}


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0, 59.4, 95, 3600, 7300)] == ["0s", "59s", "1m35s", "1h00m", "2h01m"]


def test_progress_line_names_step_losses_lr_speed_and_eta() -> None:
    line = format_progress(120, 1000, "G 12.5 (pix 0.25)", 1e-4, 3.25, 270)
    assert line == "step  120/1000  G 12.5 (pix 0.25)  lr 0.0001  3.25 img/s  ETA 4m30s"


def test_each_recipe_names_the_losses_that_are_on() -> None:
    from train.recipes.base import loss_parts

    assert loss_parts(METRICS, ("perceptual", "adversarial", "pixel", "psnr")) == "perc 0.1 adv -0.5 pix 0.25"


def test_events_hold_scalars_and_the_sample_image(tmp_path: Path) -> None:
    log = RunLog(tmp_path, steps=10, global_batch=4, is_chief=True)
    log.start(0)
    log.progress(5, METRICS, 2e-4, "G 12.5")
    log.scalars(5, "validation", {"psnr": 25.5})
    log.image(5, "samples/grid", np.zeros((6, 9, 3), np.uint8))
    log.close()
    values = {}
    for event in tf.compat.v1.train.summary_iterator(str(next((tmp_path / "logs").iterdir()))):
        for v in event.summary.value:
            values[v.tag] = (event.step, v.metadata.plugin_data.plugin_name, tf.make_ndarray(v.tensor))
    assert values["loss/gradient_penalty"][:2] == (5, "scalars")
    assert float(values["validation/psnr"][2]) == 25.5
    assert float(values["train/learning_rate"][2]) == np.float32(2e-4)
    step, plugin, tensor = values["samples/grid"]
    assert (step, plugin) == (5, "images") and tensor[:2].tolist() == [b"9", b"6"]
    assert tf.io.decode_png(tensor[2]).shape == (6, 9, 3)


def test_speed_and_eta_leave_out_the_first_call(tmp_path: Path, capsys) -> None:
    """A fit of 1000 steps at 10 steps/s whose first call (tracing, start-up) took 100 s: the first ETA is the
    95 s left, not the 32 minutes that counting the start-up gives."""
    now = [0.0]
    log = RunLog(tmp_path, steps=1000, global_batch=4, is_chief=True, clock=lambda: now[0])
    log.start(0)
    now[0] = 100.0
    log.call_done(1)  # the first call: one step and the tracing
    log.progress(1, METRICS, 1e-4, "G 12.5")  # nothing measured yet: no speed, no ETA
    now[0] = 105.0
    log.call_done(51)
    log.progress(51, METRICS, 1e-4, "G 12.5")
    now[0] = 110.0
    log.call_done(101)
    log.progress(101, METRICS, 1e-4, "G 12.5")
    log.close()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith("lr 0.0001")
    assert lines[1].endswith("40.00 img/s  ETA 1m35s") and lines[2].endswith("40.00 img/s  ETA 1m30s")
