"""Versioned generator checkpoints: RUN/generator/vNNNN/{generator.keras, meta.json} and RUN/generator/latest.

A version appears complete or not at all. On a local disk it is written under a temporary name and renamed into
place. On an object store (gs://...), where a directory rename is a copy of every object, it is written in place
with meta.json last: a version counts only once its meta.json exists, and a version dir without one (left by a
killed writer) is deleted by the next writer, which holds the run dir lock. `latest` is then replaced atomically
(a rename locally, one object upload remotely). Older versions beyond `keep_versions` are pruned (never the
latest or best); remotely their meta.json goes first, so a half-deleted version is never listed.
"""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import DataError, UsageError
from pipeline.fsio import errors_name, fsync_file
from train.run import rundir, scores
from train.run.rundir import join

MODEL_FILE = "generator.keras"
META_FILE = "meta.json"
LATEST_FILE = "latest"
_VERSION_RE = re.compile(r"^v(\d{4,})$")


@dataclass(frozen=True)
class VersionInfo:
    name: str
    path: str
    meta: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.meta.get("step", 0))

    def psnr(self, scope: str) -> float | None:
        """PSNR of this version in one scope (see train.run.scores), or None when it was not scored there."""
        return scores.psnr_in(self.meta, scope)


def generator_dir(run_dir: str | Path) -> str:
    return join(str(run_dir), "generator")


def version_name(number: int) -> str:
    return f"v{number:04d}"


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON to `path` atomically (local: temp file, fsync, rename; remote: one upload), naming `path` on
    errors."""
    rundir.write_json(str(path), data)


def _version_dirs(run_dir: str | Path) -> list[tuple[int, str]]:
    """(number, name) of every vNNNN entry, complete or not, by number."""
    names = rundir.listdir(generator_dir(run_dir))
    return sorted((int(m.group(1)), m.group(0)) for m in map(_VERSION_RE.match, names) if m)


def list_versions(run_dir: str | Path) -> list[VersionInfo]:
    """Complete versions (those with a model and meta.json), oldest first; temp dirs are ignored."""
    root = generator_dir(run_dir)
    found = []
    for _, name in _version_dirs(run_dir):
        path = join(root, name)
        try:
            meta = json.loads(rundir.read_text(join(path, META_FILE)))
        except (OSError, ValueError):  # no meta.json yet (or a damaged one): not a version
            continue
        if isinstance(meta, dict) and rundir.isfile(join(path, MODEL_FILE)):
            found.append(VersionInfo(name, path, meta))
    return found


def latest_name(run_dir: str | Path) -> str | None:
    root = generator_dir(run_dir)
    try:
        name = rundir.read_text(join(root, LATEST_FILE)).strip()
    except FileNotFoundError:
        return None
    if not _VERSION_RE.match(name):
        return None
    path = join(root, name)
    return name if rundir.isfile(join(path, META_FILE)) and rundir.isfile(join(path, MODEL_FILE)) else None


def best_name(versions: list[VersionInfo], scope: str | None = None) -> str | None:
    """Highest PSNR among the versions scored in `scope` (default: the scope of the most recent evaluation):
    scores on different data or splits are not comparable."""
    scope = scope or scores.newest_scope([v.meta for v in versions])
    scored = [v for v in versions if scope is not None and v.psnr(scope) is not None]
    if not scored:
        return None
    return max(scored, key=lambda v: v.psnr(scope)).name


def best_names(versions: list[VersionInfo]) -> set[str]:
    """The best version of every scope any version was scored in (all of them are kept by pruning)."""
    scopes = {key for v in versions for key in scores.all_scores(v.meta)}
    return {name for name in (best_name(versions, scope) for scope in scopes) if name}


def resolve_version(run_dir: str | Path, version: str = "latest", scope: str | None = None) -> str:
    """Path of a version dir from `latest`, `best` (in `scope`, default the newest evaluation's) or `vNNNN`;
    UsageError/DataError naming what is missing."""
    versions = list_versions(run_dir)
    root = generator_dir(run_dir)
    if not versions:
        raise DataError(f"{root}: no generator versions yet (run `trainctl fit` first)")
    if version == "latest":
        name = latest_name(run_dir) or versions[-1].name
    elif version == "best":
        name = best_name(versions, scope)
        if name is None:
            where = f" on {scope}" if scope else ""
            raise DataError(f"{root}: no version has metrics{where} yet (run `trainctl evaluate`)")
    else:
        name = version
    if name not in {v.name for v in versions}:
        known = ", ".join(v.name for v in versions)
        raise UsageError(f"--version {version}: no such version in {root} (have: {known})")
    return join(root, name)


def resolve_model(model: str | Path, version: str | None = None) -> str:
    """The version dir `--model` (with `--version`) names: a version dir `RUN/generator/vNNNN`, the pointer file
    `RUN/generator/latest`, or `RUN/generator` or a run dir `RUN` with `version` (latest, best, vNNNN; default
    latest). Errors name the path."""
    path = str(model).rstrip("/") or str(model)
    if rundir.isfile(join(path, META_FILE)):  # a version dir
        if version is not None and version != rundir.name(path):
            raise UsageError(
                f"--version {version}: --model {path} is already a version ({rundir.name(path)})"
            )
        return path
    if rundir.name(path) == LATEST_FILE and rundir.isfile(path):  # the pointer file
        if version is not None:
            raise UsageError(f"--version {version}: --model {path} is already a version (the latest pointer)")
        name = rundir.read_text(path).strip()
        run_dir = rundir.split(rundir.split(path)[0])[0]
        if name not in {v.name for v in list_versions(run_dir)}:
            raise DataError(f"{path}: names {name[:40]!r}, which is not a complete version")
        return join(generator_dir(run_dir), name)
    if rundir.name(path) == "generator" and rundir.isdir(path):  # RUN/generator
        return resolve_version(rundir.split(path)[0], version or "latest")
    if rundir.isdir(generator_dir(path)):  # a run dir
        return resolve_version(path, version or "latest")
    what = (
        "no such file or directory" if not rundir.exists(path) else "not a generator version dir or run dir"
    )
    raise UsageError(
        f"--model {path}: {what} (give RUN, RUN/generator, RUN/generator/latest or RUN/generator/vNNNN)"
    )


def next_version_number(run_dir: str | Path) -> int:
    return max((number for number, _ in _version_dirs(run_dir)), default=0) + 1


def _full_meta(meta: dict[str, Any], name: str) -> dict[str, Any]:
    import keras
    import tensorflow as tf

    full = {
        **meta,
        "version": name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": socket.gethostname(),
        "versions": {"tf": tf.__version__, "keras": keras.__version__},
    }
    full.setdefault("metrics", {})
    return full


def _write_local(root: str, name: str, generator: Any, meta: dict[str, Any]) -> None:
    """Write into a temp dir beside the version and rename it into place."""
    tmp = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=root)
    try:
        with errors_name(join(root, name)):  # a full disk while writing: name the version, not its temp dir
            generator.save(join(tmp, MODEL_FILE))
            fsync_file(join(tmp, MODEL_FILE))  # durable before the rename publishes it
            write_json_atomic(join(tmp, META_FILE), meta)
            os.replace(tmp, join(root, name))
    except BaseException:
        rundir.rmtree(tmp)
        raise


def _write_remote(root: str, name: str, generator: Any, meta: dict[str, Any]) -> None:
    """Write in place, meta.json last: until it exists the version is not listed."""
    path = join(root, name)
    try:
        rundir.makedirs(path)
        generator.save(join(path, MODEL_FILE))
        write_json_atomic(join(path, META_FILE), meta)
    except BaseException:
        rundir.discard(path)
        raise


def remove_incomplete(run_dir: str | Path) -> list[str]:
    """Delete what a killed writer left: local temp dirs, and (remotely) vNNNN dirs without meta.json.

    Only the holder of the run dir lock may call this: a version being written also lacks its meta.json. A dir
    with meta.json but no model is what `trainctl evaluate` leaves when it updates a version being pruned."""
    root = generator_dir(run_dir)
    removed = []
    for entry in rundir.listdir(root):
        path = join(root, entry)
        stale = entry.startswith(".v") and ".tmp-" in entry
        if rundir.is_remote(root) and _VERSION_RE.match(entry):
            # the model is written first and meta.json last: a dir missing either is not being written now
            stale = not rundir.exists(join(path, META_FILE)) or not rundir.exists(join(path, MODEL_FILE))
        if stale:
            rundir.rmtree(path)
            removed.append(entry)
    return removed


def write_version(run_dir: str | Path, generator: Any, meta: dict[str, Any], keep: int | None = None) -> str:
    """Save `generator` as the next version with `meta` (version/created/versions added), then point latest at it."""
    root = generator_dir(run_dir)
    rundir.makedirs(root)
    name = version_name(next_version_number(run_dir))  # counts incomplete dirs: a number is never reused
    remove_incomplete(run_dir)
    full_meta = _full_meta(meta, name)
    write = _write_remote if rundir.is_remote(root) else _write_local
    write(root, name, generator, full_meta)
    rundir.write_bytes(join(root, LATEST_FILE), f"{name}\n".encode())
    if keep is not None:
        prune_versions(run_dir, keep)
    return join(root, name)


def prune_versions(run_dir: str | Path, keep: int) -> list[str]:
    """Delete the oldest complete versions beyond `keep`, never the latest or the best; returns deleted names."""
    versions = list_versions(run_dir)
    protected = {latest_name(run_dir), *best_names(versions)}
    removable = [v for v in versions if v.name not in protected]
    excess = len(versions) - keep
    deleted = []
    for info in removable[: max(0, excess)]:
        if rundir.is_remote(info.path):
            # meta.json first: from then on the version is not listed, whatever a kill leaves of the rest.
            rundir.remove(join(info.path, META_FILE))
            rundir.rmtree(info.path)
        else:
            # Renamed away first, so a kill mid-delete leaves a hidden temp dir (cleaned below), not half a version.
            doomed = join(generator_dir(run_dir), f".{info.name}.tmp-pruned")
            rundir.rmtree(doomed)
            os.replace(info.path, doomed)
            rundir.rmtree(doomed)
        deleted.append(info.name)
    remove_incomplete(run_dir)
    return deleted


def update_metrics(version_dir: str | Path, result: dict[str, Any]) -> None:
    """Store an evaluation `result` (with its `src` and `split`) in a version's meta.json under its scope, keeping
    the scores of every other scope (atomically)."""
    path = join(str(version_dir), META_FILE)
    write_json_atomic(path, scores.with_score(read_meta(version_dir), result))


def read_meta(version_dir: str | Path) -> dict[str, Any]:
    path = join(str(version_dir), META_FILE)
    try:
        meta = json.loads(rundir.read_text(path))
    except FileNotFoundError:
        raise UsageError(f"{version_dir}: not a generator version dir (no {META_FILE})") from None
    except ValueError as exc:
        raise DataError(f"{path}: unreadable ({exc})") from None
    if not isinstance(meta, dict):
        raise DataError(f"{path}: unreadable (not a JSON object)")
    return meta


def load_generator(version_dir: str | Path) -> Any:
    """Load a version's generator with `keras.saving.load_model` (`import train` registered our layers)."""
    import keras

    path = join(str(version_dir), MODEL_FILE)
    if not rundir.isfile(path):
        raise UsageError(f"{version_dir}: not a generator version dir (no {MODEL_FILE})")
    try:
        return keras.saving.load_model(path, compile=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot load generator ({exc})") from None


def _fmt(value: Any, spec: str) -> str:
    return "" if value is None else format(float(value), spec)


def table_rows(run_dir: str | Path, split: str | None = "test", src: str | None = None) -> list[list[str]]:
    """One row per version and scope scored on `split` (None: any) and `src` (None: any): name, step, created,
    scope, PSNR, SSIM, 3-D SSIM, input PSNR, gain, marks (latest, and best within that row's scope). A version with no
    such score has one row with the metric columns empty."""
    versions = list_versions(run_dir)
    latest = latest_name(run_dir)
    rows = []
    for v in versions:
        found = scores.matching(v.meta, split, src) or {"": {}}
        for scope, m in found.items():
            best = best_name(versions, scope) if scope else None
            marks = " ".join(tag for tag, name in (("latest", latest), ("best", best)) if name == v.name)
            rows.append(
                [
                    v.name,
                    str(v.step),
                    str(v.meta.get("created", "")),
                    scope,
                    _fmt(m.get("psnr"), ".2f"),
                    _fmt(m.get("ssim"), ".4f"),
                    _fmt(m.get("ssim_3d"), ".4f"),
                    _fmt(m.get("psnr_input"), ".2f"),
                    _fmt(scores.gain(m), "+.2f"),
                    marks,
                ]
            )
    return rows


def print_table(run_dir: str | Path, split: str | None = "test", src: str | None = None) -> None:
    """Print versions with step, created, PSNR/SSIM on `split` (when scored) and the gain over the input; mark
    latest and best."""
    from rich.console import Console
    from rich.table import Table

    rows = table_rows(run_dir, split, src)
    if not rows:
        raise DataError(f"{generator_dir(run_dir)}: no generator versions yet (run `trainctl fit` first)")
    shown = "any split" if split is None else f"split {split}"
    table = Table(title=f"generator versions in {generator_dir(run_dir)} (scores on {shown})")
    columns = (
        "version",
        "step",
        "created",
        "scored on",
        "PSNR dB",
        "SSIM",
        "SSIM 3D",
        "input PSNR",
        "gain dB",
        "",
    )
    for i, col in enumerate(columns):
        table.add_column(col, justify="right" if i in (1, 4, 5, 6, 7, 8) else "left")
    for row in rows:
        table.add_row(*row)
    Console(width=150).print(table)
