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
import resource
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


def cpu_seconds() -> float:
    """CPU time of this process and of every child it has reaped (Pool workers, Beam worker processes)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def codec_limit(organized: Path, rows: list[dict], cores: int) -> int:
    jobs = [(str(organized / r["a"]), str(organized / r["b"])) for r in rows]
    pool = Pool(cores)
    for _ in pool.imap_unordered(_decode_pair, jobs, chunksize=1):
        pass
    pool.close()
    pool.join()  # reaped: their CPU time is counted
    return 0


def peer(organized: Path, rows: list[dict], cores: int, out: Path, encoding: str) -> int:
    pool = Pool(cores)
    written = sum(pool.imap_unordered(_peer_pair, [(r, str(organized), str(out), encoding) for r in rows]))
    pool.close()
    pool.join()
    return written


def beam_shard(organized: Path, out: Path, encoding: str) -> int:
    from pipeline.shard import run

    cfg = ShardConfig(src=str(organized), out=str(out), crop_size=CROP, crops_per_pair=CROPS_PER_PAIR,
                      shards={"train": 8, "test": 2}, encoding=encoding)  # fmt: skip
    run(cfg, overwrite=True)
    return sum(p.stat().st_size for p in out.iterdir() if ".tfrecord-" in p.name)


def measure(fn, *args) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, bytes written) of one call."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    written = fn(*args)
    return time.perf_counter() - wall, cpu_seconds() - cpu, written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 pairs, one repeat (also BENCH_QUICK=1)")
    parser.add_argument("--pairs", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    quick = args.quick or os.environ.get("BENCH_QUICK", "") not in ("", "0")
    n_pairs = args.pairs or (64 if quick else 240)
    repeats = args.repeats or (1 if quick else 3)
    n_small = 8
    cores = usable_cores()
    quiet_beam_import()
    with tempfile.TemporaryDirectory(prefix="bench_shard_") as tmp:
        root = Path(tmp)
        organized = make_organized(root, n_pairs, unique=16 if quick else 48)
        rows = [json.loads(line) for line in (organized / "manifest.jsonl").read_text().splitlines()]
        small = root / "small"  # the same layout with a few pairs: the shard run's fixed cost
        shutil.copytree(organized, small, copy_function=os.link)
        (small / "manifest.jsonl").unlink()  # a hard link to the full manifest: do not write through it
        (small / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:n_small]))
        source_mb = sum((organized / r[k]).stat().st_size for r in rows for k in ("a", "b")) / 1e6
        emit(metric="setup", pairs=n_pairs, size=f"{SIZE[0]}x{SIZE[1]}", crop=CROP, crops_per_pair=CROPS_PER_PAIR,
             cores=cores, repeats=repeats, source_mb=round(source_mb, 1), load_avg=os.getloadavg()[0])  # fmt: skip

        runs: dict[str, list[tuple[float, float, int]]] = {}
        for _ in range(repeats):  # interleaved, so a burst of load elsewhere hits every variant alike
            runs.setdefault("codec", []).append(measure(codec_limit, organized, rows, cores))
            for enc in ("raw", "png"):
                out = root / f"peer_{enc}"
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                runs.setdefault(f"peer_{enc}", []).append(measure(peer, organized, rows, cores, out, enc))
                runs.setdefault(f"shard_{enc}", []).append(
                    measure(beam_shard, organized, root / f"s_{enc}", enc)
                )
                runs.setdefault(f"small_{enc}", []).append(measure(beam_shard, small, root / f"m_{enc}", enc))
        report(runs, n_pairs, n_small)


def report(runs: dict[str, list[tuple[float, float, int]]], n: int, n_small: int) -> None:
    """Best wall time and least CPU time of the repeats; rates in pairs/s and pairs per CPU-second."""
    wall = {k: min(r[0] for r in v) for k, v in runs.items()}
    cpu = {k: min(r[1] for r in v) for k, v in runs.items()}
    size = {k: v[-1][2] for k, v in runs.items()}
    codec, codec_eff = n / wall["codec"], n / cpu["codec"]
    emit(metric="codec_limit", pairs=n, seconds=round(wall["codec"], 2), pairs_per_s=round(codec, 1),
         pairs_per_cpu_s=round(codec_eff, 1))  # fmt: skip
    marginal, marginal_eff, peer_rate = {}, {}, {}
    for enc in ("raw", "png"):
        peer_rate[enc], peer_eff = n / wall[f"peer_{enc}"], n / cpu[f"peer_{enc}"]
        emit(metric="peer", encoding=enc, seconds=round(wall[f"peer_{enc}"], 2), pairs_per_s=round(peer_rate[enc], 1),
             pairs_per_cpu_s=round(peer_eff, 1), mb_written=round(size[f"peer_{enc}"] / 1e6, 1),
             vs_codec=round(peer_rate[enc] / codec, 2), cpu_vs_codec=round(peer_eff / codec_eff, 2))  # fmt: skip
        shard, small = f"shard_{enc}", f"small_{enc}"
        rate, eff = n / wall[shard], n / cpu[shard]
        marginal[enc] = (n - n_small) / max(wall[shard] - wall[small], 1e-9)
        marginal_eff[enc] = (n - n_small) / max(cpu[shard] - cpu[small], 1e-9)
        per_pair = size[shard] / n
        emit(metric="shard", encoding=enc, seconds=round(wall[shard], 2), pairs_per_s=round(rate, 1),
             fixed_seconds=round(wall[small], 2), marginal_pairs_per_s=round(marginal[enc], 1),
             pairs_per_cpu_s=round(eff, 1), marginal_pairs_per_cpu_s=round(marginal_eff[enc], 1),
             mb_written=round(size[shard] / 1e6, 1), kb_per_pair=round(per_pair / 1e3, 1),
             gopro_train_gb=round(per_pair * 2103 / 1e9, 2),
             vs_codec=round(rate / codec, 2), vs_peer=round(rate / peer_rate[enc], 2),
             marginal_vs_codec=round(marginal[enc] / codec, 2), marginal_vs_peer=round(marginal[enc] / peer_rate[enc], 2),
             cpu_marginal_vs_codec=round(marginal_eff[enc] / codec_eff, 2),
             cpu_marginal_vs_peer=round(marginal_eff[enc] / peer_eff, 2))  # fmt: skip
    default = ShardConfig().encoding
    emit(metric="goals", default_encoding=default,
         marginal_vs_codec=round(marginal[default] / codec, 2),  # goal >= 0.8
         marginal_vs_peer_same_encoding=round(marginal[default] / peer_rate[default], 2),  # goal >= 1.0
         marginal_vs_peer_png=round(marginal[default] / peer_rate["png"], 2))  # fmt: skip


if __name__ == "__main__":
    main()
