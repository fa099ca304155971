"""`trainctl`: train generators (DeblurGAN, NAFNet, Restormer) on the shards, evaluate, deblur images and videos, export
them (SavedModel, TFLite, Keras, safetensors), import published PyTorch weights, list versions.

Commands parse flags, load pipeline.yaml, and call one library function; TensorFlow is imported inside commands.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from pipeline import __version__
from pipeline.cli_base import Command, ConfigOpt, Group, config_defaults, config_path
from pipeline.console import cli_errors, log, set_debug
from train.inference.serving import check_pad

app = typer.Typer(
    name="trainctl",
    help="Train and use deblurring generators: fit -> versions -> evaluate / deblur / export.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=Group,
)

ConfigArg = Annotated[
    Path | None,
    typer.Argument(metavar="CONFIG", help="pipeline.yaml: shorthand for --config.", show_default=False),
]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="Override a config value: dotted.key=value (repeatable).")
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="A run dir, RUN/generator, RUN/generator/latest or a version dir RUN/generator/vNNNN "
        "(default: train.run_dir).",
    ),
]
VersionOpt = Annotated[
    str | None,
    typer.Option("--version", help="latest, best or vNNNN, when --model is a run dir (default: latest)."),
]
NoTlcOpt = Annotated[
    bool,
    typer.Option(
        "--no-tlc",
        help="Turn off test-time local statistics (TLC; on by default for NAFNet, recorded in results).",
    ),
]
PadOpt = Annotated[
    str,
    typer.Option(
        "--pad",
        help="Pad to the model's stride by reflect, or zero (as the NAFNet reference code does: a paper's numbers "
        "on sizes that are not multiples of the stride).",
    ),
]
EnsembleOpt = Annotated[
    bool,
    typer.Option("--ensemble", help="Average the x8 self-ensemble (flips and transposes): slower, better."),
]


def _version(flag: bool) -> None:
    if flag:
        typer.echo(f"trainctl {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks (also GOPRO_DEBUG=1).")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Train and use deblurring generators (DeblurGAN, NAFNet, Restormer)."""
    set_debug(debug)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@app.command(cls=Command)
def fit(config: ConfigArg = None, set_: SetOpt = None, config_file: ConfigOpt = None) -> None:
    """Train the generator train.generator.arch names (deblurgan, nafnet or restormer), with a critic when
    train.loss.adversarial > 0; rerunning with the same run_dir resumes from the last checkpoint."""
    with cli_errors():
        from train.config import load_config

        cfg = load_config(config_path(config, config_file), set_ or [])  # errors before the slow TF import
        _quiet_tensorflow()
        from train.fit.trainer import run
        from train.run.signals import exit_code

        result = run(cfg)
        if result.stopped_by:  # saved; 130/143 say "not finished, rerun to resume"
            raise typer.Exit(exit_code(result.stopped_by))


@app.command(
    cls=config_defaults(
        split="evaluate.split", src="evaluate.src", align="evaluate.align", pad="evaluate.pad"
    )
)
def evaluate(
    config: ConfigArg = None,
    version: Annotated[str, typer.Option("--version", help="latest, best or vNNNN.")] = "latest",
    split: Annotated[
        str | None, typer.Option("--split", help="Organized split (default: evaluate.split).")
    ] = None,
    src: Annotated[
        list[str] | None,
        typer.Option("--src", help="Organized dir to score (repeatable: one table row and score each)."),
    ] = None,
    align: Annotated[
        str | None,
        typer.Option("--align", help="auto (ecc for RealBlur sources), none or ecc (RealBlur's protocol)."),
    ] = None,
    out: Annotated[
        str | None, typer.Option("--out", help="Also write the metrics JSON here (local or gs://...).")
    ] = None,
    no_tlc: NoTlcOpt = False,
    ensemble: EnsembleOpt = False,
    pad: Annotated[
        str | None,
        typer.Option(
            "--pad",
            help="reflect or zero (the NAFNet reference code's padding: the papers' numbers on HIDE, RealBlur).",
        ),
    ] = None,
    set_: SetOpt = None,
    config_file: ConfigOpt = None,
) -> None:
    """Full-frame PSNR/SSIM of a generator version on organized A/B pairs (and of the blurred input), one table
    row per dataset."""
    with cli_errors():
        from train.config import load_config

        overrides = list(set_ or [])
        if align is not None:
            overrides.append(f"evaluate.align={align}")
        if pad is not None:
            overrides.append(f"evaluate.pad={pad}")
        cfg = load_config(config_path(config, config_file), overrides)  # errors before the slow TF import
        _quiet_tensorflow()
        from train.evaluation.evaluate import run

        run(cfg, version=version, split=split, out=out, tlc=not no_tlc, ensemble=ensemble, srcs=src or None)


@app.command(cls=Command)
def deblur(
    inputs: Annotated[
        list[str],
        typer.Argument(metavar="INPUT...", help="Images (PNG, JPEG, TIFF, WebP, BMP), folders, videos."),
    ],
    out: Annotated[
        str,
        typer.Option("--out", help="Output folder: images as NAME.png, videos as NAME.mp4 (or .mkv, .mov)."),
    ],
    model: ModelOpt = None,
    version: VersionOpt = None,
    tile: Annotated[
        int | None,
        typer.Option(
            "--tile",
            min=64,
            help="Cut images larger than this per side into overlapping, blended tiles (bounds memory; "
            "default 2048, or the smallest the model allows).",
        ),
    ] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Video frames per model call.")] = 4,
    codec: Annotated[
        str | None,
        typer.Option(
            "--codec",
            help="Video codec: h264 (default; MP4, or the input's MOV/M4V/MKV), mpeg4, ffv1 (lossless, MKV).",
        ),
    ] = None,
    crf: Annotated[
        int | None,
        typer.Option(
            "--crf",
            help="Video quality, lower is better: h264 CRF 0-51 (default 18), mpeg4 quantizer 2-31 (2).",
        ),
    ] = None,
    no_tlc: NoTlcOpt = False,
    ensemble: EnsembleOpt = False,
    pad: PadOpt = "reflect",
    config: ConfigOpt = None,
) -> None:
    """Deblur images and videos of any size with a generator version; exit 1 if any input failed."""
    with cli_errors():
        check_pad(pad)  # before the model loads
        version_dir = _model(model, version, config)
        from train.inference import files
        from train.inference.deblurrer import Deblurrer, load

        deblurrer = Deblurrer(load(version_dir, tlc=not no_tlc), tile=tile, ensemble=ensemble, pad=pad)
        if files.run(deblurrer, inputs, out, batch=batch, codec=codec, crf=crf):
            raise typer.Exit(1)


@app.command(cls=Command)
def export(
    out: Annotated[str, typer.Option("--out", help="Output dir (local or gs://...).")],
    model: ModelOpt = None,
    version: VersionOpt = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="savedmodel (uint8 serving signature), tflite, keras, or safetensors (PyTorch names and "
            "layouts, for the reference code).",
        ),
    ] = "savedmodel",
    float16: Annotated[
        bool, typer.Option("--float16", help="TFLite with float16 weights (half the size).")
    ] = False,
    no_tlc: NoTlcOpt = False,
    ensemble: Annotated[
        bool,
        typer.Option("--ensemble", help="SavedModel that averages the x8 self-ensemble (8x the compute)."),
    ] = False,
    pad: PadOpt = "reflect",
    config: ConfigOpt = None,
) -> None:
    """Export a generator version: SavedModel or TFLite (uint8 RGB in and out, any size), a Keras file, or the
    weights in the reference PyTorch code's names (safetensors)."""
    with cli_errors():
        check_pad(pad)  # before the model loads
        version_dir = _model(model, version, config)
        from train.inference.export import run

        run(version_dir, out, fmt=fmt, tlc=not no_tlc, float16=float16, ensemble=ensemble, pad=pad)


@app.command("import-weights", cls=Command)
def import_weights(
    file: Annotated[
        str, typer.Argument(metavar="FILE", help="A PyTorch checkpoint (.pth, .pt) or a .safetensors file.")
    ],
    out: Annotated[str, typer.Option("--out", help="New run dir: the weights become RUN/generator/v0001.")],
    arch: Annotated[
        str,
        typer.Option("--arch", help="auto (recognized from the tensor names and shapes) or an arch name."),
    ] = "auto",
    train_size: Annotated[
        int,
        typer.Option(
            "--train-size", min=1, help="The crop the model was trained on (TLC's window is 1.5x it)."
        ),
    ] = 256,
    key: Annotated[
        str,
        typer.Option(
            "--key", help="Which state dict: auto (params_ema, else params), params, params_ema, ..."
        ),
    ] = "auto",
) -> None:
    """Import published PyTorch weights (BasicSR `{"params": ...}` or a bare state dict; read without PyTorch,
    never running code from the file) as version v0001 of a new run dir."""
    with cli_errors():
        _quiet_tensorflow()
        from train.weights.importer import import_weights as run

        run(file, out, arch=arch, train_size=train_size, key=key)


@app.command(cls=Command)
def versions(
    config: ConfigArg = None,
    split: Annotated[
        str, typer.Option("--split", help="Show scores on this split (`all`: every split and dir).")
    ] = "test",
    set_: SetOpt = None,
    config_file: ConfigOpt = None,
) -> None:
    """Table of generator versions: step, time, scores on a split; marks latest and best. Reads JSON only (no
    TensorFlow for a local run dir)."""
    with cli_errors():
        from train.config import load_config
        from train.run.versions import print_table

        run_dir = load_config(config_path(config, config_file), set_ or []).train.run_dir
        print_table(run_dir, None if split == "all" else split)


def _quiet_tensorflow() -> None:
    """Import TensorFlow before the library does, without its start-up noise (see train.tf_startup)."""
    from train.tf_startup import import_tensorflow

    import_tensorflow()


def _model(model: str | None, version: str | None, config: Path | None) -> str:
    """The version dir that `--model` / `--version` name (a run dir means a version of it; no --model: the
    config's train.run_dir), resolved before the slow TensorFlow import."""
    from train.config import load_config
    from train.run.versions import resolve_model

    version_dir = resolve_model(model or load_config(config).train.run_dir, version)
    log(f"model: {version_dir}")
    _quiet_tensorflow()
    return version_dir


if __name__ == "__main__":
    app()
