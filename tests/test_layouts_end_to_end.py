"""Each layout's tiny tree organized, sharded, inspected and evaluated; GOPRO + a RealBlur list in one dir trains.

The generator is an exact identity, so its scores equal the blurred input's: what is checked is the plumbing
(sources through manifest, records, dataset.json and meta.json; one table over several dirs; RealBlur's ECC
alignment chosen per source and recorded with its scores).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from layout_fixtures import mprnet_tree, realblur_tree
from shard_helpers import IN_PROCESS, read_dataset, shard_cfg
from tiny_generators import identity_generator, save_version
from typer.testing import CliRunner

from pipeline import inspect_shards, shard
from pipeline.config import OrganizeConfig
from pipeline.organize import run as organize
from train.cli import app as trainctl
from train.config import Config
from train.evaluation.eval_table import table_rows
from train.run.versions import read_meta

TINY = {
    "batch_size": 2,
    "crop_size": 32,
    "steps": 2,
    "mixed_precision": "float32",
    "generator": {"filters": 4, "blocks": 1},
    "critic": {"filters": 4, "updates": 1},
    "loss": {"perceptual": 0.0, "adversarial": 0.0, "pixel": 1.0, "perceptual_weights": "none"},
    "checkpoint_every": 2,
    "version_every": 2,
    "log_every": 1,
}


@pytest.fixture(scope="module")
def trees(tmp_path_factory, sample_raw: Path) -> dict[str, Path]:
    """Organized dirs: one per layout, and GOPRO + RealBlur-J (both lists) together."""
    root = tmp_path_factory.mktemp("layouts")
    hide = mprnet_tree(root, "HIDE", {"test": 3, "train": 2})
    realblur = realblur_tree(root, train=3, test=2, shift=1.5)  # blurred frames off by 1.5 pixels
    dirs = {name: root / name for name in ("gopro", "pairs", "list", "mixed")}
    organize(OrganizeConfig(raw=str(sample_raw), out=str(dirs["gopro"]), link="copy"))
    organize(OrganizeConfig(raw=str(hide), out=str(dirs["pairs"])))
    for split in ("train", "test"):
        lst = {"list": f"RealBlur_J_{split}_list.txt", "split": split}
        organize(OrganizeConfig.model_validate({"raw": str(realblur), "out": str(dirs["list"]), **lst}))
        organize(OrganizeConfig.model_validate({"raw": str(realblur), "out": str(dirs["mixed"]), **lst}))
    organize(OrganizeConfig(raw=str(sample_raw), out=str(dirs["mixed"])))
    return dirs


@pytest.fixture(scope="module")
def identity_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("identity_run")
    save_version(run_dir, identity_generator())
    return run_dir


@pytest.mark.parametrize(
    ("name", "pairs", "source"),
    [
        ("gopro", {"train": 9, "test": 3}, "GOPRO_Large"),
        ("pairs", {"train": 2, "test": 3}, "HIDE"),
        ("list", {"train": 3, "test": 2}, "RealBlur_J"),
    ],  # fmt: skip
)
def test_each_layout_shards_with_its_source(
    trees, tmp_path: Path, name: str, pairs: dict, source: str
) -> None:
    out = tmp_path / "shards"
    meta = shard.run(shard_cfg(trees[name], out, crops_per_pair=2), beam_args=IN_PROCESS)
    assert {s: v["pairs"] for s, v in meta["splits"].items()} == pairs
    for split, n in pairs.items():
        assert meta["splits"][split]["sources"] == {source: {"pairs": n, "examples": 2 * n, "rejected": 0}}
    _, records = read_dataset(out)
    assert {rec.source for recs in records.values() for rec in recs} == {source}
    inspect_shards.run(str(out))


def test_one_table_over_three_datasets(trees, identity_run: Path, tmp_path: Path) -> None:
    config = tmp_path / "p.yaml"
    config.write_text(json.dumps({"train": {"run_dir": str(identity_run)}}))
    srcs = [str(trees[name]) for name in ("gopro", "pairs", "list")]
    args = ["evaluate", str(config), "--out", str(tmp_path / "eval.json")]
    result = CliRunner().invoke(trainctl, [*args, *(x for src in srcs for x in ("--src", src))])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report == json.loads((tmp_path / "eval.json").read_text())
    assert (report["version"], report["split"]) == ("v0001", "test") and len(report["datasets"]) == 3
    gopro, hide, realblur = report["datasets"]
    assert [d["src"] for d in report["datasets"]] == srcs
    assert [(d["pairs"], d["align"]) for d in report["datasets"]] == [(3, "none"), (3, "none"), (2, "ecc")]
    for d in report["datasets"]:  # the identity's output is its input, aligned or not
        assert d["psnr"] == d["psnr_input"] and d["ssim"] == d["ssim_input"] and d["align_failed"] == 0
    assert realblur["per_source"]["RealBlur_J"]["align"] == "ecc"
    assert [row[:4] for row in table_rows(report["datasets"])] == [
        ["GOPRO_Large", srcs[0], "3", "none"],
        ["HIDE", srcs[1], "3", "none"],
        ["RealBlur_J", srcs[2], "2", "ecc"],
    ]
    assert "RealBlur_J" in result.output and "ecc" in result.output  # the table, on stderr
    scores = read_meta(identity_run / "generator" / "v0001")["metrics"]
    assert {f"test @ {srcs[0]}", f"test @ {srcs[1]}", f"test @ {srcs[2]} (ecc aligned)"} <= set(scores)
    assert scores[f"test @ {srcs[2]} (ecc aligned)"]["psnr"] == realblur["psnr"]
    # Without the alignment the offset of the RealBlur frames costs the input (and the identity) several dB.
    unaligned = CliRunner().invoke(trainctl, [*args, "--src", srcs[2], "--align", "none"])
    assert unaligned.exit_code == 0, unaligned.output
    plain = json.loads(unaligned.stdout)
    assert plain["align"] == "none" and plain["psnr_input"] < realblur["psnr_input"] - 3


def test_gopro_and_realblur_in_one_dir_shard_evaluate_and_train(
    trees, identity_run: Path, tmp_path: Path
) -> None:
    from train.evaluation.evaluate import evaluate_version
    from train.fit.trainer import run as fit

    out = tmp_path / "shards"
    meta = shard.run(shard_cfg(trees["mixed"], out, crops_per_pair=2), beam_args=IN_PROCESS)
    assert meta["splits"]["train"]["sources"] == {
        "GOPRO_Large": {"pairs": 9, "examples": 18, "rejected": 0},
        "RealBlur_J": {"pairs": 3, "examples": 6, "rejected": 0},
    }
    inspect_shards.run(str(out))
    import tensorflow as tf

    result = evaluate_version(
        str(identity_run / "generator" / "v0001"),
        str(trees["mixed"]),
        "test",
        0,
        2,
        tf.distribute.get_strategy(),
    )
    assert result["align"] == "mixed" and result["pairs"] == 5
    per_source = result["per_source"]
    assert {k: (v["pairs"], v["align"]) for k, v in per_source.items()} == {
        "GOPRO_Large": (3, "none"),
        "RealBlur_J": (2, "ecc"),
    }
    assert [row[0] for row in table_rows([result])] == ["GOPRO_Large", "RealBlur_J", "all"]
    cfg = Config.model_validate({"train": {**TINY, "data": str(out), "run_dir": str(tmp_path / "run")}})
    trained = fit(cfg)
    assert trained.step == 2 and (tmp_path / "run" / "generator" / "v0001" / "meta.json").exists()
