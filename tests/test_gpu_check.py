"""benchmarks/gpu_check.py (`make gpu-check`): its `--dry` run is the same code on 2 logical CPU devices at tiny
sizes, so the GPU check cannot rot between the rare runs on a GPU VM; without a GPU it refuses in one line."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from fault_helpers import ROOT, env

SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def _run(*args: str, hide_gpus: bool = False) -> subprocess.CompletedProcess:
    environ = {**env(), **({"CUDA_VISIBLE_DEVICES": ""} if hide_gpus else {})}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=1800,
    )


def test_without_a_gpu_it_refuses_in_one_line() -> None:
    done = _run(hide_gpus=True)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "error: gpu_check: TensorFlow sees no GPU; run it on a GPU VM (or --dry for the CPU rehearsal)"
    ]


def _numbers(value: object) -> list[float]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _numbers(v)]
    if isinstance(value, list):
        return [x for v in value for x in _numbers(v)]
    return [float(value)] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


@pytest.mark.slow
def test_dry_run_prints_every_check_as_json_lines() -> None:
    done = _run("--dry", hide_gpus=True)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(ln) for ln in done.stdout.splitlines()]
    assert [ln["check"] for ln in lines] == [
        "devices", "nafnet_step", "nafnet_step", "mixed_fit", "deblurgan_step", "mirrored_scaling", "deblur",
        "deblur", "gopro_hours", "nafnet_step", "done",
    ]  # fmt: skip
    assert all(math.isfinite(x) for ln in lines for x in _numbers(ln))
    by = {ln["check"]: ln for ln in lines}
    assert by["devices"]["devices"] == ["/device:CPU:0", "/device:CPU:1"] and by["devices"]["gpus"] == []
    steps = [ln for ln in lines if ln["check"] == "nafnet_step"]
    assert [(s["precision"], s["xla"]) for s in steps] == [
        ("float32", False), ("mixed_float16", False), ("mixed_float16", True)
    ]  # fmt: skip
    assert all(s["finite"] and s["images_per_s"] > 0 and s["replicas"] == 1 for s in steps)
    fit = by["mixed_fit"]
    assert fit["ok"] and fit["float32"]["falls"] and fit["mixed_float16"]["falls"] and fit["cosine"] > 0.8
    assert by["deblurgan_step"]["finite"] and by["deblurgan_step"]["precision"] == "mixed_float16"
    scaling = by["mirrored_scaling"]
    assert scaling["replicas"] == 2 and scaling["global_batch"] == 2 * steps[0]["global_batch"]
    deblur = [ln for ln in lines if ln["check"] == "deblur"]
    assert [d["precision"] for d in deblur] == ["float32", "mixed_float16"]
    assert deblur[1]["max_levels_from_float32"] <= 2
    hours = by["gopro_hours"]
    assert hours["extrapolated"] is True
    assert [r["recipe"] for r in hours["recipes"]] == ["configs/nafnet-gopro.yaml", "pipeline.yaml"]
    nafnet = hours["recipes"][0]
    assert nafnet["hours"] == pytest.approx(200_000 * 32 / nafnet["measured_images_per_s"] / 3600, abs=0.06)
    assert "benchmarks/gpu_check.py" in (ROOT / "Makefile").read_text()


def test_a_spent_time_budget_stops_it_with_a_last_line() -> None:
    done = _run("--dry", "--budget-s", "0.5", hide_gpus=True)
    assert done.returncode == 124, done.stderr[-3000:]
    lines = [json.loads(ln) for ln in done.stdout.splitlines()]
    assert lines[-1] == {"check": "stopped", "reason": "time budget of 0.5 s spent"}
