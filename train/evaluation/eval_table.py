"""The table `trainctl evaluate` prints: one row per dataset, the model's PSNR/SSIM next to the blurred input's.

Each organized dir is a row; a dir holding several sources (GOPRO_Large + RealBlur_J) gets a row per source and
then its total. The table goes to stderr (stdout carries the JSON); the columns are the usual deblurring table.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any


def table_rows(results: Sequence[dict[str, Any]]) -> list[list[str]]:
    """[dataset, src, pairs, align, PSNR, input PSNR, gain, SSIM, input SSIM, SSIM 3D, input SSIM 3D] per source,
    and a total per dir that holds several sources."""
    rows = []
    for result in results:
        sources = result.get("per_source") or {}
        named = {name: m for name, m in sources.items() if name}
        entries = (
            list(named.items()) if named else [(str(result["src"]).rstrip("/").rsplit("/", 1)[-1], result)]
        )
        if len(entries) > 1:
            entries.append(("all", result))
        for name, m in entries:
            align = m.get("align", "none") + (
                f" ({m['align_failed']} failed)" if m.get("align_failed") else ""
            )
            rows.append(
                [
                    name,
                    str(result["src"]),
                    str(m["pairs"]),
                    align,
                    f"{m['psnr']:.2f}",
                    f"{m['psnr_input']:.2f}",
                    f"{m['psnr'] - m['psnr_input']:+.2f}",
                    f"{m['ssim']:.4f}",
                    f"{m['ssim_input']:.4f}",
                    _ssim(m.get("ssim_3d")),
                    _ssim(m.get("ssim_3d_input")),
                ]
            )
    return rows


def _ssim(value: Any) -> str:
    return "" if value is None else f"{value:.4f}"  # results stored before 3-D SSIM existed have none


def print_table(results: Sequence[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    first = results[0]
    table = Table(title=f"{first['version']} on {first['split']}")
    columns = (
        "dataset",
        "src",
        "pairs",
        "align",
        "PSNR",
        "input",
        "gain",
        "SSIM",
        "input SSIM",
        "SSIM 3D",
        "input",
    )
    for name in columns:
        table.add_column(name, justify="left" if name in ("dataset", "src", "align") else "right")
    for row in table_rows(results):
        table.add_row(*row)
    Console(file=sys.stderr, width=160).print(table)
