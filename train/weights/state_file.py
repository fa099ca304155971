"""A weights file as a flat state dict: `.pth`/`.pt` (PyTorch, read without it) or `.safetensors`.

Published restoration checkpoints are BasicSR's `{"params": state_dict}` (sometimes with `params_ema`, the
EMA weights, or `params_g` for GANs), or a bare state dict. `read_state` returns the chosen dict's tensors as
numpy arrays under their PyTorch names, the key it used, and the file's sha256. `module.` prefixes that
DataParallel adds are removed, as BasicSR's loader does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.errors import DataError, UsageError

KEYS = ("auto", "params", "params_ema", "params_g", "state_dict", "model")
AUTO_ORDER = ("params_ema", "params", "params_g", "state_dict", "model")  # EMA first: what BasicSR evaluates
SUFFIXES = (".pth", ".pt", ".safetensors")


@dataclass(frozen=True)
class State:
    tensors: dict[str, np.ndarray]
    key: str | None  # the dict key the tensors came from (None: a bare state dict)
    sha256: str
    file: str


def _is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, np.ndarray) for v in obj.values())


def _choose(obj: Any, key: str, path: str) -> tuple[dict[str, np.ndarray], str | None]:
    if not isinstance(obj, dict):
        raise DataError(f"{path}: holds a {type(obj).__name__}, not a dict of tensors")
    if _is_tensor_dict(obj):
        if key not in ("auto", None):
            raise DataError(f"{path}: a bare state dict has no key {key!r} (use --key auto)")
        return obj, None
    found = [k for k, v in obj.items() if _is_tensor_dict(v)]
    if key == "auto":
        for name in AUTO_ORDER:
            if name in found:
                return obj[name], name
        if len(found) == 1:
            return obj[found[0]], found[0]
        what = f"several ({', '.join(map(str, found))}): choose one with --key" if found else "none"
        raise DataError(f"{path}: which state dict? keys {sorted(map(str, obj))}, tensor dicts: {what}")
    if key not in obj:
        raise DataError(f"{path}: no key {key!r} (keys: {', '.join(sorted(map(str, obj)))})")
    if not _is_tensor_dict(obj[key]):
        raise DataError(f"{path}: {key!r} is not a dict of tensors")
    return obj[key], key


def _strip_module(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    if tensors and all(k.startswith("module.") for k in tensors):
        return {k[len("module.") :]: v for k, v in tensors.items()}
    return tensors


def read_state(path: str, key: str = "auto") -> State:
    """The state dict in `path` (key `auto`: params_ema, else params, else the one dict of tensors)."""
    from train.run import rundir
    from train.weights import torch_pickle

    if key not in KEYS:
        raise UsageError(f"--key {key}: not one of {', '.join(KEYS)}")
    if not str(path).lower().endswith(SUFFIXES):
        raise UsageError(f"{path}: not a weights file (expected {', '.join(SUFFIXES)})")
    try:
        data = rundir.read_bytes(path)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: a directory, not a weights file") from None
    digest = hashlib.sha256(data).hexdigest()
    if str(path).lower().endswith(".safetensors"):
        tensors, used = _read_safetensors(path, data), None
        if key not in ("auto",):
            raise UsageError(f"--key {key}: a .safetensors file is one flat state dict (use --key auto)")
    else:
        tensors, used = _choose(torch_pickle.load(str(path), data), key, str(path))
    tensors = {str(k): np.asarray(v) for k, v in _strip_module(dict(tensors)).items()}
    return State(tensors, used, digest, str(path))


def _read_safetensors(path: str, data: bytes) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        return dict(load(data))
    except (SafetensorError, ValueError, TypeError) as exc:
        raise DataError(f"{path}: unreadable safetensors file ({exc})") from None
