"""Versioned generator checkpoints: RUN/generator/vNNNN/{generator.keras, meta.json} and RUN/generator/latest.

A version directory appears complete or not at all: it is written under a temporary name and renamed into place,
then `latest` is replaced atomically. Older versions beyond `keep_versions` are pruned (never the latest or best).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import fsio
from pipeline.errors import DataError, UsageError
from pipeline.fsio import errors_name

MODEL_FILE = "generator.keras"
META_FILE = "meta.json"
LATEST_FILE = "latest"
_VERSION_RE = re.compile(r"^v(\d{4,})$")


@dataclass(frozen=True)
class VersionInfo:
    name: str
    path: Path
    meta: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.meta.get("step", 0))

    @property
    def psnr(self) -> float | None:
        value = self.meta.get("metrics", {}).get("psnr")
        return None if value is None else float(value)


def generator_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "generator"


def version_name(number: int) -> str:
    return f"v{number:04d}"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to `path` atomically (temp file in the same dir, fsync, rename), naming `path` on errors."""
    fsio.write_json(path, data)


def list_versions(run_dir: str | Path) -> list[VersionInfo]:
    """Complete versions (those with a model and meta.json), oldest first; temp dirs are ignored."""
    root = generator_dir(run_dir)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _VERSION_RE.match(child.name)
        if not match or not (child / MODEL_FILE).is_file() or not (child / META_FILE).is_file():
            continue
        try:
            meta = json.loads((child / META_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        found.append((int(match.group(1)), VersionInfo(child.name, child, meta)))
    return [info for _, info in sorted(found, key=lambda pair: pair[0])]


def latest_name(run_dir: str | Path) -> str | None:
    path = generator_dir(run_dir) / LATEST_FILE
    try:
        name = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return name if (generator_dir(run_dir) / name / MODEL_FILE).is_file() else None


def best_name(versions: list[VersionInfo]) -> str | None:
    scored = [v for v in versions if v.psnr is not None]
    return max(scored, key=lambda v: v.psnr).name if scored else None


def resolve_version(run_dir: str | Path, version: str = "latest") -> Path:
    """Path of a version dir from `latest`, `best` or `vNNNN`; UsageError/DataError naming what is missing."""
    versions = list_versions(run_dir)
    if not versions:
        raise DataError(f"{generator_dir(run_dir)}: no generator versions yet (run `trainctl fit` first)")
    if version == "latest":
        name = latest_name(run_dir) or versions[-1].name
    elif version == "best":
        name = best_name(versions)
        if name is None:
            raise DataError(f"{generator_dir(run_dir)}: no version has metrics yet (run `trainctl evaluate`)")
    else:
        name = version
    path = generator_dir(run_dir) / name
    if name not in {v.name for v in versions}:
        known = ", ".join(v.name for v in versions)
        raise UsageError(f"--version {version}: no such version in {generator_dir(run_dir)} (have: {known})")
    return path


def next_version_number(run_dir: str | Path) -> int:
    names = [p.name for p in generator_dir(run_dir).glob("v*")] if generator_dir(run_dir).is_dir() else []
    numbers = [int(m.group(1)) for m in map(_VERSION_RE.match, names) if m]
    return max(numbers, default=0) + 1


def write_version(run_dir: str | Path, generator: Any, meta: dict[str, Any], keep: int | None = None) -> Path:
    """Save `generator` as the next version with `meta` (version/created/versions added), then point latest at it."""
    import keras
    import tensorflow as tf

    root = generator_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    name = version_name(next_version_number(run_dir))
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=root))
    try:
        with errors_name(root / name):  # a full disk while writing: name the version, not its temp dir
            generator.save(tmp / MODEL_FILE)
            full_meta = {
                **meta,
                "version": name,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "host": socket.gethostname(),
                "versions": {"tf": tf.__version__, "keras": keras.__version__},
            }
            full_meta.setdefault("metrics", {})
            write_json_atomic(tmp / META_FILE, full_meta)
            os.replace(tmp, root / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsio.write_bytes(str(root / LATEST_FILE), f"{name}\n".encode())
    if keep is not None:
        prune_versions(run_dir, keep)
    return root / name


def prune_versions(run_dir: str | Path, keep: int) -> list[str]:
    """Delete the oldest complete versions beyond `keep`, never the latest or the best; returns deleted names."""
    versions = list_versions(run_dir)
    protected = {latest_name(run_dir), best_name(versions)}
    removable = [v for v in versions if v.name not in protected]
    excess = len(versions) - keep
    deleted = []
    for info in removable[: max(0, excess)]:
        # Renamed away first, so a kill mid-delete leaves a hidden temp dir (cleaned below), not half a version.
        doomed = info.path.with_name(f".{info.name}.tmp-pruned")
        shutil.rmtree(doomed, ignore_errors=True)
        os.replace(info.path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        deleted.append(info.name)
    for stale in generator_dir(run_dir).glob(".v*.tmp-*"):  # left by a killed writer
        shutil.rmtree(stale, ignore_errors=True)
    return deleted


def update_metrics(version_dir: str | Path, metrics: dict[str, Any]) -> None:
    """Merge `metrics` into a version's meta.json (atomically)."""
    path = Path(version_dir) / META_FILE
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta["metrics"] = {**meta.get("metrics", {}), **metrics}
    write_json_atomic(path, meta)


def read_meta(version_dir: str | Path) -> dict[str, Any]:
    path = Path(version_dir) / META_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{version_dir}: not a generator version dir (no {META_FILE})") from None
    except ValueError as exc:
        raise DataError(f"{path}: unreadable ({exc})") from None


def load_generator(version_dir: str | Path) -> Any:
    """Load a version's generator with `keras.saving.load_model` (our custom layers are registered on import)."""
    import keras

    import train.models  # noqa: F401  registers the generator's serializable layers

    path = Path(version_dir) / MODEL_FILE
    if not path.is_file():
        raise UsageError(f"{version_dir}: not a generator version dir (no {MODEL_FILE})")
    try:
        return keras.saving.load_model(path, compile=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot load generator ({exc})") from None


def _fmt(value: Any, spec: str) -> str:
    return "" if value is None else format(float(value), spec)


def table_rows(run_dir: str | Path) -> list[list[str]]:
    """One row per version: name, step, created, split, PSNR, SSIM, input PSNR, gain, marks (latest/best)."""
    versions = list_versions(run_dir)
    latest, best = latest_name(run_dir), best_name(versions)
    rows = []
    for v in versions:
        m = v.meta.get("metrics", {})
        gain = None if m.get("psnr") is None or m.get("psnr_input") is None else m["psnr"] - m["psnr_input"]
        marks = " ".join(tag for tag, name in (("latest", latest), ("best", best)) if name == v.name)
        rows.append(
            [
                v.name,
                str(v.step),
                str(v.meta.get("created", "")),
                str(m.get("split", "")),
                _fmt(m.get("psnr"), ".2f"),
                _fmt(m.get("ssim"), ".4f"),
                _fmt(m.get("psnr_input"), ".2f"),
                _fmt(gain, "+.2f"),
                marks,
            ]
        )
    return rows


def print_table(run_dir: str | Path) -> None:
    """Print versions with step, created, PSNR/SSIM (when evaluated) and the gain over the input; mark latest/best."""
    from rich.console import Console
    from rich.table import Table

    rows = table_rows(run_dir)
    if not rows:
        raise DataError(f"{generator_dir(run_dir)}: no generator versions yet (run `trainctl fit` first)")
    table = Table(title=f"generator versions in {generator_dir(run_dir)}")
    columns = ("version", "step", "created", "split", "PSNR dB", "SSIM", "input PSNR", "gain dB", "")
    for i, col in enumerate(columns):
        table.add_column(col, justify="right" if 1 <= i <= 7 and i not in (2, 3) else "left")
    for row in rows:
        table.add_row(*row)
    Console(width=130).print(table)
