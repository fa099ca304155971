"""The plan types every raw layout produces and organize applies: pairs of RAW files, rejects, the plan.

They live below both the layouts and organize.py, so no layout imports organize. A layout turns `LayoutArgs`
(RAW plus the options organize was given) into per-split pairs and rejects; organize checks, links and records
them the same way whatever the layout.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pipeline.errors import UsageError

# Names that become folder and file names in OUT (split, source): letters, digits, '.', '_', '-'.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Pair:
    """A blurred and a sharp RAW file that belong together, with the name they get in OUT."""

    split: str
    scene: str  # as organized: a pairs/list source's scenes carry its name as a prefix
    frame: str  # e.g. "000001"
    a: str  # blurred source file in RAW (absolute)
    b: str  # sharp source file in RAW (absolute)
    width: int
    height: int
    source: str = ""  # dataset name, e.g. GOPRO_Large, RealBlur_J

    @property
    def stem(self) -> str:
        """SCENE_FRAME: the output names without their suffix."""
        return f"{self.scene}_{self.frame}"

    def out_name(self, side: str) -> str:
        """SCENE_FRAME plus the suffix of the source file of `side` (A or B): A/x.jpg links to a .jpg."""
        return self.stem + os.path.splitext(self.a if side == "A" else self.b)[1]


@dataclass(frozen=True)
class Reject:
    path: str
    reason: str  # missing_sharp | missing_blur | size_mismatch | unreadable
    detail: str
    split: str = ""


@dataclass(frozen=True)
class LayoutArgs:
    """What organize was asked for, as the layouts read it (paths as given; None: not given)."""

    raw: Path
    blur: str = "blur_gamma"  # gopro: which blurred folder
    blur_dir: str | None = None  # pairs: the blurred folder (relative to RAW, or as given)
    sharp_dir: str | None = None  # pairs: the sharp folder
    list_file: str | None = None  # list: the pair list
    split: str | None = None  # pairs (flat or explicit folders) and list: the split the pairs go to
    source: str | None = None  # dataset name; None: the layout's default


@dataclass
class Plan:
    """What organize will do: the pairs and rejects of one source, and which of its splits they cover."""

    raw: Path
    layout: str
    source: str
    blur: str | None  # the blurred folder chosen (gopro), recorded in the manifest; None for other layouts
    splits: tuple[str, ...]  # the splits scanned
    whole_source: bool  # True: the splits are all the source has (a rerun replaces every split of it)
    pairs: list[Pair] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)  # folders listed (for the "nothing found" message)
    roots: list[Path] = field(default_factory=list)  # where the RAW files live (never written to)
    detected: str | None = None  # with --layout auto: what in RAW told the layout


class Layout(Protocol):
    """One raw dataset layout (a module in pipeline/layouts/, one line in the registry)."""

    name: str
    expected: str  # one line: what a tree of this layout looks like, for error messages

    def detect(self, raw: Path) -> str | None:
        """A short description of what in RAW looks like this layout, or None (cheap: a few listings)."""

    def plan(self, args: LayoutArgs) -> Plan:
        """Which splits the source has, each scanned into pairs and rejects; nothing is written."""

    def no_pairs_message(self, args: LayoutArgs, plan: Plan) -> str:
        """The one-line error when the scan found no good pair: what was found, what was expected."""


def safe_name(value: str, what: str) -> str:
    """`value` if it is usable as a folder/file name in OUT, else a UsageError naming `what`."""
    if not _SAFE_NAME.fullmatch(value) or value in (".", ".."):
        raise UsageError(f"{what} {value!r}: use letters, digits, '.', '_' or '-' (it names files in OUT)")
    return value


def default_source(name: str) -> str:
    """A dataset name made from a folder or file name: characters unusable in file names become '_'."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name).strip("._-")
    return cleaned or "data"


def resolve_path(raw: Path, given: str, what: str) -> Path:
    """An option's path: as given when it exists there, else relative to RAW; UsageError naming both if neither."""
    as_given = Path(given)
    candidate = as_given if as_given.is_absolute() or as_given.exists() else raw / given
    if not candidate.exists():
        where = str(as_given) if as_given.is_absolute() else f"{as_given} (nor {raw / given})"
        raise UsageError(f"{what} {given}: not found: {where}")
    return candidate.absolute()


def require_split(args: LayoutArgs, why: str) -> str:
    """The --split the arguments must carry for this layout; UsageError saying why when it is missing."""
    if not args.split:
        raise UsageError(f"--split NAME is needed: {why}")
    return safe_name(args.split, "--split")


def reject_summary(rejects: list[Reject]) -> str:
    """`missing_blur 2, unreadable 1`: reject counts by reason, sorted by reason."""
    counts: dict[str, int] = {}
    for r in rejects:
        counts[r.reason] = counts.get(r.reason, 0) + 1
    return ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items()))
