"""README's "Code map" matches the tree: every folder it names exists, every package folder and every top-level
folder is named, and every file the walk of one pair names exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARK = "<!-- code map (checked by tests/test_code_map.py) -->"


def code_map() -> tuple[list[str], str]:
    """The folders the map's block names (in order), and the section's text after the block (the walk)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert MARK in readme, "README.md lost its code map marker"
    after = readme.split(MARK, 1)[1]
    block = re.match(r"\s*```text\n(.*?)\n```", after, re.S)
    assert block, "the code map marker is not followed by a ```text block"
    folders = [line.split()[0] for line in block.group(1).splitlines() if line and not line[0].isspace()]
    walk = after[block.end() :].split("\n## ", 1)[0].split("\n### ", 1)[0]
    return folders, walk


def tracked_folders() -> set[str]:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return {Path(f).parts[0] for f in files.split() if len(Path(f).parts) > 1 and not f.startswith(".")}


def test_every_folder_named_exists_and_every_folder_is_named() -> None:
    folders, _ = code_map()
    assert all(f.endswith("/") for f in folders), folders
    named = {f.rstrip("/") for f in folders}
    missing = sorted(f for f in named if not (ROOT / f).is_dir())
    assert not missing, f"the code map names folders that do not exist: {missing}"
    packages = {
        str(init.parent.relative_to(ROOT))
        for package in ("pipeline", "train")
        for init in (ROOT / package).rglob("__init__.py")
    }
    assert not packages - named, f"package folders missing from the code map: {sorted(packages - named)}"
    top = tracked_folders()
    assert not top - named, f"top-level folders missing from the code map: {sorted(top - named)}"
    assert len(folders) == len(named), "a folder is named twice"


def test_every_file_of_the_walk_exists() -> None:
    _, walk = code_map()
    paths = re.findall(r"\b(?:pipeline|train)/[\w/]*\w\.py\b", walk)
    assert len(paths) >= 15, paths
    missing = sorted({p for p in paths if not (ROOT / p).is_file()})
    assert not missing, f"the code map's walk names files that do not exist: {missing}"
