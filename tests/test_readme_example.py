"""The README's Python API example runs as written, against a real run dir, in a fresh process."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from fault_helpers import ROOT, env
from test_deblurrer import random_weights

from train.archs import deblurgan
from train.run.versions import write_version

MARKER = "<!-- python-api-example: run by tests/test_readme_example.py -->"


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    after = text[text.index(MARKER) + len(MARKER) :]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


def test_python_api_example_runs(tmp_path: Path) -> None:
    settings = deblurgan.DeblurGanSettings(filters=4, blocks=1, dropout=0.0)
    model = random_weights(deblurgan.build(settings, dtype="float32"), seed=0)
    for step in (1000, 2000):
        write_version(
            tmp_path / "runs" / "deblurgan",
            model,
            {"step": step, "arch": deblurgan.ARCH.describe(settings, 64)},
        )
    done = subprocess.run(
        [sys.executable, "-c", readme_example()],
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "v0002 (deblurgan, step 2000) (720, 1280, 3) uint8"
