"""`gopro-prep shard`: the Apache Beam pipeline from an organized dir's manifest to published TFRecord shards.

    ReadManifest -> AssignShards -> WriteShards -> WriteMetadata

Only small manifest rows cross the shuffles (GroupByKey by split, then by shard); each shard is then written by
one DoFn call that decodes every pair once, cuts the crops, encodes and appends records to its own file. That
keeps image bytes off the shuffle (NOTES.md: 0.84x of the decode limit vs 0.34x for ParDo -> WriteToTFRecord).
Everything is written into a staging dir next to OUT, dataset.json last, then renamed into place (publish.py).
dataset.json's counts come from the shards' own results, never from runner metrics.

On Beam's DaskRunner (2.77), which translates only Create, ParDo, GroupByKey and Flatten, ReadFromText cannot
run: it is a splittable-DoFn read (Impulse + SDF), and the runner has no translation for Impulse or for the
`Read` it replaces. There the launcher, which reads the manifest anyway, hands its rows to `beam.Create`.
"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import UTC, datetime
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
from apache_beam.runners.runner import create_runner

from pipeline import __version__, dataset_info, fsio, interrupts, manifest, publish
from pipeline.beam_runner import (
    LOCAL_RUNNER,
    WORKER_MODULE,
    dask_partitions,
    is_dask,
    local_runner,
    pipeline_options,
    quiet_failures,
    runner_path,
)
from pipeline.config import ShardConfig
from pipeline.console import debug_enabled, log
from pipeline.dataset_info import DATASET_FILE
from pipeline.dirlock import OutputLock
from pipeline.errors import DataError, UsageError
from pipeline.manifest import MANIFEST_FILE, ManifestSummary, Pair, parse_manifest_line, summarize_manifest
from pipeline.records import FORMAT_VERSION
from pipeline.shard_plan import REJECTED_FILE, assign_shards, check_crop, is_shards_dir_entry, shard_count
from pipeline.shard_writer import CropParams, write_metadata, write_shard

METRICS_NAMESPACE = "gopro-shard"
# How an OSError naming a file reads once Beam re-raised it from a worker: "[Errno 28] No space left on device: 'F'".
_OS_ERROR = re.compile(r"\[Errno \d+\] (?P<reason>[^\[\]]+?): '(?P<path>[^']+)'")


# ---- stages -------------------------------------------------------------------------------------------------


class ReadManifest(beam.PTransform):
    """manifest.jsonl (not a directory glob) -> one `Pair` per line; with `pairs` given (read by the launcher, for
    a runner that cannot read files: DaskRunner), those pairs."""

    def __init__(self, path: str, pairs: list[Pair] | None = None) -> None:
        super().__init__()
        self.path = path
        self.pairs = pairs

    def expand(self, pbegin):
        if self.pairs is not None:
            return pbegin | "CreatePairs" >> beam.Create(self.pairs)
        return (
            pbegin
            | "ReadLines" >> beam.io.ReadFromText(self.path)
            | "SkipBlank" >> beam.Filter(str.strip)
            | "Parse" >> beam.Map(parse_manifest_line, where=self.path)
        )


def _by_split(pair: Pair) -> tuple[str, Pair]:
    return pair.split, pair


def _assign(element: tuple[str, list[Pair]], counts: dict[str, int]):
    split, pairs = element
    return assign_shards(split, pairs, counts)


class AssignShards(beam.PTransform):
    """Pairs -> ((split, index, count), [pairs]): balanced round-robin per split, only small rows shuffled."""

    def __init__(self, counts: dict[str, int]) -> None:
        super().__init__()
        self.counts = dict(counts)

    def expand(self, pairs):
        return (
            pairs
            | "BySplit" >> beam.Map(_by_split)
            | "GroupBySplit" >> beam.GroupByKey()
            | "RoundRobin" >> beam.FlatMap(_assign, counts=self.counts)
            | "GroupByShard" >> beam.GroupByKey()
        )


def _log_progress(name: str, done: int, total: int) -> None:
    log(f"shard {name}: {done}/{total} pairs")


class WriteShardFn(beam.DoFn):
    """Thin shell over `write_shard`: one call writes one whole shard file and emits its counts."""

    def __init__(self, out_dir: str, params: CropParams) -> None:
        self.out_dir = out_dir
        self.params = params
        self.pairs = Metrics.counter(METRICS_NAMESPACE, "pairs")
        self.examples = Metrics.counter(METRICS_NAMESPACE, "examples")
        self.rejected = Metrics.counter(METRICS_NAMESPACE, "rejected")
        self.bytes = Metrics.counter(METRICS_NAMESPACE, "bytes")

    def process(self, element):
        key, pairs = element
        # make_dir=False: publish.prepare created the staging dir; a worker left running by a killed run must
        # fail rather than re-create it after the next run cleaned it up.
        res = write_shard(
            self.out_dir, tuple(key), pairs, self.params, progress=_log_progress, every_s=5.0, make_dir=False
        )
        self.pairs.inc(res["pairs"])
        self.examples.inc(res["examples"])
        self.rejected.inc(len(res["rejected"]))
        self.bytes.inc(res["bytes"])
        log(
            f"shard {res['file']}: {res['pairs']} pairs, {res['examples']} examples, {len(res['rejected'])} rejected"
        )
        yield res


class WriteShards(beam.PTransform):
    def __init__(self, out_dir: str, params: CropParams) -> None:
        super().__init__()
        self.out_dir, self.params = out_dir, params

    def expand(self, keyed):
        return keyed | "WriteShard" >> beam.ParDo(WriteShardFn(self.out_dir, self.params))


class WriteMetadata(beam.PTransform):
    """All shard results -> rejected.jsonl and dataset.json in the output dir."""

    def __init__(self, out_dir: str, base: dict[str, Any]) -> None:
        super().__init__()
        self.out_dir, self.base = out_dir, base

    def expand(self, results):
        return (
            results
            | "Collect" >> beam.combiners.ToList()
            | "Write" >> beam.Map(write_metadata, out_dir=self.out_dir, base=self.base)
        )


def build_pipeline(
    p: beam.Pipeline,
    manifest: str,
    out_dir: str,
    params: CropParams,
    counts: dict[str, int],
    base: dict[str, Any],
    pairs: list[Pair] | None = None,
):
    """Wire the four stages; returns the PCollection holding the dataset.json dict. `pairs`: see ReadManifest."""
    return (
        p
        | "ReadManifest" >> ReadManifest(manifest, pairs)
        | "AssignShards" >> AssignShards(counts)
        | "WriteShards" >> WriteShards(out_dir, params)
        | "WriteMetadata" >> WriteMetadata(out_dir, base)
    )


# ---- options and run ----------------------------------------------------------------------------------------


def new_pipeline(options: PipelineOptions) -> tuple[beam.Pipeline, str]:
    """An empty Pipeline on the runner the options name, and a description of that runner for the log.

    The local runner is our FnApiRunner; any other name goes to Beam. A runner that is not installed, or
    options it rejects (Dataflow without --project ...), are UsageErrors before anything is written.
    """
    name = options.view_as(StandardOptions).runner
    where = name
    try:
        if name == LOCAL_RUNNER:
            runner = local_runner(options)
            workers = options.view_as(DirectOptions).direct_num_workers
            where = f"{name} ({workers} worker{'s' if workers != 1 else ''})"
        else:
            if is_dask(name):
                _require_dask(name)
            runner = create_runner(runner_path(name))
        return beam.Pipeline(runner=runner, options=options), where
    except (ImportError, ValueError) as exc:
        problems = "; ".join(ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip())
        raise UsageError(f"--runner {name}: {problems or _beam_failure(exc)}") from None


def _require_dask(name: str) -> None:
    try:
        import dask.distributed  # noqa: F401
    except ImportError:
        raise UsageError(
            f"--runner {name}: needs dask.distributed: pip install 'apache-beam[dask]==2.77.*'"
        ) from None


def run_to_completion(p: beam.Pipeline) -> None:
    """Run a pipeline and wait for it; the Dask client a DaskRunner result holds is closed after (left open, it
    keeps reconnecting to a cluster that has gone). On SIGINT/SIGTERM the local runner's worker processes (which
    ignore signals) are ended first, then KeyboardInterrupt or Terminated is raised (pipeline.interrupts)."""
    with interrupts.ending_workers(WORKER_MODULE):
        result = p.run()
        try:
            result.wait_until_finish()
        finally:
            client = getattr(result, "client", None)
            if client is not None:
                client.close()


def _beam_failure(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[-1] if lines else exc.__class__.__name__


def _failure_message(exc: BaseException, where: str) -> str:
    """One line for a failed pipeline; an OS error in a worker (full disk, read-only dir) leads with its file."""
    last = _beam_failure(exc)
    found = _OS_ERROR.search(last)
    if found:
        return f"{found['path']}: {found['reason']} (shard pipeline failed on {where})"
    return f"shard pipeline failed on {where}: {last}"


def base_metadata(cfg: ShardConfig, summary: ManifestSummary) -> dict[str, Any]:
    """dataset.json fields known before the run (the per-split counts come from the shards)."""
    return {
        "format_version": FORMAT_VERSION,
        "crop_size": cfg.crop_size,
        "crops_per_pair": cfg.crops_per_pair,
        "seed": cfg.seed,
        "encoding": cfg.encoding,
        "blur": summary.blur,
        "source_manifest_sha256": summary.sha256,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "tool_version": __version__,
    }


def run(cfg: ShardConfig, overwrite: bool = False, beam_args: list[str] | None = None) -> dict[str, Any]:
    """Shard cfg.src's manifest into cfg.out (published atomically, under OUT's lock); returns dataset.json."""
    # A symlinked local OUT (data/shards -> /big/disk/shards) is published where it points, not replaced.
    out = cfg.out if fsio.is_remote(cfg.out) else os.path.realpath(cfg.out)
    summary = summarize_manifest(fsio.join(cfg.src, MANIFEST_FILE))
    too_small = check_crop(summary, cfg.crop_size)  # a crop no frame fits is refused before Beam starts
    counts = cfg.shards.model_dump()
    beam_args, inline = list(beam_args or []), None
    if is_dask(pipeline_options(cfg, beam_args).view_as(StandardOptions).runner):
        total_shards = sum(shard_count(split, counts, n) for split, n in summary.pairs.items())
        beam_args = dask_partitions(beam_args, total_shards)
        inline = manifest.read_pairs(cfg.src)  # no file source runs on DaskRunner (see the module docstring)
    options = pipeline_options(cfg, beam_args)
    p, where = new_pipeline(options)
    params = CropParams(cfg.src, cfg.crop_size, cfg.crops_per_pair, cfg.seed, cfg.encoding)
    total = sum(summary.pairs.values())
    with OutputLock(cfg.out, "shard") as lock:
        staging = publish.staging_path(out)
        try:
            publish.prepare(out, overwrite, DATASET_FILE, is_shards_dir_entry)
            per_split = ", ".join(f"{s} {n}" for s, n in summary.pairs.items())
            log(f"shard: {total} pairs ({per_split}) from {summary.path} -> {cfg.out} on {where}")
            if too_small:
                log(
                    f"shard: {too_small} of {total} pairs are smaller than the {cfg.crop_size}px crop: too_small"
                )
            _hint_parallelism(options, summary.pairs, counts)
            start = time.monotonic()
            build_pipeline(p, summary.path, staging, params, counts, base_metadata(cfg, summary), inline)
            try:
                with quiet_failures(not debug_enabled()):
                    run_to_completion(p)
            except Exception as exc:
                raise DataError(_failure_message(exc, where)) from None
            meta = _check_written(staging, summary.pairs)
            size = sum(
                fsio.size(fsio.join(staging, s["file"])) for v in meta["splits"].values() for s in v["shards"]
            )
            lock.verify()  # a remote lock lost meanwhile: the other run's dataset is not replaced
            with interrupts.deferred():  # Ctrl-C between publish's two renames would leave no OUT
                publish.publish(staging, out, DATASET_FILE)
        except BaseException:
            publish.discard(staging)
            raise
    seconds = time.monotonic() - start
    examples = sum(v["examples"] for v in meta["splits"].values())
    rejected = sum(v["rejected"] for v in meta["splits"].values())
    log(
        f"shard: {total} pairs, {examples} examples, {rejected} rejected, {size / 1e6:.1f} MB written "
        f"in {seconds:.1f} s ({total / seconds:.1f} pairs/s) -> {cfg.out}"
    )
    if rejected:
        log(f"shard: see {fsio.join(cfg.out, REJECTED_FILE)} for the {rejected} rejected pair(s)")
    return meta


def _hint_parallelism(options: PipelineOptions, pairs: dict[str, int], counts: dict[str, int]) -> None:
    """One shard is one unit of work: with fewer shards than local workers, some workers idle."""
    if options.view_as(StandardOptions).runner != LOCAL_RUNNER:
        return
    workers = options.view_as(DirectOptions).direct_num_workers
    shards = sum(shard_count(split, counts, n) for split, n in pairs.items())
    if shards < workers:
        log(f"shard: {shards} shards for {workers} workers, so only {shards} run at once (raise --shards)")


def _check_written(staging: str, expected: dict[str, int]) -> dict[str, Any]:
    """Read back dataset.json; every manifest pair must be accounted for, and something must be written."""
    meta = dataset_info.read(staging).meta
    got = {s: v["pairs"] for s, v in meta["splits"].items()}
    if got != expected:
        raise DataError(f"shard: pipeline accounted for {got} pairs, manifest lists {expected}")
    if not any(v["examples"] for v in meta["splits"].values()):
        rejects = [json.loads(ln) for ln in fsio.read_bytes(fsio.join(staging, REJECTED_FILE)).splitlines()]
        reasons = ", ".join(sorted({r["reason"] for r in rejects}))
        first = f"{rejects[0]['path']}: {rejects[0]['detail']}" if rejects else "no pairs"
        raise DataError(
            f"shard: all {len(rejects)} pairs rejected ({reasons}; e.g. {first}); nothing published"
        )
    return meta
