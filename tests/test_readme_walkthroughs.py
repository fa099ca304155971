"""The README's two walkthroughs ("Use a published model in five minutes", "Reproduce a paper's number") run as
written, in a fresh directory, with the golden NAFNet checkpoint standing in for the download and a synthetic
GOPRO_Large standing in for the dataset."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from fault_helpers import ROOT, env

CLIS = {"trainctl": "train.cli", "gopro-prep": "pipeline.cli"}


def walkthrough(name: str) -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    marker = f"<!-- walkthrough: {name} (run by tests/test_readme_walkthroughs.py) -->"
    block = re.search(r"```bash\n(.*?)```", text[text.index(marker) :], re.S).group(1)
    return [shlex.split(line) for line in block.splitlines() if line.strip()]


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    tool, *args = argv
    args = [str(ROOT / a) if a.startswith("configs/") else a for a in args]  # the repo's config files
    cmd = [sys.executable, "-m", CLIS[tool], *args]
    done = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(argv)}:\n{done.stderr[-3000:]}"
    return done


def write_video(path: Path, frames: int = 5, size: tuple[int, int] = (96, 64)) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, size)
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    writer.release()


@pytest.mark.slow
def test_the_published_model_and_paper_number_walkthroughs_run_as_written(tmp_path: Path) -> None:
    shutil.copy(ROOT / "tests" / "golden" / "nafnet_w8.pth", tmp_path / "NAFNet-GoPro-width64.pth")
    write_video(tmp_path / "shaky.mp4")
    steps = walkthrough("published-model")
    assert [argv[:2] for argv in steps] == [
        ["trainctl", "import-weights"],
        ["trainctl", "deblur"],
        ["trainctl", "export"],
    ]
    outputs = [run(argv, tmp_path) for argv in steps]
    assert "as nafnet width=8" in outputs[0].stderr  # the stand-in is a width-8 NAFNet
    meta = json.loads((tmp_path / "runs/nafnet64-gopro/generator/v0001/meta.json").read_text())
    assert meta["imported"] == "pytorch" and meta["arch"]["train_size"] == 256
    video = cv2.VideoCapture(str(tmp_path / "deblurred" / "shaky.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    assert (tmp_path / "export/nafnet64/generator.tflite").stat().st_size > 0

    run(
        ["gopro-prep", "sample", "--out", "GOPRO_Large", "--scenes", "2", "--frames", "2", "--size", "96x64"],
        tmp_path,
    )
    steps = walkthrough("paper-number")
    assert [argv[:2] for argv in steps] == [["gopro-prep", "organize"], ["trainctl", "evaluate"]]
    run(steps[0], tmp_path)
    rows = [
        json.loads(line) for line in (tmp_path / "data/gopro-blur/manifest.jsonl").read_text().splitlines()
    ]
    assert rows and {r["blur"] for r in rows} == {"blur"}  # the papers' frames
    result = json.loads(run(steps[1], tmp_path).stdout)
    assert result["pad"] == "zero" and result["tlc"] is True and result["split"] == "test"
    assert 0 < result["ssim_3d"] <= 1 and 0 < result["ssim"] <= 1 and result["psnr"] > 0
