"""`trainctl`: train DeblurGAN on the shards, evaluate, deblur images, export SavedModels, list versions.

Commands parse flags, load pipeline.yaml, and call one library function; TensorFlow is imported inside commands.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from pipeline import __version__
from pipeline.console import cli_errors, set_debug

app = typer.Typer(
    name="trainctl",
    help="Train and use DeblurGAN generators: fit -> versions -> evaluate / deblur / export.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

ConfigArg = Annotated[Path, typer.Argument(metavar="CONFIG", help="pipeline.yaml")]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="Override a config value: dotted.key=value (repeatable).")
]


def _version(flag: bool) -> None:
    if flag:
        typer.echo(f"trainctl {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks (also GOPRO_DEBUG=1).")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True)] = False,
) -> None:
    """Train and use DeblurGAN generators."""
    set_debug(debug)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@app.command()
def fit(config: ConfigArg, set_: SetOpt = None) -> None:
    """Train DeblurGAN; rerunning with the same run_dir resumes from the last checkpoint."""
    with cli_errors():
        from pipeline.config import load_config

        cfg = load_config(config, set_ or [])  # config errors before the slow TensorFlow import
        from train.signals import exit_code
        from train.trainer import run

        result = run(cfg)
        if result.stopped_by:  # saved; 130/143 say "not finished, rerun to resume"
            raise typer.Exit(exit_code(result.stopped_by))


@app.command()
def evaluate(
    config: ConfigArg,
    version: Annotated[str, typer.Option("--version", help="latest, best or vNNNN.")] = "latest",
    split: Annotated[
        str | None, typer.Option("--split", help="Organized split (default: evaluate.split).")
    ] = None,
    out: Annotated[
        str | None, typer.Option("--out", help="Also write the metrics JSON here (local or gs://...).")
    ] = None,
    set_: SetOpt = None,
) -> None:
    """Full-frame PSNR/SSIM of a generator version on organized A/B pairs (and of the blurred input)."""
    with cli_errors():
        from pipeline.config import load_config

        cfg = load_config(config, set_ or [])  # config errors before the slow TensorFlow import
        from train.evaluate import run

        run(cfg, version=version, split=split, out=out)


@app.command()
def deblur(
    inputs: Annotated[list[str], typer.Argument(metavar="INPUT...", help="Image files or folders.")],
    model: Annotated[str, typer.Option("--model", help="Generator version dir (RUN/generator/vNNNN).")],
    out: Annotated[str, typer.Option("--out", help="Output folder (same names, PNG).")],
    tile: Annotated[
        int,
        typer.Option(
            "--tile",
            min=64,
            help="Cut images larger than this per side into overlapping, blended tiles (bounds memory).",
        ),
    ] = 2048,
) -> None:
    """Deblur images of any size with a generator version; exit 1 if any input failed."""
    with cli_errors():
        from train.deblur import run

        failed = run(model, inputs, out, tile=tile)
        if failed:
            raise typer.Exit(1)


@app.command()
def export(
    model: Annotated[str, typer.Option("--model", help="Generator version dir (RUN/generator/vNNNN).")],
    out: Annotated[str, typer.Option("--out", help="SavedModel output dir (local or gs://...).")],
) -> None:
    """Export a generator version as a TF SavedModel (uint8 RGB in, uint8 RGB out, any size)."""
    with cli_errors():
        from train.export import run

        run(model, out)


@app.command()
def versions(
    config: ConfigArg,
    split: Annotated[
        str, typer.Option("--split", help="Show scores on this split (`all`: every split and dir).")
    ] = "test",
    set_: SetOpt = None,
) -> None:
    """Table of generator versions: step, time, scores on a split; marks latest and best."""
    with cli_errors():
        from pipeline.config import load_config
        from train.versions import print_table

        print_table(load_config(config, set_ or []).train.run_dir, None if split == "all" else split)


if __name__ == "__main__":
    app()
