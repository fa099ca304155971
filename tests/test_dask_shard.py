"""`gopro-prep shard --runner DaskRunner` on a real dask.distributed cluster of 2 worker processes.

The same records, counts and rejects as the local runner: dataset.json comes from the shards' own results
(DaskRunner has no metrics API), and the manifest reaches the workers through beam.Create (DaskRunner translates
no file source). The cluster is started here, its workers inherit PYTHONPATH so they import this package.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from fault_helpers import ROOT, gopro_prep, run
from shard_helpers import IN_PROCESS, copy_organized, manifest_rows, read_dataset, read_rejected, shard_cfg

from pipeline import inspect_shards, shard
from pipeline.beam_runner import DASK_RUNNER, dask_partitions, runner_path

distributed = pytest.importorskip("dask.distributed")


def test_dask_runner_name_and_partitions() -> None:
    assert runner_path("DaskRunner") == runner_path("dask") == DASK_RUNNER
    assert runner_path("DataflowRunner") == "DataflowRunner"
    assert dask_partitions(["--x=1"], 6) == ["--x=1", "--dask_npartitions=6"]
    assert dask_partitions(["--dask_partition_size=4"], 6) == ["--dask_partition_size=4"]


@pytest.mark.slow
def test_shard_on_a_two_process_dask_cluster_matches_the_local_runner(
    organized_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = copy_organized(organized_dir, tmp_path / "organized")
    broken = manifest_rows(src)[4]
    (src / broken["a"]).write_bytes(b"\x89PNG\r\n\x1a\n truncated")  # one reject, counted from the data
    config = tmp_path / "pipeline.yaml"
    config.write_text(json.dumps({"shard": {"encoding": "png", "shards": {"train": 3, "test": 2}}}))
    local, on_dask = tmp_path / "local", tmp_path / "dask"
    shard.run(shard_cfg(src, local, crops_per_pair=3), beam_args=IN_PROCESS)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, death_timeout=60
    )
    with cluster, distributed.Client(cluster) as client, distributed.get_task_stream(client) as tasks:
        args = ["shard", "--config", str(config), "--src", str(src), "--out", str(on_dask), "--crop", "32",
                "--crops-per-pair", "3", "--runner", "DaskRunner", "--", "--dask_client_address",
                cluster.scheduler_address]  # fmt: skip
        done = run(gopro_prep(*args))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "on DaskRunner" in done.stderr and "shard: 12 pairs, 33 examples, 1 rejected" in done.stderr
    assert len({task["worker"] for task in tasks.data}) == 2  # both worker processes ran part of it
    want, local_records = read_dataset(local)
    got, dask_records = read_dataset(on_dask)
    assert {k: v for k, v in got.items() if k != "created"} == {
        k: v for k, v in want.items() if k != "created"
    }
    assert got["splits"]["train"]["sources"] == {"GOPRO_Large": {"pairs": 9, "examples": 24, "rejected": 1}}
    for name in local_records:
        assert (on_dask / name).read_bytes() == (local / name).read_bytes(), name
    assert read_rejected(on_dask) == read_rejected(local) and len(read_rejected(on_dask)) == 1
    assert read_rejected(on_dask)[0]["path"] == str(src / broken["a"])
    inspect_shards.run(str(on_dask))


def test_dask_runner_without_dask_installed_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from pipeline.errors import UsageError
    from pipeline.shard import _require_dask

    monkeypatch.setitem(
        sys.modules, "dask.distributed", None
    )  # what `import` meets when the extra is missing
    with pytest.raises(UsageError, match=r"--runner DaskRunner: needs dask.distributed: pip install"):
        _require_dask("DaskRunner")
