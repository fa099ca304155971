"""The plan half of organize for the GOPRO_Large layout: scenes, frames paired by name, cheap header checks.

RAW/{train,test}/SCENE/{blur,blur_gamma,sharp}/F.png (or .jpg, .jpeg): a blurred and a sharp frame pair when their
file names match without the suffix (a JPEG blur pairs with a PNG sharp), never by position in a listing. Each
pair is checked from its image headers (imageheader.py); what cannot pair becomes a `Reject` with a reason, and a
frame stored twice in one folder under two suffixes is rejected rather than one picked silently. Nothing is
written; organize.py applies the plan.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.console import track
from pipeline.errors import UsageError
from pipeline.imageheader import IMAGE_SUFFIXES, ImageHeaderError, is_image_name, read_image_info

SPLITS = ("test", "train")  # sorted: the manifest is ordered by (split, scene, frame)
SHARP = "sharp"
SCENE_FOLDERS = ("blur", "blur_gamma", SHARP)
_ANY_SUFFIX = "{" + ",".join(IMAGE_SUFFIXES) + "}"  # in messages: 000001{.png,.jpg,.jpeg}
EXPECTED = "train/ or test/ holding SCENE/{blur,blur_gamma,sharp}/NNNNNN.png (or .jpg)"


@dataclass(frozen=True)
class Pair:
    split: str
    scene: str
    frame: str  # file stem, e.g. "000001"
    a: str  # blurred source file in RAW
    b: str  # sharp source file in RAW
    width: int
    height: int

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


@dataclass
class Plan:
    raw: Path
    blur: str
    pairs: list[Pair] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    scenes: list[Path] = field(default_factory=list)  # every scene folder listed


def _list_frames(folder: Path) -> dict[str, list[str]]:
    """{stem: [file names]} of the PNG and JPEG frames in `folder` (several names for a stem only when it exists
    with two suffixes); hidden files and other junk are skipped silently."""
    frames: dict[str, list[str]] = {}
    if not folder.is_dir():
        return frames
    with os.scandir(folder) as entries:
        for e in entries:
            if not e.name.startswith(".") and is_image_name(e.name) and e.is_file():
                frames.setdefault(os.path.splitext(e.name)[0], []).append(e.name)
    return {stem: sorted(names) for stem, names in frames.items()}


def _header(path: Path, rejects: list[Reject]) -> tuple[int, int] | None:
    try:
        info = read_image_info(path)
    except (ImageHeaderError, OSError) as exc:
        rejects.append(Reject(str(path), "unreadable", getattr(exc, "strerror", None) or str(exc)))
        return None
    return info.width, info.height


def _ambiguous(scene_dir: Path, folder: str, names: list[str]) -> Reject:
    """A frame stored twice under different suffixes: which one is meant cannot be told, so neither is used."""
    stem = os.path.splitext(names[0])[0]
    detail = f"ambiguous: {' and '.join(names)} are both frame {stem} in {folder}/; keep one"
    return Reject(str(scene_dir / folder / names[0]), "unreadable", detail)


def scan_scene(scene_dir: Path, split: str, blur: str) -> tuple[list[Pair], list[Reject]]:
    """Pair `blur`/F.png with sharp/F.png (.jpg, .jpeg: same frame name, any mix) in one scene folder, with
    cheap header checks."""
    blur_names, sharp_names = _list_frames(scene_dir / blur), _list_frames(scene_dir / SHARP)
    pairs: list[Pair] = []
    rejects: list[Reject] = []
    for stem in sorted(blur_names.keys() | sharp_names.keys()):
        blurs, sharps = blur_names.get(stem, []), sharp_names.get(stem, [])
        if len(blurs) > 1 or len(sharps) > 1:
            twice = ((blur, blurs), (SHARP, sharps))
            rejects.extend(_ambiguous(scene_dir, folder, names) for folder, names in twice if len(names) > 1)
            continue
        if not sharps:
            detail = f"no {SHARP}/{stem}{_ANY_SUFFIX} in {scene_dir.name}"
            rejects.append(Reject(str(scene_dir / blur / blurs[0]), "missing_sharp", detail))
            continue
        if not blurs:
            detail = f"no {blur}/{stem}{_ANY_SUFFIX} in {scene_dir.name}"
            rejects.append(Reject(str(scene_dir / SHARP / sharps[0]), "missing_blur", detail))
            continue
        a, b = scene_dir / blur / blurs[0], scene_dir / SHARP / sharps[0]
        size_a, size_b = _header(a, rejects), _header(b, rejects)
        if size_a is None or size_b is None:
            continue
        if size_a != size_b:
            detail = f"{blur} {size_a[0]}x{size_a[1]} vs {SHARP} {size_b[0]}x{size_b[1]}"
            rejects.append(Reject(str(a), "size_mismatch", detail))
            continue
        pairs.append(Pair(split, scene_dir.name, stem, str(a), str(b), *size_a))
    return pairs, rejects


def _scene_dirs(raw: Path) -> list[tuple[str, Path]]:
    """(split, scene folder) for every scene that has at least one GOPRO folder; empty scenes are skipped."""
    if not raw.exists():
        raise UsageError(f"--raw {raw}: not found; expected a GOPRO_Large folder with {EXPECTED}")
    if not raw.is_dir():
        raise UsageError(f"--raw {raw}: not a directory; expected a GOPRO_Large folder with {EXPECTED}")
    scenes = []
    for split in SPLITS:
        split_dir = raw / split
        if not split_dir.is_dir():
            continue
        with os.scandir(split_dir) as entries:
            names = sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir())
        for name in names:
            if any((split_dir / name / folder).is_dir() for folder in SCENE_FOLDERS):
                scenes.append((split, (split_dir / name).absolute()))
    if not scenes:
        raise UsageError(f"--raw {raw}: no GOPRO scenes found; expected {EXPECTED}")
    return scenes


def plan(raw: Path, blur: str) -> Plan:
    """List RAW scene by scene and pair frames; nothing is written. Missing/non-GOPRO RAW is a UsageError."""
    if blur not in ("blur", "blur_gamma"):
        raise UsageError(f"--blur {blur!r}: expected blur or blur_gamma")
    scenes = _scene_dirs(Path(raw))  # errors name RAW as given; pairs and rejects hold absolute paths
    result = Plan(raw=Path(raw).absolute(), blur=blur, scenes=[scene_dir for _, scene_dir in scenes])
    for split, scene_dir in track(scenes, total=len(scenes), description="scan"):
        pairs, rejects = scan_scene(scene_dir, split, blur)
        result.pairs.extend(pairs)
        result.rejects.extend(rejects)
    result.pairs.sort(key=lambda p: (p.split, p.scene, p.frame))
    _refuse_name_collisions(result.pairs)
    return result


def _refuse_name_collisions(pairs: list[Pair]) -> None:
    """SCENE_FRAME must be unique per split: scene `a_b` frame `1` and scene `a` frame `b_1` would share a file
    (or, with other suffixes, a name that only the suffix tells apart)."""
    seen: dict[tuple[str, str], Pair] = {}
    for pair in pairs:
        other = seen.setdefault((pair.split, pair.stem), pair)
        if other is not pair:
            raise UsageError(
                f"{pair.a}: its output name {pair.split}/A/{pair.out_name('A')} is also that of {other.a}; "
                "rename one of the scenes or frames"
            )
