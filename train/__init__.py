"""gopro-deblur training: tf.data input, generator architectures and losses, distributed trainer, evaluation, export.

`import train` makes every custom layer a saved `generator.keras` can hold known to Keras, so

    import train, keras
    generator = keras.saving.load_model("runs/x/generator/v0002/generator.keras")

works in a fresh process, and `from train import Deblurrer` is the Python API (train/inference/deblurrer.py). Importing Keras costs seconds, and `trainctl --help` or `trainctl versions` must not pay
it: registration therefore happens when Keras is imported (at once if it already is), through a small import hook.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from types import ModuleType
from typing import Any

# The modules whose import registers every serializable object a saved generator can contain.
REGISTERING_MODULES = ("train.archs.layers", "train.archs.restormer_layers")


def register_custom_objects() -> None:
    """Register our Keras layers (imports Keras)."""
    import importlib

    for name in REGISTERING_MODULES:
        importlib.import_module(name)


class _AfterKerasImport(importlib.abc.MetaPathFinder):
    """Wraps the loader of the top-level `keras` package so our layers register right after it is executed.

    It stays installed until Keras is actually executed: a library may only look Keras up first
    (`importlib.util.find_spec`, as TensorFlow does) and import it later.
    """

    def find_spec(self, name: str, path: Any = None, target: ModuleType | None = None) -> Any:
        if name != "keras":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        original = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            original(module)
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            register_custom_objects()

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _install() -> None:
    if "keras" in sys.modules:
        register_custom_objects()
    elif not any(isinstance(f, _AfterKerasImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterKerasImport())


_install()


def __getattr__(name: str) -> Any:
    """`from train import Deblurrer`: the Python API (imported on first use, so `import train` stays light)."""
    if name == "Deblurrer":
        from train.inference.deblurrer import Deblurrer

        return Deblurrer
    raise AttributeError(f"module 'train' has no attribute {name!r}")
