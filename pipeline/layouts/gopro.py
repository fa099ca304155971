"""The GOPRO_Large layout: RAW/SPLIT/SCENE/{blur,blur_gamma,sharp}/FRAME.png (or .jpg, .jpeg).

Every folder of RAW that holds scene folders is a split (GOPRO_Large ships train/ and test/; a val/ works the
same). Within a scene, `--blur` (blur or blur_gamma) pairs with sharp/ by frame name. Scenes keep their names in
OUT (GOPRO's are camera file names, unique across the dataset), so a GOPRO organized dir reads as it always has.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.console import track
from pipeline.errors import UsageError
from pipeline.layouts.base import LayoutArgs, Plan, default_source, reject_summary, safe_name
from pipeline.layouts.frames import match_folders, subdirs
from pipeline.raw_survey import no_pairs_message

SHARP = "sharp"
BLUR_FOLDERS = ("blur", "blur_gamma")
SCENE_FOLDERS = (*BLUR_FOLDERS, SHARP)


def _is_scene(folder: Path) -> bool:
    return any((folder / name).is_dir() for name in SCENE_FOLDERS)


def _scenes(raw: Path) -> list[tuple[str, Path]]:
    """(split, scene folder) for every scene with at least one GOPRO folder; empty scenes are skipped."""
    scenes = []
    for split in subdirs(raw):
        for name in subdirs(raw / split):
            if _is_scene(raw / split / name):
                scenes.append((split, (raw / split / name).absolute()))
    return scenes


class GoproLayout:
    name = "gopro"
    expected = "gopro: SPLIT/SCENE/{blur,blur_gamma,sharp}/NNNNNN.png (or .jpg), as GOPRO_Large"

    def detect(self, raw: Path) -> str | None:
        # `blur/` alone is not telling (RealBlur's scenes hold blur/ and gt/): a GOPRO scene has sharp/ or blur_gamma/.
        for split in subdirs(raw):
            for scene in subdirs(raw / split):
                found = [name for name in SCENE_FOLDERS if (raw / split / scene / name).is_dir()]
                if SHARP in found or "blur_gamma" in found:
                    return f"{split}/{scene}/{{{','.join(found)}}}"
        return None

    def plan(self, args: LayoutArgs) -> Plan:
        if args.blur not in BLUR_FOLDERS:
            raise UsageError(f"--blur {args.blur!r}: expected blur or blur_gamma")
        raw = Path(args.raw)
        scenes = _scenes(raw)
        if not scenes:
            raise UsageError(f"--raw {raw}: no GOPRO scenes found; expected {self.expected}")
        for split in sorted({split for split, _ in scenes}):
            safe_name(split, f"split folder {raw / split}:")
        source = safe_name(args.source, "--source") if args.source else default_source(raw.absolute().name)
        result = Plan(
            raw=raw.absolute(),
            layout=self.name,
            source=source,
            blur=args.blur,
            splits=tuple(sorted({split for split, _ in scenes})),
            whole_source=True,
            folders=[scene for _, scene in scenes],
            roots=[raw.absolute()],
        )
        for split, scene in track(scenes, total=len(scenes), description="scan"):
            pairs, rejects = match_folders(
                scene / args.blur, scene / SHARP, split, scene.name, source, scene.name
            )
            result.pairs.extend(pairs)
            result.rejects.extend(rejects)
        return result

    def no_pairs_message(self, args: LayoutArgs, plan: Plan) -> str:
        matched = any(r.reason in ("size_mismatch", "unreadable") for r in plan.rejects)
        return no_pairs_message(
            Path(args.raw), args.blur, SHARP, plan.folders, reject_summary(plan.rejects), matched
        )


LAYOUT = GoproLayout()
