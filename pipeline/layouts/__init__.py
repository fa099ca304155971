"""Raw dataset layouts organize reads, one module each, behind an explicit registry.

    gopro   RAW/SPLIT/SCENE/{blur,blur_gamma,sharp}/FRAME         (GOPRO_Large)
    pairs   RAW/SPLIT/{input,target}/NAME, or --blur-dir/--sharp-dir  (MPRNet/Restormer test sets: GoPro, HIDE, RealBlur)
    list    --list FILE: `sharp_path blur_path` per line             (RealBlur_J_train_list.txt)
    hide    RAW/{train,test/SUBSET}/NAME + RAW/GT/NAME                (HIDE_dataset as its authors ship it)

Each layout says which splits its source has and scans them into pairs and rejects (`Layout.plan`); everything
after the plan (checks, linking, manifest, rejects, stale removal) is organize's and the same for all. Adding a
layout is one module here and one line in LAYOUTS.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import UsageError
from pipeline.layouts import gopro, hide, list_file, pairs
from pipeline.layouts.base import Layout, LayoutArgs, Pair, Plan, Reject

__all__ = ["LAYOUTS", "LAYOUT_CHOICES", "Layout", "LayoutArgs", "Pair", "Plan", "Reject", "choose"]

LAYOUTS: dict[str, Layout] = {
    "gopro": gopro.LAYOUT,
    "pairs": pairs.LAYOUT,
    "list": list_file.LAYOUT,
    "hide": hide.LAYOUT,
}
LAYOUT_CHOICES = ("auto", *LAYOUTS)

# Options that belong to one layout: giving them with another is a usage error, never ignored.
_OWN_OPTIONS = {
    "list_file": ("--list", "list"),
    "blur_dir": ("--blur-dir", "pairs"),
    "sharp_dir": ("--sharp-dir", "pairs"),
}


def _expected() -> str:
    return "; ".join(layout.expected for layout in LAYOUTS.values())


def _check_options(name: str, args: LayoutArgs) -> None:
    for attr, (flag, owner) in _OWN_OPTIONS.items():
        if getattr(args, attr) and name != owner:
            raise UsageError(f"{flag} applies to --layout {owner}, not {name}")
    if args.split and name == "gopro":
        raise UsageError("--split applies to --layout pairs or list; a gopro tree names its splits by folder")


def choose(name: str, args: LayoutArgs) -> tuple[Layout, str | None]:
    """The layout `name` names, or for `auto` the one RAW (or a layout's own option) points to, with what was
    detected. UsageError (exit 2) when RAW matches none, or several (naming the candidates)."""
    if name != "auto":
        if name not in LAYOUTS:
            raise UsageError(f"--layout {name!r}: expected one of {', '.join(LAYOUT_CHOICES)}")
        _check_options(name, args)
        return LAYOUTS[name], None
    if args.list_file:
        _check_options("list", args)
        return LAYOUTS["list"], "--list given"
    if args.blur_dir or args.sharp_dir:
        _check_options("pairs", args)
        return LAYOUTS["pairs"], "--blur-dir/--sharp-dir given"
    raw = Path(args.raw)
    if not raw.exists():
        raise UsageError(f"--raw {raw}: not found; expected {_expected()}")
    if not raw.is_dir():
        raise UsageError(f"--raw {raw}: not a directory; expected {_expected()}")
    found = {key: seen for key, layout in LAYOUTS.items() if (seen := layout.detect(raw)) is not None}
    if not found:
        raise UsageError(f"--raw {raw}: no known layout found; expected {_expected()}")
    if len(found) > 1:
        candidates = " and ".join(f"{key} ({seen})" for key, seen in found.items())
        raise UsageError(f"--raw {raw}: ambiguous layout, it looks like {candidates}; pass --layout NAME")
    key, seen = next(iter(found.items()))
    _check_options(key, args)
    return LAYOUTS[key], seen
