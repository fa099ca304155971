"""TensorFlow's start-up noise never reaches the terminal (unless --debug), real errors still do, and
`trainctl versions` on a local run dir does not import TensorFlow at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from fault_helpers import ROOT, env, trainctl
from tiny_generators import local_generator, save_version

from train.tf_startup import filtered_fd2, is_startup_noise

# Printed by `import tensorflow` and the first device query on a CPU machine (TF 2.21), copied from a terminal.
NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    "I0000 00:00:1796004563.859754    4891 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU "
    "will not be used.\n",
    "I0000 00:00:1796004574.162788    4982 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use "
    "available CPU instructions in performance-critical operations.\n",
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the appropriate "
    "compiler flags.\n",
    "E0000 00:00:1796004569.142132    4891 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
    "Failed call to cuInit: UNKNOWN ERROR (303)\n",
]
REAL = [
    "E0000 00:00:1796004569.142132    4891 op_kernel.cc:1857] OP_REQUIRES failed: out of memory\n",
    "W0000 00:00:1796004569.142132    4891 gpu_bfc_allocator.cc:47] allocation failed\n",
    "/x/site-packages/keras/src/ops.py:3: UserWarning: something real\n",
    "Traceback (most recent call last):\n",
]


def test_known_startup_lines_are_noise_and_nothing_else() -> None:
    assert all(is_startup_noise(line) for line in NOISE)
    assert not any(is_startup_noise(line) for line in REAL)


def test_filtered_fd2_replays_what_is_not_noise(capfd: pytest.CaptureFixture[str]) -> None:
    with filtered_fd2():
        os.write(2, "".join(NOISE[:2] + REAL[:1] + NOISE[2:] + REAL[1:2]).encode())
    assert capfd.readouterr().err == REAL[0] + REAL[1]


def test_filtered_fd2_replays_everything_when_the_block_fails(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ImportError), filtered_fd2():
        os.write(2, "".join(NOISE).encode())
        raise ImportError("no tensorflow")
    assert capfd.readouterr().err == "".join(NOISE)


@pytest.mark.slow
def test_trainctl_deblur_prints_no_tensorflow_startup_lines(tmp_path: Path) -> None:
    version = save_version(tmp_path / "run", local_generator(seed=2), step=5)
    image = tmp_path / "in.png"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 256, (24, 30, 3), dtype=np.uint8))
    cmd = trainctl("deblur", "--model", str(version), str(image), "--out", str(tmp_path / "out"))
    done = subprocess.run(cmd, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        f"model: {version}",
        f"in.png: 8-bit RGB 30x24 -> {tmp_path / 'out' / 'in.png'}",
        f"deblurred 1 of 1 inputs into {tmp_path / 'out'} with v0001 (deblurgan, step 5)",
    ]
    debug = subprocess.run([*cmd[:3], "--debug", *cmd[3:]], cwd=ROOT, env=env(), capture_output=True, text=True,
                           timeout=240)  # fmt: skip
    assert debug.returncode == 0 and "cuda" in debug.stderr.lower()  # --debug hides nothing


def test_trainctl_versions_does_not_import_tensorflow(tmp_path: Path) -> None:
    """It reads meta.json files only: 5 s of TensorFlow import and its noise were for nothing."""
    run_dir = tmp_path / "run"
    save_version(run_dir, local_generator(seed=3), step=7)
    config = tmp_path / "pipeline.yaml"
    config.write_text(json.dumps({"train": {"run_dir": str(run_dir)}}))
    script = (
        "import sys\n"
        "from train.cli import app\n"
        f"code = app(['versions', {str(config)!r}], standalone_mode=False)\n"
        "print('exit', code, 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "v0001" in done.stdout and done.stdout.splitlines()[-1] == "exit None False False"
    assert done.stderr == ""
