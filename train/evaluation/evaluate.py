"""`trainctl evaluate`: full-frame PSNR/SSIM of a generator version on organized A/B pairs, and of A itself.

Frames are read from the organized dirs' manifests (never crops), batched by size, run through the generator
(split over the strategy's replicas when there are several), rounded to uint8 and scored against B on CPU threads
while the next batch runs. The blurred input is scored the same way, so the gain over doing nothing is visible.
Several organized dirs (`--src` repeated, or `evaluate.src` as a list) are scored with one model load and shown in
one table, each dataset (source) on its own row. A RealBlur source is scored after RealBlur's ECC alignment
(`evaluate.align`, alignment.py), its blurred input too, so the gain does not count the alignment itself.
Each dir's result goes into the version's meta.json under its own scope; all of it to stdout as JSON and --out.
"""

from __future__ import annotations

import collections
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import fsio, manifest
from pipeline.console import log, track
from pipeline.errors import DataError
from train.config import Config
from train.evaluation.pair_scores import PairScore, align_for, score_pair, summarize
from train.run import rundir


def read_split_rows(src: str, split: str) -> list[dict[str, Any]]:
    """Manifest rows of one split (dicts with every manifest key), sorted by (scene, frame); DataError naming the
    missing dir, file or split."""
    pairs = manifest.read_pairs(src)
    rows = [pair.row() for pair in pairs if pair.split == split]
    if not rows:
        have = ", ".join(sorted({pair.split for pair in pairs})) or "none"
        raise DataError(
            f"{fsio.join(src, manifest.MANIFEST_FILE)}: no pairs in split {split!r} (splits present: {have})"
        )
    return sorted(rows, key=lambda r: (str(r["scene"]), str(r["frame"])))


def size_batches(rows: Sequence[dict[str, Any]], batch_size: int) -> list[list[dict[str, Any]]]:
    """Chunks of at most `batch_size` rows whose frames share one size (GOPRO frames are all 1280x720)."""
    by_size: dict[tuple[int, int], list[dict[str, Any]]] = collections.defaultdict(list)
    for row in rows:
        by_size[(int(row["height"]), int(row["width"]))].append(row)
    return [group[i : i + batch_size] for group in by_size.values() for i in range(0, len(group), batch_size)]


def _read_rgb(path: str) -> np.ndarray:
    img = fsio.read_image(path, rgb=True)
    if img is None:
        raise DataError(f"{path}: cannot read or decode image")
    return img


def load_pair(src: str, row: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(blur, sharp) uint8 RGB of one manifest row, checked against the manifest's size."""
    blur, sharp = _read_rgb(fsio.join(src, row["a"])), _read_rgb(fsio.join(src, row["b"]))
    want = (int(row["height"]), int(row["width"]))
    for name, img in ((row["a"], blur), (row["b"], sharp)):
        if img.shape[:2] != want:
            raise DataError(
                f"{fsio.join(src, name)}: size {img.shape[1]}x{img.shape[0]} but the manifest says {want[1]}x{want[0]}"
            )
    return blur, sharp


def evaluation_strategy(name: str) -> Any:
    """The training strategy choice (`train.strategy`), on this machine only: evaluation is one process, so a
    cluster setting (multi_worker, or auto with TF_CONFIG) mirrors over the local GPUs instead."""
    import tensorflow as tf

    from train.strategy import make_strategy

    if name == "multi_worker" or (name == "auto" and os.environ.get("TF_CONFIG", "").strip()):
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    return make_strategy(name)


def make_batch_predictor(
    generator: Any, strategy: Any, spec: Any, ensemble: bool = False, pad: str = "reflect"
) -> Callable[[np.ndarray], np.ndarray]:
    """uint8 [b,h,w,3] -> uint8 deblurred, through the one serving body (pad -> model -> crop -> uint8), the batch
    split evenly over the strategy's replicas."""
    import tensorflow as tf

    from train.inference.serving import restore_uint8

    restore = restore_uint8(generator, spec, ensemble, pad)
    replicas = strategy.num_replicas_in_sync

    @tf.function(reduce_retracing=True)
    def step(images: Any) -> Any:
        return strategy.run(restore, args=(images,))

    def predict(batch: np.ndarray) -> np.ndarray:
        n = batch.shape[0]
        # Equal shapes on every replica and on every call: repeat the last frame to fill the batch.
        fill = -n % replicas
        if fill:
            batch = np.concatenate([batch, np.repeat(batch[-1:], fill, axis=0)])
        chunks = np.split(batch, replicas)
        if replicas == 1:
            values: Any = tf.constant(chunks[0])
        else:
            values = strategy.experimental_distribute_values_from_function(
                lambda ctx: tf.constant(chunks[ctx.replica_id_in_sync_group])
            )
        parts = strategy.experimental_local_results(step(values))
        return np.concatenate([p.numpy() for p in parts])[:n]

    return predict


def _scored(
    rows: Sequence[dict[str, Any]],
    src: str,
    batch_size: int,
    crop_border: int,
    predict: Callable,
    align: Callable[[str | None], str] = lambda source: "none",
) -> Iterator[PairScore]:
    """Scores in row order: frames decode and metrics run on threads while the generator runs the next batch."""
    batches = size_batches(rows, batch_size)
    workers = max(2, min(8, os.cpu_count() or 2))
    with ThreadPoolExecutor(workers) as pool:
        pending: collections.deque[Future] = collections.deque()

        def loads(i: int) -> list[Future]:
            return [pool.submit(load_pair, src, row) for row in batches[i]] if i < len(batches) else []

        next_loads = loads(0)
        for i in track(range(len(batches)), total=len(batches), description="evaluate"):
            pairs = [f.result() for f in next_loads]
            next_loads = loads(i + 1)
            deblurred = predict(np.stack([blur for blur, _ in pairs]))
            for row, (blur, sharp), out in zip(batches[i], pairs, deblurred, strict=True):
                method = align(row.get("source"))
                pending.append(pool.submit(score_pair, row, blur, out, sharp, crop_border, method))
            while len(pending) > 2 * batch_size:  # bound the frames held in memory
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def evaluate_version(
    version_dir: str,
    src: str,
    split: str,
    crop_border: int,
    batch_size: int,
    strategy: Any,
    tlc: bool = True,
    ensemble: bool = False,
    align: str = "auto",
    pad: str = "reflect",
) -> dict[str, Any]:
    """Score one generator version on a split of an organized dir; returns the result dict (see summarize)."""
    return evaluate_sources(
        version_dir, [src], split, crop_border, batch_size, strategy, tlc, ensemble, align, pad
    )[0]


def evaluate_sources(
    version_dir: str,
    srcs: Sequence[str],
    split: str,
    crop_border: int,
    batch_size: int,
    strategy: Any,
    tlc: bool = True,
    ensemble: bool = False,
    align: str = "auto",
    pad: str = "reflect",
) -> list[dict[str, Any]]:
    """Score one generator version on a split of each organized dir (the model loaded once); one result per dir,
    in the order given. Every dir's manifest is read before the model loads, so a wrong path fails fast."""
    from train.inference.deblurrer import load
    from train.inference.serving import check_pad

    rows_of = {src: read_split_rows(src, split) for src in dict.fromkeys(srcs)}
    with strategy.scope():
        loaded = load(version_dir, tlc)
    spec, used_tlc = loaded.spec, loaded.tlc
    predict = make_batch_predictor(loaded.model, strategy, spec, ensemble, check_pad(pad))
    results = []
    for src, rows in rows_of.items():
        started = time.monotonic()
        scores = list(
            _scored(rows, src, batch_size, crop_border, predict, lambda source: align_for(align, source))
        )
        result = summarize(scores, rundir.name(version_dir), split, crop_border)
        result["src"] = str(src)
        if spec.tlc_base() is not None:
            result["tlc"] = used_tlc
        if ensemble:
            result["ensemble"] = True
        result["pad"] = pad
        result["replicas"] = int(strategy.num_replicas_in_sync)
        result["seconds"] = round(time.monotonic() - started, 3)
        results.append(result)
    return results


def run(
    cfg: Config,
    version: str = "latest",
    split: str | None = None,
    out: str | Path | None = None,
    strategy: Any = None,
    tlc: bool = True,
    ensemble: bool = False,
    srcs: Sequence[str] | None = None,
    align: str | None = None,
    pad: str | None = None,
) -> dict[str, Any]:
    """`trainctl evaluate`: score every organized dir (`srcs`, else evaluate.src), print the table (stderr) and the
    JSON (stdout: the result of one dir, or {"version", "split", "datasets": [...]} for several), write --out and
    meta.json (one scope per dir)."""
    from train.evaluation.eval_table import print_table
    from train.run.versions import resolve_version, update_metrics, write_json_atomic

    ev = cfg.evaluate
    split = split or ev.split
    version_dir = resolve_version(cfg.train.run_dir, version)
    strategy = strategy or evaluation_strategy(cfg.train.strategy)
    results = evaluate_sources(
        version_dir,
        list(srcs or ev.src),
        split,
        ev.crop_border,
        ev.batch_size,
        strategy,
        tlc,
        ensemble,
        align or ev.align,
        pad or ev.pad,
    )
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for result in results:
        result["evaluated"] = stamp
        update_metrics(version_dir, {k: v for k, v in result.items() if k != "version"})
        if result["align_failed"]:
            log(
                f"{result['src']}: ECC could not align {result['align_failed']} image(s); scored them unaligned"
            )
    report: dict[str, Any] = (
        results[0]
        if len(results) == 1
        else {"version": results[0]["version"], "split": split, "evaluated": stamp, "datasets": results}
    )
    if out is not None:
        write_json_atomic(out, report)
    print_table(results)
    for result in results:
        where = f" of {result['src']}" if len(results) > 1 else ""
        log(
            f"{result['version']} on {split}{where} ({result['pairs']} pairs): "
            f"PSNR {result['psnr']:.2f} dB vs input {result['psnr_input']:.2f} dB ({result['psnr_gain']:+.2f} dB), "
            f"SSIM {result['ssim']:.4f} vs input {result['ssim_input']:.4f}, "
            f"SSIM 3-D {result['ssim_3d']:.4f} vs input {result['ssim_3d_input']:.4f}"
        )
    print(json.dumps(report, indent=2, sort_keys=True), flush=True)
    return report
