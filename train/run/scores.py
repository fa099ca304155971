"""A version's scores: metrics kept per scope (organized dir, split, and how they were measured) in meta.json.

Scores measured on different data are not comparable, so meta.json keeps one entry per scope instead of one
`metrics` dict that the next evaluation overwrites:

    "metrics": {"test @ data/organized": {"src": "data/organized", "split": "test", "psnr": 27.1, ...},
                "train @ data/organized": {...},
                "test @ data/organized (8 frames)": {...},      # validation during fit: a subset of frames
                "test @ data/realblur_j (ecc aligned)": {...}}  # RealBlur's protocol

`best` ranks versions only within one scope. Pure functions on plain dicts (no TensorFlow).
"""

from __future__ import annotations

from typing import Any

DEFAULT_SPLIT = "test"
# What, besides src and split, makes two scores incomparable (a subset of frames, test-time options).
SCOPE_OPTIONS = ("frames", "ensemble", "tlc", "align", "pad")


def scope_key(result: dict[str, Any]) -> str:
    """`split @ src`, plus what else sets the scope: `test @ data/organized (8 frames, ensemble x8)`."""
    key = f"{result.get('split', '?')} @ {result.get('src', '?')}"
    extras = []
    if result.get("frames"):
        extras.append(f"{int(result['frames'])} frames")
    if result.get("ensemble"):
        extras.append("ensemble x8")
    if result.get("tlc") is False:
        extras.append("no TLC")
    if result.get("align") not in (None, "none"):  # RealBlur's protocol scores aligned outputs
        extras.append(f"{result['align']} aligned")
    if result.get("pad") not in (None, "reflect"):  # zero padding (the reference code's) gives other numbers
        extras.append(f"{result['pad']} padding")
    return f"{key} ({', '.join(extras)})" if extras else key


def all_scores(meta: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{scope key: metrics} of a version's meta.json; a pre-scope flat `metrics` dict is read as one scope."""
    metrics = meta.get("metrics") or {}
    if not isinstance(metrics, dict):
        return {}
    if "psnr" in metrics and not isinstance(metrics["psnr"], dict):  # written before scopes existed
        return {scope_key(metrics): metrics}
    return {k: v for k, v in metrics.items() if isinstance(v, dict) and "psnr" in v}


def with_score(meta: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """`meta` with `result` stored under its scope (replacing only that scope's earlier score)."""
    scores = all_scores(meta)
    scores[scope_key(result)] = dict(result)
    return {**meta, "metrics": scores}


def matching(
    meta: dict[str, Any], split: str | None = DEFAULT_SPLIT, src: str | None = None
) -> dict[str, dict[str, Any]]:
    """The scores of one split (None: any) and, when given, one organized dir, by scope key (sorted)."""
    return {
        key: m
        for key, m in sorted(all_scores(meta).items())
        if (split is None or m.get("split") == split) and (src is None or m.get("src") == src)
    }


def psnr_in(meta: dict[str, Any], key: str) -> float | None:
    value = all_scores(meta).get(key, {}).get("psnr")
    return None if value is None else float(value)


def newest_scope(metas: list[dict[str, Any]]) -> str | None:
    """The scope of the most recent score among `metas` (by its `evaluated` time): what `best` means by default."""
    newest: tuple[str, str] | None = None
    for meta in metas:
        for key, m in all_scores(meta).items():
            stamp = str(m.get("evaluated", ""))
            if newest is None or stamp > newest[0]:
                newest = (stamp, key)
    return None if newest is None else newest[1]


def gain(m: dict[str, Any]) -> float | None:
    if m.get("psnr") is None or m.get("psnr_input") is None:
        return None
    return float(m["psnr"]) - float(m["psnr_input"])
