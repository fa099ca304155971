"""The wheel the Dockerfile installs (`pip install .`) holds every package of the source tree."""

from __future__ import annotations

import tomllib
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_under_pipeline_and_train_goes_into_the_wheel() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "packages" in config and "find" in config["packages"], "list packages with packages.find"
    found = set(find_packages(str(ROOT), **config["packages"]["find"]))
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("pipeline", "train")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert on_disk <= found and {"train.archs", "train.inference", "train.weights"} <= found
