"""`gopro-prep`: organize raw GOPRO footage, make a synthetic sample, shard crops into TFRecords, inspect shards.

Commands parse flags, load pipeline.yaml, and call one library function; heavy imports stay inside commands.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from pipeline import __version__
from pipeline.cli_base import ConfigOpt, Group, beam_config_defaults, config_defaults
from pipeline.console import cli_errors, set_debug
from pipeline.interrupts import exit_on_signal
from pipeline.layouts import LAYOUT_CHOICES

app = typer.Typer(
    name="gopro-prep",
    help="Prepare GOPRO deblurring data: organize -> shard -> inspect (and a synthetic sample).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=Group,
)


class Blur(StrEnum):
    blur = "blur"
    blur_gamma = "blur_gamma"


Layout = StrEnum("Layout", {name: name for name in LAYOUT_CHOICES})  # auto + every registered layout


class Link(StrEnum):
    hardlink = "hardlink"
    symlink = "symlink"
    copy = "copy"


def _version(flag: bool) -> None:
    if flag:
        typer.echo(f"gopro-prep {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks (also GOPRO_DEBUG=1).")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Prepare GOPRO deblurring data."""
    set_debug(debug)


@app.command(
    cls=config_defaults(
        raw="organize.raw",
        out="organize.out",
        layout="organize.layout",
        blur="organize.blur",
        link="organize.link",
        source="organize.source",
    )
)
def organize(
    raw: Annotated[
        Path | None, typer.Option("--raw", help="Dataset root (GOPRO_Large, a test-set folder, RealBlur).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Organized output dir (A/ B/ + manifest).")
    ] = None,
    layout: Annotated[
        Layout | None,
        typer.Option(
            "--layout", help="gopro, pairs (SPLIT/{input,target}), list (--list FILE); auto: detect."
        ),
    ] = None,
    blur: Annotated[Blur | None, typer.Option("--blur", help="gopro: the blurred folder.")] = None,
    blur_dir: Annotated[
        str | None, typer.Option("--blur-dir", help="pairs: blurred folder (as given, or relative to --raw).")
    ] = None,
    sharp_dir: Annotated[str | None, typer.Option("--sharp-dir", help="pairs: sharp folder.")] = None,
    list_file: Annotated[
        str | None, typer.Option("--list", help="list: `sharp_path blur_path` per line, relative to --raw.")
    ] = None,
    split: Annotated[
        str | None, typer.Option("--split", help="pairs (one folder pair) and list: the split they go to.")
    ] = None,
    source: Annotated[
        str | None, typer.Option("--source", help="Dataset name in OUT (default: from --raw or the list).")
    ] = None,
    link: Annotated[
        Link | None, typer.Option("--link", help="How files reach OUT (hardlink falls back to copy).")
    ] = None,
    verify: Annotated[bool, typer.Option("--verify", help="Also decode every image, on all cores.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Any reject: exit 1 and write nothing.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Organize a raw dataset into OUT/SPLIT/{A,B}/SCENE_FRAME.png with manifest.jsonl and rejected.jsonl; a
    second dataset organized into the same OUT is added under its own name."""
    with cli_errors():
        from pipeline.config import load_config, with_flags
        from pipeline.organize import run

        cfg = load_config(config).organize
        cfg = with_flags(
            cfg,
            raw=None if raw is None else str(raw),
            out=None if out is None else str(out),
            layout=None if layout is None else layout.value,
            blur=None if blur is None else blur.value,
            blur_dir=blur_dir,
            sharp_dir=sharp_dir,
            list_file=list_file,
            split=split,
            source=source,
            link=None if link is None else link.value,
        )
        run(cfg, verify=verify, strict=strict)


@app.command(cls=config_defaults(out="organize.raw"))
def sample(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Where to write the GOPRO_Large-layout tree (default: organize.raw)."),
    ] = None,
    scenes: Annotated[
        int, typer.Option("--scenes", min=2, help="Scenes in all; the last quarter go to test.")
    ] = 4,
    frames: Annotated[int, typer.Option("--frames", min=1, help="Frames per scene.")] = 4,
    size: Annotated[str, typer.Option("--size", help="Frame size WxH.")] = "320x180",
    seed: Annotated[int, typer.Option("--seed", min=0)] = 0,
    config: ConfigOpt = None,
) -> None:
    """Write a synthetic dataset in the exact GOPRO_Large layout (procedural scenes, real motion blur)."""
    with cli_errors():
        from pipeline.config import load_config
        from pipeline.sample import parse_size, write_sample

        out = out or Path(load_config(config).organize.raw)
        write_sample(out, scenes=scenes, frames=frames, size=parse_size(size), seed=seed)


@app.command(cls=config_defaults(out="organize.raw"))
def synthesize(
    frames: Annotated[Path, typer.Option("--frames", help="Sharp high-fps frames: SPLIT/SCENE/NNNNNN.png.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Where to write the GOPRO_Large-layout tree (default: organize.raw)."),
    ] = None,
    window: Annotated[
        str, typer.Option("--window", help="Sub-frames averaged per blurred frame: N or LO..HI.")
    ] = "7..13",
    gamma: Annotated[
        float, typer.Option("--gamma", min=1.0, help="Gamma for blur_gamma (linear-light mean).")
    ] = 2.2,
    seed: Annotated[
        int, typer.Option("--seed", min=0, help="Seed for window sizes when a range is given.")
    ] = 0,
    config: ConfigOpt = None,
) -> None:
    """Average real sharp high-frame-rate frames into GOPRO_Large-style blur/blur_gamma/sharp triples."""
    with cli_errors():
        from pipeline.config import load_config
        from pipeline.synthesize import parse_window, run

        out = out or Path(load_config(config).organize.raw)
        run(Path(frames), out, window=parse_window(window), gamma=gamma, seed=seed)


@app.command(
    cls=beam_config_defaults(
        src="shard.src",
        out="shard.out",
        crop="shard.crop_size",
        crops_per_pair="shard.crops_per_pair",
        shards="shard.shards.train",
        seed="shard.seed",
        runner="shard.runner",
    )
)
def shard(
    ctx: typer.Context,
    src: Annotated[
        str | None, typer.Option("--src", help="Organized dir (reads its manifest.jsonl).")
    ] = None,
    out: Annotated[str | None, typer.Option("--out", help="Shards dir (published atomically).")] = None,
    crop: Annotated[int | None, typer.Option("--crop", help="Crop size in pixels.")] = None,
    crops_per_pair: Annotated[
        int | None, typer.Option("--crops-per-pair", help="Random crops per pair.")
    ] = None,
    shards: Annotated[
        int | None, typer.Option("--shards", help="Train shards (other splits keep their config count).")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Crop seed.")] = None,
    runner: Annotated[
        str | None,
        typer.Option(
            "--runner", help="Beam runner (DirectRunner, DaskRunner, DataflowRunner, FlinkRunner, ...)."
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing published dataset.")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Shard random-crop A/B pairs into TFRecords with Apache Beam. Only the arguments after `--` go to Beam."""
    with exit_on_signal(), cli_errors():
        from pipeline.beam_runner import quiet_beam_import
        from pipeline.config import load_config, with_flags

        quiet_beam_import()
        from pipeline.shard import run

        cfg = load_config(config).shard
        shard_counts = None if shards is None else {**cfg.shards.model_dump(), "train": shards}
        cfg = with_flags(
            cfg,
            src=src,
            out=out,
            crop_size=crop,
            crops_per_pair=crops_per_pair,
            shards=shard_counts,
            seed=seed,
            runner=runner,
        )
        run(cfg, overwrite=overwrite, beam_args=list(ctx.args))


@app.command(cls=config_defaults(directory="shard.out"))
def inspect(
    directory: Annotated[
        str | None,
        typer.Argument(metavar="DIR", help="Published shards dir (with dataset.json; default: shard.out)."),
    ] = None,
    dump: Annotated[Path | None, typer.Option("--dump", help="Write blur|sharp PNGs here.")] = None,
    samples: Annotated[int, typer.Option("--samples", min=0, help="How many pairs to dump.")] = 8,
    config: ConfigOpt = None,
) -> None:
    """Read every record (no TensorFlow), check counts against dataset.json; exit 1 on any mismatch."""
    with cli_errors():
        from pipeline.config import load_config
        from pipeline.inspect_shards import run

        run(directory or load_config(config).shard.out, dump=dump, samples=samples)


if __name__ == "__main__":
    app()
