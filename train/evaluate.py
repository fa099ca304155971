"""`trainctl evaluate`: full-frame PSNR/SSIM of a generator version on organized A/B pairs, and of A itself.

Frames are read from the organized dir's manifest (never crops), batched by size, run through the generator
(split over the strategy's replicas when there are several), rounded to uint8 and scored against B on CPU threads
while the next batch runs. The blurred input is scored the same way, so the gain over doing nothing is visible.
The result goes to stdout as JSON, optionally to --out, and into the version's meta.json `metrics`.
"""

from __future__ import annotations

import collections
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import fsio
from pipeline.config import Config
from pipeline.console import log, track
from pipeline.errors import DataError
from train import rundir
from train.metrics import psnr, ssim

PSNR_CAP_DB = 100.0  # identical images have infinite PSNR; cap per pair so means and JSON stay finite
MANIFEST = "manifest.jsonl"
METRIC_KEYS = ("psnr", "ssim", "psnr_input", "ssim_input")


@dataclass(frozen=True)
class PairScore:
    scene: str
    frame: str
    psnr: float
    ssim: float
    psnr_input: float
    ssim_input: float


def read_split_rows(src: str, split: str) -> list[dict[str, Any]]:
    """Manifest rows of one split, sorted by (scene, frame); DataError naming the missing dir/file/split."""
    manifest = fsio.join(src, MANIFEST)
    if not fsio.exists(src):
        raise DataError(
            f"{src}: organized dir not found (run `gopro-prep organize` first, or set evaluate.src)"
        )
    if not fsio.exists(manifest):
        raise DataError(f"{manifest}: no manifest; is {src} an organized dir? (run `gopro-prep organize`)")
    rows, splits = [], set()
    text = fsio.read_bytes(manifest).decode("utf-8", errors="replace")
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            splits.add(row["split"])
            if row["split"] == split:
                rows.append({k: row[k] for k in ("split", "scene", "frame", "a", "b", "width", "height")})
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(
                f"{manifest}:{lineno}: bad manifest row ({exc.__class__.__name__}: {exc})"
            ) from None
    if not rows:
        have = ", ".join(sorted(splits)) or "none"
        raise DataError(f"{manifest}: no pairs in split {split!r} (splits present: {have})")
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


def score_pair(
    row: dict[str, Any], blur: np.ndarray, deblurred: np.ndarray, sharp: np.ndarray, crop_border: int
) -> PairScore:
    return PairScore(
        scene=str(row["scene"]),
        frame=str(row["frame"]),
        psnr=min(PSNR_CAP_DB, psnr(deblurred, sharp, crop_border=crop_border)),
        ssim=ssim(deblurred, sharp, crop_border=crop_border),
        psnr_input=min(PSNR_CAP_DB, psnr(blur, sharp, crop_border=crop_border)),
        ssim_input=ssim(blur, sharp, crop_border=crop_border),
    )


def _means(scores: Sequence[PairScore]) -> dict[str, Any]:
    out: dict[str, Any] = {k: float(np.mean([getattr(s, k) for s in scores])) for k in METRIC_KEYS}
    out["pairs"] = len(scores)
    return out


def summarize(scores: Sequence[PairScore], version: str, split: str, crop_border: int) -> dict[str, Any]:
    """Mean metrics over all pairs, the PSNR gain over the input, and the same means per scene."""
    by_scene: dict[str, list[PairScore]] = collections.defaultdict(list)
    for s in scores:
        by_scene[s.scene].append(s)
    result = {"version": version, "split": split, "crop_border": crop_border, **_means(scores)}
    result["psnr_gain"] = result["psnr"] - result["psnr_input"]
    result["per_scene"] = {scene: _means(group) for scene, group in sorted(by_scene.items())}
    return result


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
    generator: Any, strategy: Any, spec: Any, ensemble: bool = False
) -> Callable[[np.ndarray], np.ndarray]:
    """uint8 [b,h,w,3] -> uint8 deblurred, through the one serving body (pad -> model -> crop -> uint8), the batch
    split evenly over the strategy's replicas."""
    import tensorflow as tf

    from train.inference.serving import restore_uint8

    restore = restore_uint8(generator, spec, ensemble)
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
    rows: Sequence[dict[str, Any]], src: str, batch_size: int, crop_border: int, predict: Callable
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
                pending.append(pool.submit(score_pair, row, blur, out, sharp, crop_border))
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
) -> dict[str, Any]:
    """Score one generator version on a split of an organized dir; returns the result dict (see summarize)."""
    from train.inference.deblurrer import load

    rows = read_split_rows(src, split)
    with strategy.scope():
        loaded = load(version_dir, tlc)
    spec, used_tlc = loaded.spec, loaded.tlc
    predict = make_batch_predictor(loaded.model, strategy, spec, ensemble)
    started = time.monotonic()
    scores = list(_scored(rows, src, batch_size, crop_border, predict))
    result = summarize(scores, rundir.name(version_dir), split, crop_border)
    result["src"] = str(src)
    if spec.tlc_base() is not None:
        result["tlc"] = used_tlc
    if ensemble:
        result["ensemble"] = True
    result["replicas"] = int(strategy.num_replicas_in_sync)
    result["seconds"] = round(time.monotonic() - started, 3)
    return result


def run(
    cfg: Config,
    version: str = "latest",
    split: str | None = None,
    out: str | Path | None = None,
    strategy: Any = None,
    tlc: bool = True,
    ensemble: bool = False,
) -> dict[str, Any]:
    """`trainctl evaluate`: score, print a summary (stderr) and the JSON (stdout), write --out and meta.json."""
    from train.versions import resolve_version, update_metrics, write_json_atomic

    ev = cfg.evaluate
    split = split or ev.split
    version_dir = resolve_version(cfg.train.run_dir, version)
    strategy = strategy or evaluation_strategy(cfg.train.strategy)
    result = evaluate_version(
        version_dir, ev.src, split, ev.crop_border, ev.batch_size, strategy, tlc, ensemble
    )
    result["evaluated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    update_metrics(version_dir, {k: v for k, v in result.items() if k != "version"})
    if out is not None:
        write_json_atomic(out, result)
    log(
        f"{result['version']} on {split} ({result['pairs']} pairs): "
        f"PSNR {result['psnr']:.2f} dB vs input {result['psnr_input']:.2f} dB ({result['psnr_gain']:+.2f} dB), "
        f"SSIM {result['ssim']:.4f} vs input {result['ssim_input']:.4f}"
    )
    print(json.dumps(result, indent=2, sort_keys=True), flush=True)
    return result
