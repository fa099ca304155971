"""The command-line conventions both CLIs share, as Typer command and group classes.

- A usage error (unknown option, bad value, missing option, unknown command) is one line, `error: ...`, exit 2,
  with the closest real option suggested: a mistyped flag must never be ignored.
- Flags are plain flags: `--help` shows no `<bool>` placeholder for them.
- `BeamCommand` passes only the arguments after `--` through (to Beam); anything else unknown is an error.
- `config_defaults(...)` commands show in `--help` the values pipeline.yaml (or `--config FILE`) would supply.
- `--config FILE` on every command; `config_path` reconciles it with the positional CONFIG shorthand.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from typer import _click  # Typer 0.29 vendors Click (pinned in pyproject.toml)
from typer._click.exceptions import NoArgsIsHelpError, NoSuchOption
from typer._click.exceptions import UsageError as ClickUsageError
from typer.core import TyperCommand, TyperGroup

from pipeline.console import error_line, log
from pipeline.errors import GoproError, UsageError

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", metavar="FILE", help="pipeline.yaml to read (default: ./pipeline.yaml)."),
]
_RAW_ARGS = "gopro.raw_args"  # ctx.meta key: the command's own arguments, for `--help` to find --config


def closest_option(name: str, known: list[str]) -> str | None:
    """The real option `name` most likely meant (`--shard` -> `--shards`, `--crops_per_pair` -> `--crops-per-pair`)."""
    dashed = name.replace("_", "-")
    if dashed in known:
        return dashed
    matches = difflib.get_close_matches(dashed, known, n=1, cutoff=0.7)
    return matches[0] if matches else None


def usage_line(exc: ClickUsageError) -> str:
    """The one line shown for a Click usage error: the command, the problem, and a suggestion when there is one."""
    where = f"{exc.ctx.command_path}: " if exc.ctx is not None else ""
    if isinstance(exc, NoSuchOption):
        message = f"no such option {exc.option_name}"
        known = [] if exc.ctx is None else [o for p in exc.ctx.command.get_params(exc.ctx) for o in p.opts]
        guess = closest_option(exc.option_name, [o for o in known if o.startswith("--")])
        if guess:
            message += f" (did you mean {guess}?)"
    else:
        message = " ".join(exc.format_message().split())
    return f"error: {where}{message}"


@contextlib.contextmanager
def one_line_usage_errors() -> Iterator[None]:
    """Print Click usage errors as `error: ...` and exit 2 (the help shown for no arguments passes through)."""
    try:
        yield
    except NoArgsIsHelpError:
        raise
    except ClickUsageError as exc:
        log(usage_line(exc))
        raise typer.Exit(2) from None


def _plain_flags(params: list[Any]) -> list[Any]:
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""  # Typer would render flags as `--verify <bool>`
    return params


class Group(TyperGroup):
    """The CLI's top level: one-line usage errors for its own options, unknown commands and every subcommand."""

    def make_context(self, *args: Any, **kwargs: Any) -> _click.Context:
        with one_line_usage_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: _click.Context) -> Any:
        with one_line_usage_errors():
            return super().invoke(ctx)

    def get_params(self, ctx: _click.Context) -> list[Any]:
        return _plain_flags(super().get_params(ctx))


class Command(TyperCommand):
    """A subcommand: plain flags, and `--help` showing the pipeline.yaml values of the options in `config_keys`
    (option name -> dotted key)."""

    config_keys: dict[str, str] = {}

    def get_params(self, ctx: _click.Context) -> list[Any]:
        return _plain_flags(super().get_params(ctx))

    def parse_args(self, ctx: _click.Context, args: list[str]) -> list[str]:
        ctx.meta[_RAW_ARGS] = list(args)
        return super().parse_args(ctx, args)

    def format_help(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        if not self.config_keys:
            return super().format_help(ctx, formatter)
        values, problem = _config_values(_config_arg(ctx.meta.get(_RAW_ARGS, [])), self.config_keys)
        shown, ctx.default_map = ctx.default_map, {**(ctx.default_map or {}), **values}
        try:
            super().format_help(ctx, formatter)
        finally:
            ctx.default_map = shown
        if problem:
            log(f"note: {problem}; the defaults shown are the built-in ones")


class BeamCommand(Command):
    """A command whose arguments after `--` go to Beam unchanged (ctx.args); before `--` every option is ours."""

    def parse_args(self, ctx: _click.Context, args: list[str]) -> list[str]:
        ours, beam = (args[: args.index("--")], args[args.index("--") + 1 :]) if "--" in args else (args, [])
        super().parse_args(ctx, ours)
        ctx.args = beam
        return beam

    def collect_usage_pieces(self, ctx: _click.Context) -> list[str]:
        return [*super().collect_usage_pieces(ctx), "[-- BEAM_ARGS...]"]


def config_defaults(**keys: str) -> type[Command]:
    """A Command class whose `--help` shows each option's value from pipeline.yaml: option name -> dotted key."""
    return type("ConfigDefaultsCommand", (Command,), {"config_keys": keys})


def beam_config_defaults(**keys: str) -> type[BeamCommand]:
    """`config_defaults` for a command that passes the arguments after `--` to Beam."""
    return type("BeamConfigDefaultsCommand", (BeamCommand,), {"config_keys": keys})


def _config_arg(args: list[str]) -> str | None:
    """The value of `--config` among a command's raw arguments (before any `--`), if given."""
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg == "--config" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


def _config_values(path: str | None, keys: dict[str, str]) -> tuple[dict[str, Any], str | None]:
    """The config values behind `keys`, and why the built-in defaults were used instead (a broken file)."""
    from pipeline.config import Config, load_config

    problem = None
    try:
        cfg = load_config(path)
    except GoproError as exc:
        cfg, problem = Config(), error_line(exc)
    values = {}
    for name, dotted in keys.items():
        value: Any = cfg
        for part in dotted.split("."):
            value = getattr(value, part)
        values[name] = value
    return values, problem


def config_path(positional: Path | None, option: Path | None) -> Path | None:
    """The config file from `CONFIG` (shorthand) or `--config FILE`; both naming different files is an error."""
    if positional is not None and option is not None and positional.resolve() != option.resolve():
        raise UsageError(f"CONFIG {positional} and --config {option} name different files; give one")
    return option if option is not None else positional
