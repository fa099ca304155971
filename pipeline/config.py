"""pipeline.yaml: the loader (the only place YAML is read), `--set` overrides, and the data stages' sections.

Each stage owns its sections: `organize` and `shard` are here, `train` and `evaluate` in train/config.py. A stage
that owns sections subclasses `Config` and registers the subclass under the entry-point group `CONFIG_GROUP`
(pyproject.toml), so `load_config` validates the whole file (an unknown key in any section is an error) while
pipeline/ imports nothing from the stages above it. `load_config(path, overrides)` returns a frozen config; every
stage takes the narrowest sub-config it needs. Every error names the dotted key (`train.generator.blocks`) and the
file.
"""

from __future__ import annotations

import re
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from pipeline.errors import ConfigError
from pipeline.layouts import LAYOUT_CHOICES

DEFAULT_CONFIG_NAME = "pipeline.yaml"
CONFIG_GROUP = "gopro_deblur.config"  # entry points: Config subclasses adding a stage's sections


class Section(BaseModel):
    """Strict, immutable config section: unknown keys and wrong types are errors, values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, populate_by_name=True)


SPLIT_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"  # split and source names become folder and file names


class OrganizeConfig(Section):
    raw: str = "GOPRO_Large"
    out: str = "data/organized"
    layout: Literal[LAYOUT_CHOICES] = "auto"  # type: ignore[valid-type]  # auto | each registered layout
    blur: Literal["blur", "blur_gamma"] = "blur_gamma"  # gopro layout: the blurred folder
    link: Literal["hardlink", "symlink", "copy"] = "hardlink"
    blur_dir: str | None = None  # pairs layout: the blurred folder (as given, or relative to raw)
    sharp_dir: str | None = None  # pairs layout: the sharp folder
    # list layout: the pair list (`list` in the file; the attribute would shadow the built-in)
    list_file: str | None = Field(None, alias="list")
    split: str | None = Field(None, pattern=SPLIT_NAME)  # pairs (flat or given folders) and list
    source: str | None = Field(
        None, pattern=SPLIT_NAME
    )  # dataset name; default from raw (or the list's name)


class ShardCounts(Section):
    """Shards per split: train and test by default, any other split by its name (`val: 2`); 1 when not named."""

    model_config = ConfigDict(extra="allow", frozen=True)

    train: int = Field(8, ge=1, le=100_000)
    test: int = Field(2, ge=1, le=100_000)

    @model_validator(mode="after")
    def _other_splits(self) -> ShardCounts:
        for name, value in (self.model_extra or {}).items():
            if not re.match(SPLIT_NAME, name):
                raise ValueError(f"split name {name!r}: use letters, digits, '.', '_' or '-'")
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100_000:
                raise ValueError(f"{name}: shard count must be an integer from 1 to 100000 (got {value!r})")
        return self


class ShardConfig(Section):
    src: str = "data/organized"
    out: str = "data/shards"
    crop_size: int = Field(256, ge=8, le=8192)
    crops_per_pair: int = Field(4, ge=1, le=10_000)
    shards: ShardCounts = ShardCounts()
    seed: int = Field(0, ge=0)
    encoding: Literal["png", "raw"] = "raw"  # BENCHMARKS.md: 1.4x faster to shard, no decode to read
    runner: str = "DirectRunner"
    beam_options: dict[str, Any] = Field(default_factory=dict)


class Config(Section):
    """The data stages' sections; train/config.py's `Config` adds `train` and `evaluate`."""

    organize: OrganizeConfig = OrganizeConfig()
    shard: ShardConfig = ShardConfig()


@cache
def config_model(*required: type[Config]) -> type[Config]:
    """The whole pipeline.yaml schema: `Config` with the sections of every stage registered under CONFIG_GROUP,
    and of `required` (a stage's own CLI passes its class, so it works from a source tree that is not installed)."""
    found = [ep.load() for ep in sorted(entry_points(group=CONFIG_GROUP), key=lambda ep: ep.name)]
    for model in found:
        if not (isinstance(model, type) and issubclass(model, Config)):
            raise TypeError(f"entry point {CONFIG_GROUP}: {model!r} is not a pipeline.config.Config subclass")
    models = list(dict.fromkeys([*found, *required]))
    models = [m for m in models if not any(o is not m and issubclass(o, m) for o in models)]  # most derived
    if not models:
        return Config
    if len(models) == 1:
        return models[0]
    return create_model("Config", __base__=tuple(models))


def _user_path(loc: tuple[Any, ...], data: Any) -> list[Any]:
    """An error's key path as the file spells it: a discriminated union's tag (the arch a `train.generator`
    section was read as: train.generator.nafnet.width) is in pydantic's path but not in the data, so it goes."""
    path, node = [], data
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part not in node and i < len(loc) - 1:
            continue
        path.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
    return path


def _format_error(err: ValidationError, source: str, data: Any = None) -> str:
    """One line per problem, each naming the dotted key and the offending value."""
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in _user_path(e["loc"], data)) or "<root>"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        value = e.get("input")
        shown = (
            ""
            if e["type"] in ("extra_forbidden", "missing") or isinstance(value, dict)
            else f" (got {value!r})"
        )
        lines.append(f"{source}: {key}: {msg}{shown}")
    return "; ".join(lines)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split `dotted.key=value` into its key path and YAML-scalar value."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: expected dotted.key=value, e.g. train.steps=200")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"--set {key}: value {raw!r} is not a YAML scalar ({exc.__class__.__name__})"
        ) from None
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of `data` with each `dotted.key=value` applied (the schema validates the result)."""
    out = _deep_copy(data)
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for i, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"--set {'.'.join(path)}: {'.'.join(path[: i + 1])} is not a section")
            node = child
        node[path[-1]] = value
    return out


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a pipeline.yaml mapping; an empty file is an empty mapping."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections, got {type(data).__name__}")
    if any(not isinstance(k, str) for k in data):
        raise ConfigError(f"{path}: section names must be strings")
    return data


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    model: type[Config] | None = None,
) -> Config:
    """Load and validate pipeline.yaml (or the defaults) with `--set` overrides applied, against `model`
    (default: the whole schema, `config_model()`).

    `path=None` reads `pipeline.yaml` from the working directory when it exists, else the built-in defaults.
    """
    if path is None:
        default = Path(DEFAULT_CONFIG_NAME)
        source_path = default if default.is_file() else None
    else:
        source_path = Path(path)
    data = read_yaml(source_path) if source_path is not None else {}
    source = str(source_path) if source_path is not None else "<defaults>"
    if overrides:
        data = apply_overrides(data, list(overrides))
        source += " with --set"
    try:
        return (model or config_model()).model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_error(err, source, data)) from None
    except (TypeError, ValueError, RecursionError) as exc:  # pathological YAML (e.g. unhashable keys)
        raise ConfigError(f"{source}: {exc}") from None


def config_to_dict(cfg: BaseModel) -> dict[str, Any]:
    """Plain-data view of a config (for meta.json, dataset.json and config hashes)."""
    return cfg.model_dump(mode="json", by_alias=True)


def with_flags(section: Section, **flags: Any) -> Any:
    """Return `section` with the command-line flags that were given (not None) applied and re-validated."""
    given = {k: v for k, v in flags.items() if v is not None}
    if not given:
        return section
    data = {**section.model_dump(), **given}
    try:
        return type(section).model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_error(err, "command line", data)) from None
