"""Shard benchmark: `gopro-prep shard` pairs/s against the PNG decode limit and a plain multiprocessing script.

On one organized dir of 1280x720 pairs (synthetic GOPRO-layout sample, organized), in one run:
  codec_limit  every source PNG of every pair decoded once with cv2, multiprocessing Pool on all cores
  peer         Pool on all cores: decode a pair, cut the same crops, write each crop as its own PNG/raw file
  shard        pipeline.shard.run (Beam, local runner, all cores) -> published TFRecords
for both encodings (png, raw). Each timing is the best of --repeats (the machine may be shared). The shard run
has a fixed cost (Beam and worker start-up, publish); `marginal_pairs_per_s` removes it using a run on a few pairs.
Prints one JSON line per measurement. Usage: python benchmarks/bench_shard.py [--quick] [--pairs N] [--repeats R]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.beam_runner import quiet_beam_import, usable_cores  # noqa: E402
from pipeline.config import OrganizeConfig, ShardConfig  # noqa: E402
from pipeline.crops import crop_offsets  # noqa: E402
from pipeline.records import PNG_COMPRESSION  # noqa: E402

CROP, CROPS_PER_PAIR, SIZE = 256, 4, (1280, 720)


def emit(**fields) -> None:
    print(json.dumps({"bench": "shard", **fields}), flush=True)


def make_organized(root: Path, pairs: int, unique: int) -> Path:
    """`unique` rendered pairs (gopro-prep sample + organize), repeated under new scene names up to `pairs`.

    Repeats are hard links: every pair is still decoded on its own, and generating 240 distinct 1280x720
    frames with motion blur would take longer than the benchmark itself.
    """
    from pipeline.organize import run as organize
    from pipeline.sample import write_sample

    scenes = 4
    write_sample(root / "raw", scenes=scenes, frames=max(1, unique // scenes), size=SIZE, seed=0)
    organized = root / "organized"
    organize(OrganizeConfig(raw=str(root / "raw"), out=str(organized), link="copy"))
    base = [json.loads(line) for line in (organized / "manifest.jsonl").read_text().splitlines()]
    rows = []
    for i in range(pairs):
        row, copy = base[i % len(base)], i // len(base)
        if copy:
            scene = f"{row['scene']}r{copy}"
            new = {
                "scene": scene,
                "a": row["a"].replace(row["scene"], scene),
                "b": row["b"].replace(row["scene"], scene),
            }
            for key in ("a", "b"):
                os.link(organized / row[key], organized / new[key])
            row = {**row, **new}
        rows.append(row)
    (organized / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return organized


def _decode_pair(paths: tuple[str, str]) -> int:
    return sum(cv2.imread(p, cv2.IMREAD_COLOR).shape[0] for p in paths)


def _peer_pair(job: tuple[dict, str, str, str]) -> int:
    """The plain script: decode, cut the same crops, one file per crop. Returns bytes written."""
    row, src, out, encoding = job
    a = cv2.imread(os.path.join(src, row["a"]), cv2.IMREAD_COLOR)
    b = cv2.imread(os.path.join(src, row["b"]), cv2.IMREAD_COLOR)
    written = 0
    offsets = crop_offsets(0, row["scene"], row["frame"], CROPS_PER_PAIR, row["height"], row["width"], CROP)
    for i, (y, x) in enumerate(offsets):
        for tag, image in (("blur", a), ("sharp", b)):
            crop = image[y : y + CROP, x : x + CROP]
            path = os.path.join(out, f"{row['scene']}_{row['frame']}_{i}_{tag}.{encoding}")
            if encoding == "png":
                cv2.imwrite(path, crop, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
            else:
                np.ascontiguousarray(crop).tofile(path)
            written += os.path.getsize(path)
    return written


def codec_limit(organized: Path, rows: list[dict], cores: int) -> float:
    jobs = [(str(organized / r["a"]), str(organized / r["b"])) for r in rows]
    with Pool(cores) as pool:
        start = time.perf_counter()
        for _ in pool.imap_unordered(_decode_pair, jobs, chunksize=1):
            pass
        return time.perf_counter() - start


def peer(organized: Path, rows: list[dict], cores: int, out: Path, encoding: str) -> tuple[float, int]:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    start = time.perf_counter()
    with Pool(cores) as pool:
        written = sum(
            pool.imap_unordered(_peer_pair, [(r, str(organized), str(out), encoding) for r in rows])
        )
    return time.perf_counter() - start, written


def beam_shard(organized: Path, out: Path, encoding: str) -> tuple[float, int]:
    from pipeline.shard import run

    start = time.perf_counter()
    cfg = ShardConfig(src=str(organized), out=str(out), crop_size=CROP, crops_per_pair=CROPS_PER_PAIR,
                      shards={"train": 8, "test": 2}, encoding=encoding)  # fmt: skip
    run(cfg, overwrite=True)
    seconds = time.perf_counter() - start
    return seconds, sum(p.stat().st_size for p in out.iterdir() if ".tfrecord-" in p.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 pairs, one repeat (also BENCH_QUICK=1)")
    parser.add_argument("--pairs", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    quick = args.quick or os.environ.get("BENCH_QUICK", "") not in ("", "0")
    n_pairs = args.pairs or (64 if quick else 240)
    repeats = args.repeats or (1 if quick else 3)
    cores = usable_cores()
    quiet_beam_import()
    with tempfile.TemporaryDirectory(prefix="bench_shard_") as tmp:
        root = Path(tmp)
        organized = make_organized(root, n_pairs, unique=16 if quick else 48)
        rows = [json.loads(line) for line in (organized / "manifest.jsonl").read_text().splitlines()]
        small = root / "small"  # the same layout with a few pairs: the shard run's fixed cost
        shutil.copytree(organized, small, copy_function=os.link)
        n_small = 8
        (small / "manifest.jsonl").unlink()  # a hard link to the full manifest: do not write through it
        (small / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:n_small]))
        emit(metric="setup", pairs=n_pairs, size=f"{SIZE[0]}x{SIZE[1]}", crop=CROP, crops_per_pair=CROPS_PER_PAIR,
             cores=cores, repeats=repeats, source_mb=round(sum(
                 (organized / r[k]).stat().st_size for r in rows for k in ("a", "b")) / 1e6, 1))  # fmt: skip

        best: dict[str, float] = {}
        written: dict[str, int] = {}

        def keep(name: str, seconds: float, size: int = 0) -> None:
            best[name] = min(best.get(name, float("inf")), seconds)
            written[name] = size

        for _ in range(repeats):  # interleaved, so a burst of load elsewhere hits every variant alike
            keep("codec", codec_limit(organized, rows, cores))
            for enc in ("raw", "png"):
                keep(f"peer_{enc}", *peer(organized, rows, cores, root / f"peer_{enc}", enc))
                keep(f"shard_{enc}", *beam_shard(organized, root / f"shards_{enc}", enc))
                keep(f"small_{enc}", *beam_shard(small, root / f"small_{enc}", enc))

        codec_rate = n_pairs / best["codec"]
        marginals = {}
        emit(
            metric="codec_limit",
            pairs=n_pairs,
            seconds=round(best["codec"], 2),
            pairs_per_s=round(codec_rate, 1),
        )
        for enc in ("raw", "png"):
            peer_rate = n_pairs / best[f"peer_{enc}"]
            emit(metric="peer", encoding=enc, seconds=round(best[f"peer_{enc}"], 2), pairs_per_s=round(peer_rate, 1),
                 mb_written=round(written[f"peer_{enc}"] / 1e6, 1), vs_codec=round(peer_rate / codec_rate, 2))  # fmt: skip
            seconds, fixed = best[f"shard_{enc}"], best[f"small_{enc}"]
            rate = n_pairs / seconds
            marginal = marginals[enc] = (n_pairs - n_small) / max(seconds - fixed, 1e-9)
            per_pair = written[f"shard_{enc}"] / n_pairs
            emit(metric="shard", encoding=enc, seconds=round(seconds, 2), pairs_per_s=round(rate, 1),
                 fixed_seconds=round(fixed, 2), marginal_pairs_per_s=round(marginal, 1),
                 mb_written=round(written[f"shard_{enc}"] / 1e6, 1), kb_per_pair=round(per_pair / 1e3, 1),
                 gopro_train_gb=round(per_pair * 2103 / 1e9, 2),
                 vs_codec=round(rate / codec_rate, 2), vs_peer=round(rate / peer_rate, 2),
                 marginal_vs_codec=round(marginal / codec_rate, 2),
                 marginal_vs_peer=round(marginal / peer_rate, 2))  # fmt: skip

        default = ShardConfig().encoding
        emit(metric="goals", default_encoding=default,
             marginal_vs_codec=round(marginals[default] / codec_rate, 2),  # goal >= 0.8
             marginal_vs_peer_same_encoding=round(marginals[default] * best[f"peer_{default}"] / n_pairs, 2),
             marginal_vs_peer_png=round(marginals[default] * best["peer_png"] / n_pairs, 2))  # goal >= 1.0  # fmt: skip


if __name__ == "__main__":
    main()
