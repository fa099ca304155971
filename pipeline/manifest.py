"""The one owner of an organized dir's manifest.jsonl (and its rejected.jsonl): row schema, write, parse, read.

One line per pair, paths relative to the organized dir:

    {"split", "scene", "frame", "a", "b", "width", "height", "blur", "source"}

`blur` is the blurred folder a gopro-layout source was organized from (null for other layouts), `source` the
dataset name (absent in manifests written before organize took several sources). organize writes it,
`gopro-prep shard` and `trainctl evaluate` read it; none of them restates a key.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline import fsio
from pipeline.errors import DataError

MANIFEST_FILE = "manifest.jsonl"
REJECTED_FILE = "rejected.jsonl"  # organize's: {"path", "reason", "detail", "split", "source"} per problem
TMP_MARK = (
    ".tmp-organize"  # suffix of organize's temp names; leftovers of an interrupted run are removed as stale
)
REQUIRED = ("split", "scene", "frame", "a", "b", "width", "height")


@dataclass(frozen=True, order=True)
class Pair:
    """One manifest row: an organized blurred/sharp pair (paths relative to the organized dir)."""

    split: str
    scene: str
    frame: str
    a: str
    b: str
    width: int
    height: int
    blur: str | None = None
    source: str | None = None

    def order(self) -> tuple[str, str, str, str, str]:
        """The manifest's order: by split, scene and frame (then source and file, which only tell apart rows
        that could never both be written)."""
        return (self.split, self.scene, self.frame, self.source or "", self.a)

    def row(self) -> dict[str, Any]:
        """The manifest line's object (key order as written)."""
        row = asdict(self)
        if self.source is None:
            del row["source"]
        return row


@dataclass(frozen=True)
class ManifestSummary:
    """What the main process learns from reading the manifest once: counts, blur source, frame sizes, checksum."""

    path: str
    sha256: str
    pairs: dict[str, int]
    blur: str | list[str] | None
    sizes: dict[tuple[int, int], int] = field(default_factory=dict)  # (width, height) -> pairs
    sources: dict[str, int] = field(default_factory=dict)  # source -> pairs (rows that name one)


def parse_manifest_line(line: str, where: str) -> Pair:
    """Parse one manifest.jsonl line; DataError naming `where` (file:line) if it is not a valid pair row."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: not JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    missing = [k for k in REQUIRED if k not in row]
    if missing:
        raise DataError(f"{where}: missing key(s) {', '.join(missing)}")
    try:
        width, height = int(row["width"]), int(row["height"])
    except (TypeError, ValueError):
        raise DataError(
            f"{where}: width/height must be integers (got {row['width']!r}, {row['height']!r})"
        ) from None
    blur, source = row.get("blur"), row.get("source")
    return Pair(
        split=str(row["split"]),
        scene=str(row["scene"]),
        frame=str(row["frame"]),
        a=str(row["a"]),
        b=str(row["b"]),
        width=width,
        height=height,
        blur=None if blur is None else str(blur),
        source=None if source is None else str(source),
    )


def parse_manifest(data: bytes, path: str) -> list[Pair]:
    """Every pair of a manifest's bytes, in file order (blank lines skipped)."""
    text = data.decode("utf-8", errors="replace")
    return [
        parse_manifest_line(line, f"{path}:{number}")
        for number, line in enumerate(text.splitlines(), 1)
        if line.strip()
    ]


def read_pairs(src: str) -> list[Pair]:
    """The pairs of organized dir `src` (local or remote); DataError naming the missing dir or manifest."""
    path = fsio.join(src, MANIFEST_FILE)
    if not fsio.exists(src):
        raise DataError(f"{src}: organized dir not found (run `gopro-prep organize` first)")
    try:
        data = fsio.read_bytes(path)
    except FileNotFoundError:
        raise DataError(
            f"{path}: no manifest; is {src} an organized dir? (run `gopro-prep organize`)"
        ) from None
    return parse_manifest(data, path)


def summarize_manifest(path: str) -> ManifestSummary:
    """Validate every line of the manifest (streaming) and return per-split counts and its sha256."""
    digest = hashlib.sha256()
    pairs: Counter[str] = Counter()
    blurs: set[str] = set()
    sizes: Counter[tuple[int, int]] = Counter()
    sources: Counter[str] = Counter()
    try:
        fh = fsio.open_read(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no manifest (run `gopro-prep organize` first)") from None
    with fh:
        for number, raw in enumerate(fh, start=1):
            digest.update(raw)
            line = raw.decode("utf-8", errors="replace").strip()
            if not line:
                continue
            pair = parse_manifest_line(line, f"{path}:{number}")
            pairs[pair.split] += 1
            sizes[(pair.width, pair.height)] += 1
            if pair.blur is not None:
                blurs.add(pair.blur)
            if pair.source is not None:
                sources[pair.source] += 1
    if not pairs:
        raise DataError(f"{path}: manifest lists no pairs; nothing to shard")
    blur: str | list[str] | None = sorted(blurs) if len(blurs) > 1 else (blurs.pop() if blurs else None)
    return ManifestSummary(
        path=path,
        sha256=digest.hexdigest(),
        pairs=dict(sorted(pairs.items())),
        blur=blur,
        sizes=dict(sizes),
        sources=dict(sorted(sources.items())),
    )


# ---- organize's side: a local organized dir -----------------------------------------------------------------


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write JSON lines to a temp name, then rename: readers never see half a file."""
    tmp = path.with_name(f".{path.name}{TMP_MARK}")
    try:
        with fsio.errors_name(path), open(tmp, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, sort_keys=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_manifest(out: Path, pairs: list[Pair]) -> None:
    write_jsonl(Path(out) / MANIFEST_FILE, [pair.row() for pair in pairs])


def read_local(out: Path) -> list[Pair]:
    """The pairs an existing organized dir lists ([] when it has no manifest yet)."""
    path = Path(out) / MANIFEST_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    return parse_manifest(data, str(path))


def read_rejects(out: Path) -> list[dict[str, Any]]:
    """The rows of an existing organized dir's rejected.jsonl ([] when absent); DataError naming a bad line."""
    path = Path(out) / REJECTED_FILE
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: not JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{number}: expected a JSON object")
            rows.append(row)
    return rows
