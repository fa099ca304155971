"""A text file of pairs, one `sharp_path blur_path` per line relative to the dataset root, as RealBlur ships them.

RealBlur's `RealBlur_J_train_list.txt` (and `_test_`, and the `_R_` twins) sit in the dataset root and list
`RealBlur-J_ECC_IMCORR_centroid_itensity_ref/scene230/gt/gt_7.png RealBlur-J_.../scene230/blur/blur_7.png`:
the ground truth first (the order the RealBlur, SRN-Deblur and DeblurGAN-v2 loaders read). One list is one split
(`--list FILE --split NAME`); organizing the other list adds the other split to the same source. Blank lines and
`#` comments are skipped; a line that is not two paths is a data error naming the file and line.

The scene of a pair is the folder above the sharp file's folder (`scene230`), prefixed with the source name; the
frame is what the two file names share at their end (`gt_7`, `blur_7` -> `7`), else the sharp file's name.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import DataError, UsageError
from pipeline.layouts.base import (
    LayoutArgs,
    Plan,
    Reject,
    default_source,
    reject_summary,
    require_split,
    resolve_path,
    safe_name,
)
from pipeline.layouts.frames import checked_pair

_SEPARATORS = "_-."


def _frame(sharp_stem: str, blur_stem: str) -> str:
    """The common end of both names when it starts after a separator in each (`gt_7`, `blur_7` -> `7`)."""
    n = 0
    while n < min(len(sharp_stem), len(blur_stem)) and sharp_stem[-1 - n] == blur_stem[-1 - n]:
        n += 1
    common = sharp_stem[len(sharp_stem) - n :]
    cut = common.lstrip(_SEPARATORS)

    def starts_after_separator(stem: str) -> bool:
        start = len(stem) - len(cut)
        return start == 0 or stem[start - 1] in _SEPARATORS

    if cut and starts_after_separator(sharp_stem) and starts_after_separator(blur_stem):
        return cut
    return sharp_stem


def _scene(sharp_rel: str, source: str) -> str:
    parts = Path(sharp_rel).parts
    scene = parts[-3] if len(parts) >= 3 else ""
    return f"{source}-{default_source(scene)}" if scene else source


def list_source(list_path: Path, split: str) -> str:
    """The dataset name a list file implies: `RealBlur_J_train_list.txt` with split train -> `RealBlur_J`."""
    stem = list_path.stem
    for tail in ("_list", "-list", f"_{split}", f"-{split}"):
        stem = stem[: -len(tail)] if stem.endswith(tail) and len(stem) > len(tail) else stem
    return default_source(stem)


def read_list(path: Path) -> list[tuple[int, str, str]]:
    """(line number, sharp path, blur path) of every pair line; DataError naming FILE:LINE for a bad one."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the pair list ({exc})") from None
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) != 2:
            raise DataError(f"{path}:{number}: expected `sharp_path blur_path`, got {len(fields)} field(s)")
        rows.append((number, fields[0], fields[1]))
    if not rows:
        raise DataError(f"{path}: lists no pairs")
    return rows


def _list_files(raw: Path) -> list[str]:
    return sorted(p.name for p in raw.glob("*list*.txt") if p.is_file()) if raw.is_dir() else []


class ListLayout:
    name = "list"
    expected = (
        "list: --list FILE --split NAME, one `sharp_path blur_path` per line (RealBlur_J_train_list.txt)"
    )

    def detect(self, raw: Path) -> str | None:
        lists = _list_files(raw)
        return ", ".join(lists) if lists else None

    def plan(self, args: LayoutArgs) -> Plan:
        if not args.list_file:
            found = _list_files(Path(args.raw))
            held = f"{args.raw} holds {', '.join(found)}; " if found else ""
            raise UsageError(f"--layout list needs --list FILE: {held}pass --list FILE --split NAME")
        split = require_split(args, "a pair list holds one split")
        raw = Path(args.raw).absolute()
        list_path = resolve_path(raw, args.list_file, "--list")
        source = safe_name(args.source, "--source") if args.source else list_source(list_path, split)
        result = Plan(
            raw=raw,
            layout=self.name,
            source=source,
            blur=None,
            splits=(split,),
            whole_source=False,
            roots=[raw],
        )
        result.folders.append(list_path)
        for number, sharp_rel, blur_rel in read_list(list_path):
            where = f"{list_path.name}:{number}"
            sharp, blur = raw / sharp_rel, raw / blur_rel
            if not blur.is_file():
                reason = "missing_blur"
                detail = f"{where}: {blur_rel} not found" + ("" if sharp.is_file() else f", nor {sharp_rel}")
                result.rejects.append(
                    Reject(str(blur if not sharp.is_file() else sharp), reason, detail, split)
                )
                continue
            if not sharp.is_file():
                detail = f"{where}: {sharp_rel} not found"
                result.rejects.append(Reject(str(blur), "missing_sharp", detail, split))
                continue
            frame = _frame(Path(sharp_rel).stem, Path(blur_rel).stem)
            key = (split, _scene(sharp_rel, source), frame, source)
            pair = checked_pair(blur, sharp, ("blur", "sharp"), key, result.rejects)
            if pair is not None:
                result.pairs.append(pair)
        return result

    def no_pairs_message(self, args: LayoutArgs, plan: Plan) -> str:
        rejects = reject_summary(plan.rejects)
        return f"{plan.folders[0]}: no good pairs to organize (paths are relative to {plan.raw}); rejected: {rejects}"


LAYOUT = ListLayout()
