"""Imports run downward only: every module of pipeline/ and train/ imports from its own layer or the ones below it.

The layers, lowest first (README, "Code map"). A module belongs to the layer whose prefix names it most closely;
within a layer modules import each other freely. Function-level imports count too: a lazy import is still a
dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LAYERS: list[tuple[str, ...]] = [
    ("pipeline",),  # the data stages (organize, shard, inspect), pipeline.yaml's loader, locks, file I/O
    ("train.archs",),  # generators, critic, Keras layers, the arch registry (no Keras at import)
    ("train.config", "train.tf_startup", "train.strategy", "train.stages"),  # train's base
    ("train.run",),  # the run dir: paths, lock, log, checkpoints, versions, scores, signals
    ("train.weights",),  # PyTorch weights in and out
    ("train.inference",),  # Deblurrer, tiling, serving, export, video
    ("train.evaluation",),  # evaluate, metrics, pair scores, alignment, tables, validation
    ("train.fit", "train.recipes"),  # the trainer, its loop, data, losses, optimizers; the recipes
    ("train.cli", "train$"),  # trainctl and the package's public names (`$`: that module alone)
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int:
    """The index of the layer whose prefix matches `module` most closely (a KeyError for a module of none)."""
    best: tuple[int, int] | None = None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            exact = prefix.endswith("$")
            prefix = prefix.rstrip("$")
            matches = module == prefix or (not exact and module.startswith(prefix + "."))
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    if best is None:
        raise KeyError(f"{module}: in no layer of tests/test_import_layers.py; add it where it belongs")
    return best[1]


def our_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of pipeline or train in `path`, a `from X import name` as X.name when
    X.name is a module (so `from train import cli` is train.cli, not the train package)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                is_module = (ROOT / Path(*sub.split("."))).is_dir() or (
                    ROOT / Path(*sub.split("."))
                ).with_suffix(".py").is_file()
                found.append((node.lineno, sub if is_module else node.module))
    return [(line, name) for line, name in found if name.split(".")[0] in ("pipeline", "train")]


def modules() -> list[Path]:
    return sorted(p for package in ("pipeline", "train") for p in (ROOT / package).rglob("*.py"))


def test_no_module_imports_upward() -> None:
    upward = []
    for path in modules():
        here = layer_of(module_name(path))
        for line, name in our_imports(path):
            if layer_of(name) > here:
                upward.append(
                    f"{path.relative_to(ROOT)}:{line} imports {name} (layer {layer_of(name)} > {here})"
                )
    assert not upward, "\n".join(upward)


def test_the_walk_sees_imports_of_every_kind(tmp_path: Path) -> None:
    """The checker itself: module-level, function-level and `from package import module` imports all count."""
    source = tmp_path / "m.py"
    source.write_text(
        "import pipeline.fsio\nfrom train import cli\n\ndef f():\n    from train.run.versions import read_meta\n"
    )
    names = [name for _, name in our_imports(source)]
    assert names == ["pipeline.fsio", "train.cli", "train.run.versions"]
    assert [layer_of(n) for n in names] == [0, 8, 3]


def test_every_module_is_in_a_layer() -> None:
    """A new module must be placed: none falls into a layer by default."""
    for path in modules():
        layer_of(module_name(path))
    with pytest.raises(KeyError, match="train.new_module: in no layer"):
        layer_of("train.new_module")
