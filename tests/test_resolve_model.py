"""`--model` of deblur and export: a version dir, the latest pointer, RUN/generator or a run dir with --version,
local or on an object store (TensorFlow's ram:// stands in for gs://)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest
from tiny_generators import identity_generator, save_version
from typer.testing import CliRunner

from pipeline.errors import DataError, UsageError
from train.cli import app
from train.run import rundir
from train.run.versions import resolve_model, update_metrics, write_version


def _run_with_three_versions(run_dir: str) -> list[str]:
    model = identity_generator()
    paths = [write_version(run_dir, model, {"step": step}) for step in (10, 20, 30)]
    update_metrics(paths[1], {"psnr": 30.0, "split": "test", "src": "o", "evaluated": "2026-01-01T00:00:00Z"})
    return paths


@pytest.fixture(scope="module", params=["local", "remote"])
def run_dir(request, tmp_path_factory) -> str:
    if request.param == "local":
        root = str(tmp_path_factory.mktemp("resolve") / "run")
    else:
        root = f"ram://resolve-{uuid.uuid4().hex[:8]}/run"
    _run_with_three_versions(root)
    return root


@pytest.mark.parametrize(
    ("form", "version", "want"),
    [
        ("{run}", None, "v0003"),
        ("{run}/", None, "v0003"),
        ("{run}", "latest", "v0003"),
        ("{run}", "best", "v0002"),
        ("{run}", "v0001", "v0001"),
        ("{run}/generator", None, "v0003"),
        ("{run}/generator", "v0002", "v0002"),
        ("{run}/generator/latest", None, "v0003"),
        ("{run}/generator/v0001", None, "v0001"),
        ("{run}/generator/v0001", "v0001", "v0001"),
    ],
)
def test_every_accepted_form(run_dir: str, form: str, version: str | None, want: str) -> None:
    got = resolve_model(form.format(run=run_dir), version)
    assert got == rundir.join(run_dir, "generator", want)


def test_wrong_paths_are_named(run_dir: str, tmp_path: Path) -> None:
    missing = rundir.join(run_dir, "nope")
    with pytest.raises(UsageError, match=f"^--model {missing}: no such file or directory"):
        resolve_model(missing)
    (tmp_path / "photos").mkdir()
    with pytest.raises(
        UsageError, match=f"^--model {tmp_path / 'photos'}: not a generator version dir or run dir"
    ):
        resolve_model(tmp_path / "photos")
    with pytest.raises(UsageError, match=r"no such version .*\(have: v0001, v0002, v0003\)"):
        resolve_model(run_dir, "v0009")
    with pytest.raises(UsageError, match="is already a version"):
        resolve_model(rundir.join(run_dir, "generator", "v0001"), "v0002")
    with pytest.raises(UsageError, match="is already a version"):
        resolve_model(rundir.join(run_dir, "generator", "latest"), "best")


def test_an_empty_run_or_a_broken_pointer_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "run" / "generator").mkdir(parents=True)
    with pytest.raises(DataError, match="no generator versions yet"):
        resolve_model(tmp_path / "run")
    save_version(tmp_path / "run", identity_generator())
    pointer = tmp_path / "run" / "generator" / "latest"
    pointer.write_text("v0007\n")
    with pytest.raises(DataError, match=f"^{pointer}: names 'v0007', which is not a complete version"):
        resolve_model(pointer)


def test_export_and_deblur_take_a_run_dir_and_version(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _run_with_three_versions(str(run))
    runner = CliRunner()
    exported = runner.invoke(
        app, ["export", "--model", str(run), "--version", "v0001", "--out", str(tmp_path / "export")]
    )
    assert exported.exit_code == 0, exported.output
    assert json.loads((tmp_path / "export" / "meta.json").read_text())["step"] == 10
    # No --model: the config's train.run_dir, its best version.
    config = tmp_path / "pipeline.yaml"
    config.write_text(json.dumps({"train": {"run_dir": str(run)}}))
    image = tmp_path / "in.png"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 256, (24, 30, 3), dtype=np.uint8))
    result = runner.invoke(
        app,
        ["deblur", str(image), "--out", str(tmp_path / "out"), "--version", "best", "--config", str(config)],
    )
    assert result.exit_code == 0, result.output
    assert (
        f"model: {run / 'generator' / 'v0002'}" in result.output and (tmp_path / "out" / "in.png").is_file()
    )
    wrong = runner.invoke(
        app, ["deblur", str(image), "--out", str(tmp_path / "o2"), "--model", str(tmp_path)]
    )
    assert (
        wrong.exit_code == 2 and f"--model {tmp_path}: not a generator version dir or run dir" in wrong.output
    )
