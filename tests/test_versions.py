"""Generator versions: atomic vNNNN dirs, latest/best resolution, pruning, metrics, loading, `trainctl versions`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tiny_generators import identity_generator, local_generator, save_version
from typer.testing import CliRunner

from pipeline.errors import DataError, UsageError
from train.cli import app
from train.run import versions


@pytest.fixture(scope="module")
def identity():
    return identity_generator()


def test_write_version_numbers_meta_and_latest(tmp_path: Path, identity) -> None:
    v1 = save_version(tmp_path, identity, step=10)
    v2 = save_version(tmp_path, identity, step=20)
    assert (v1.name, v2.name) == ("v0001", "v0002")
    assert (tmp_path / "generator" / "latest").read_text().strip() == "v0002"
    meta = versions.read_meta(v2)
    assert meta["version"] == "v0002" and meta["step"] == 20 and meta["metrics"] == {}
    assert set(meta["versions"]) == {"tf", "keras"} and meta["created"].endswith("Z")
    assert [v.name for v in versions.list_versions(tmp_path)] == ["v0001", "v0002"]
    # Leftovers of a killed writer and incomplete dirs are not versions.
    (tmp_path / "generator" / ".v0003.tmp-abc").mkdir()
    (tmp_path / "generator" / "v0009").mkdir()
    assert [v.name for v in versions.list_versions(tmp_path)] == ["v0001", "v0002"]
    assert Path(versions.resolve_version(tmp_path, "latest")) == v2


def test_resolve_version_latest_best_named_and_errors(tmp_path: Path, identity) -> None:
    with pytest.raises(DataError, match="no generator versions yet"):
        versions.resolve_version(tmp_path, "latest")
    v1 = save_version(tmp_path, identity, step=1)
    v2 = save_version(tmp_path, identity, step=2)
    assert Path(versions.resolve_version(tmp_path, "v0001")) == v1
    with pytest.raises(DataError, match="no version has metrics"):
        versions.resolve_version(tmp_path, "best")
    versions.update_metrics(v1, {"psnr": 30.0, "ssim": 0.9})
    versions.update_metrics(v2, {"psnr": 29.0})
    assert Path(versions.resolve_version(tmp_path, "best")) == v1
    with pytest.raises(UsageError, match=r"v0007.*have: v0001, v0002"):
        versions.resolve_version(tmp_path, "v0007")


def test_update_metrics_keeps_one_score_per_scope(tmp_path: Path, identity) -> None:
    """A train-split evaluation after a test-split one used to overwrite the test score in meta.json."""
    v = save_version(tmp_path, identity)
    versions.update_metrics(v, {"psnr": 25.5, "split": "test", "src": "o"})
    versions.update_metrics(v, {"psnr": 31.0, "ssim": 0.9, "split": "train", "src": "o"})
    versions.update_metrics(v, {"psnr": 26.0, "ssim": 0.8, "split": "test", "src": "o"})
    assert versions.read_meta(v)["metrics"] == {
        "test @ o": {"psnr": 26.0, "ssim": 0.8, "split": "test", "src": "o"},
        "train @ o": {"psnr": 31.0, "ssim": 0.9, "split": "train", "src": "o"},
    }
    assert not list(v.glob(".meta.json.*"))  # no temp files left


def test_scores_written_before_scopes_are_read_as_one_scope(tmp_path: Path, identity) -> None:
    v = save_version(tmp_path, identity)
    meta = versions.read_meta(v)
    meta["metrics"] = {"psnr": 27.0, "psnr_input": 25.0, "split": "test", "src": "o"}
    (v / versions.META_FILE).write_text(json.dumps(meta))
    assert versions.table_rows(tmp_path)[0][3:9] == ["test @ o", "27.00", "", "", "25.00", "+2.00"]
    versions.update_metrics(v, {"psnr": 30.0, "split": "train", "src": "o"})
    assert sorted(versions.read_meta(v)["metrics"]) == ["test @ o", "train @ o"]


def test_best_compares_only_versions_scored_on_the_latest_evaluations_data(tmp_path: Path, identity) -> None:
    v1, v2, v3 = (save_version(tmp_path, identity, step=s) for s in (10, 20, 30))
    versions.update_metrics(
        v1, {"psnr": 31.0, "split": "train", "src": "o", "evaluated": "2026-01-01T00:00:00Z"}
    )
    versions.update_metrics(
        v2, {"psnr": 25.0, "split": "test", "src": "o", "evaluated": "2026-01-02T00:00:00Z"}
    )
    assert Path(versions.resolve_version(tmp_path, "best")) == v2  # v1's train-split PSNR does not count
    versions.update_metrics(
        v3, {"psnr": 26.0, "split": "test", "src": "o", "evaluated": "2026-01-03T00:00:00Z"}
    )
    assert Path(versions.resolve_version(tmp_path, "best")) == v3
    versions.update_metrics(
        v1, {"psnr": 24.0, "split": "test", "src": "o", "evaluated": "2026-01-04T00:00:00Z"}
    )
    assert Path(versions.resolve_version(tmp_path, "best")) == v3
    # v1's train score is still there and is the best of its own scope.
    assert Path(versions.resolve_version(tmp_path, "best", scope="train @ o")) == v1
    with pytest.raises(DataError, match="no version has metrics on val @ o"):
        versions.resolve_version(tmp_path, "best", scope="val @ o")


def test_versions_table_shows_the_test_split_by_default(tmp_path: Path, identity) -> None:
    v1, v2 = save_version(tmp_path, identity, step=1), save_version(tmp_path, identity, step=2)
    versions.update_metrics(v1, {"psnr": 30.0, "psnr_input": 20.0, "split": "test", "src": "o"})
    versions.update_metrics(v1, {"psnr": 35.0, "psnr_input": 20.0, "split": "train", "src": "o"})
    versions.update_metrics(v2, {"psnr": 31.0, "psnr_input": 20.0, "split": "train", "src": "o"})
    rows = versions.table_rows(tmp_path)
    assert [(r[0], r[3], r[4], r[-1]) for r in rows] == [
        ("v0001", "test @ o", "30.00", "best"),
        ("v0002", "", "", "latest"),
    ]
    rows = versions.table_rows(tmp_path, split="train")
    assert [(r[0], r[4], r[-1]) for r in rows] == [("v0001", "35.00", "best"), ("v0002", "31.00", "latest")]
    assert len(versions.table_rows(tmp_path, split=None)) == 3


def test_prune_keeps_latest_and_best(tmp_path: Path, identity) -> None:
    for step in range(1, 5):
        save_version(tmp_path, identity, step=step)
    versions.update_metrics(tmp_path / "generator" / "v0001", {"psnr": 40.0})
    deleted = versions.prune_versions(tmp_path, keep=2)
    assert deleted == ["v0002", "v0003"]
    assert [v.name for v in versions.list_versions(tmp_path)] == ["v0001", "v0004"]
    # write_version prunes as it goes.
    versions.write_version(tmp_path, identity, {"step": 5}, keep=2)
    assert [v.name for v in versions.list_versions(tmp_path)] == ["v0001", "v0005"]


def test_load_generator_round_trip(tmp_path: Path) -> None:
    model = local_generator(seed=3)
    v = save_version(tmp_path, model)
    loaded = versions.load_generator(v)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 24, 20, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x, training=False).numpy(), model(x, training=False).numpy())
    with pytest.raises(UsageError, match="not a generator version dir"):
        versions.load_generator(tmp_path)
    (v / versions.MODEL_FILE).write_bytes(b"not a zip")
    with pytest.raises(DataError, match="cannot load generator"):
        versions.load_generator(v)


def test_read_meta_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no meta.json"):
        versions.read_meta(tmp_path)
    (tmp_path / versions.META_FILE).write_text("{oops")
    with pytest.raises(DataError, match="unreadable"):
        versions.read_meta(tmp_path)


def test_table_rows_show_metrics_gain_and_marks(tmp_path: Path, identity) -> None:
    v1 = save_version(tmp_path, identity, step=100)
    save_version(tmp_path, identity, step=200)
    versions.update_metrics(
        v1,
        {"psnr": 27.123, "ssim": 0.8512, "ssim_3d": 0.9013, "psnr_input": 25.0, "split": "test", "src": "o"},
    )
    rows = versions.table_rows(tmp_path)
    assert rows[0][:2] == ["v0001", "100"] and rows[0][3:] == [
        "test @ o",
        "27.12",
        "0.8512",
        "0.9013",
        "25.00",
        "+2.12",
        "best",
    ]
    assert rows[1][:2] == ["v0002", "200"] and rows[1][3:] == ["", "", "", "", "", "", "latest"]


def test_versions_cli(tmp_path: Path, identity) -> None:
    run_dir = tmp_path / "run"
    config = tmp_path / "pipeline.yaml"
    config.write_text(json.dumps({"train": {"run_dir": str(run_dir)}}))
    runner = CliRunner()
    empty = runner.invoke(app, ["versions", str(config)])
    assert empty.exit_code == 1 and "no generator versions yet" in empty.output
    v1 = save_version(run_dir, identity, step=100)
    save_version(run_dir, identity, step=200)
    versions.update_metrics(v1, {"psnr": 31.5, "ssim": 0.9, "psnr_input": 30.0, "split": "test", "src": "o"})
    result = runner.invoke(app, ["versions", str(config)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    first = next(line for line in lines if "v0001" in line)
    second = next(line for line in lines if "v0002" in line)
    assert "31.50" in first and "+1.50" in first and "best" in first and "latest" not in first
    assert "200" in second and "latest" in second
    # --set reaches the run dir too.
    other = runner.invoke(app, ["versions", str(config), "--set", f"train.run_dir={tmp_path / 'none'}"])
    assert other.exit_code == 1 and "none" in other.output
