"""Shared plumbing of the golden-fixture scripts: import a reference repo's module from a checkout, randomize a
PyTorch model's parameters deterministically, record provenance, write files atomically.

Needs PyTorch (a scratch venv, never a project dependency). Imported by the make_*_golden.py scripts beside it.
"""

from __future__ import annotations

import copy
import importlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import types
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch


def fail(message: str, code: int = 2) -> None:
    """One-line error and exit code (2: usage, e.g. a wrong --ref; 1: a result that does not check out)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def import_reference(ref: Path, module: str) -> types.ModuleType:
    """Import `module` (e.g. basicsr.models.archs.NAFNet_arch) from the checkout `ref`.

    The parent packages become empty stand-ins whose __path__ points into the checkout, so their __init__ files
    (which import every model and dataset module, needing lmdb, tensorboard, ...) never run; `basicsr.utils`
    offers only `get_root_logger` (a plain logging logger) plus its submodules from the checkout.
    """
    parts = module.split(".")
    if not (ref / Path(*parts).with_suffix(".py")).is_file():
        fail(f"--ref {ref}: no {'/'.join(parts)}.py there (is it a checkout of the reference repo?)")
    for name in [n for n in sys.modules if n == parts[0] or n.startswith(parts[0] + ".")]:
        del sys.modules[name]
    for depth in range(1, len(parts)):
        name = ".".join(parts[:depth])
        stub = types.ModuleType(name)
        stub.__path__ = [str(ref / Path(*parts[:depth]))]
        sys.modules[name] = stub
    utils = types.ModuleType(f"{parts[0]}.utils")
    utils.__path__ = [str(ref / parts[0] / "utils")]
    utils.get_root_logger = lambda *args, **kwargs: logging.getLogger(parts[0])
    sys.modules[utils.__name__] = utils
    return importlib.import_module(module)


def cuda_is_a_no_op() -> None:
    """The reference metrics call `.cuda()` on tensors and modules; on a CPU-only box that becomes identity."""
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    torch.nn.Module.cuda = lambda self, *args, **kwargs: self


def randomize_(model: torch.nn.Module, seed: int, conv_scale: float) -> None:
    """Give every parameter a random value so that no term of the forward pass is trivially zero or one.

    4-D conv kernels keep their default PyTorch init (drawn under torch.manual_seed before the model was built)
    times `conv_scale` (each script says why its value); biases and the zero-initialized NAFNet scales `beta`/`gamma` get normal(0, 0.2); norm scales 1 + normal(0, 0.2);
    Restormer's `temperature` exp(normal(0, 0.3)) (positive, as trained ones are). A parameter that fits no rule
    stops the script: each kind is handled on purpose.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            noise = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            if leaf in ("bias", "beta", "gamma"):
                p.copy_(0.2 * noise)
            elif leaf == "temperature":
                p.copy_(torch.exp(0.3 * noise))
            elif leaf == "weight" and p.ndim == 1:
                p.copy_(1.0 + 0.2 * noise)
            elif leaf == "weight" and p.ndim == 4:
                p.mul_(conv_scale)
            else:
                fail(f"randomize_: no rule for parameter {name} {tuple(p.shape)}", 1)


def nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def nhwc(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().numpy().transpose(0, 2, 3, 1)).astype(np.float32)


def git_rev(ref: Path, flag: str = "--ref") -> str:
    """The commit of the checkout `ref` (given on the command line as `flag`), recorded as provenance."""
    if not ref.is_dir():
        fail(f"{flag} {ref}: no such directory")
    try:
        out = subprocess.run(["git", "-C", str(ref), "rev-parse", "HEAD"], capture_output=True, text=True)
    except OSError as exc:
        fail(f"{flag} {ref}: cannot run git ({exc})")
    if out.returncode != 0:
        fail(f"{flag} {ref}: not a git checkout, so its commit cannot be recorded (clone the repo instead)")
    return out.stdout.strip()


def versions() -> dict[str, str]:
    import cv2
    import scipy
    import skimage

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "skimage": skimage.__version__,
        "cv2": cv2.__version__,
    }


def settings_array(settings: dict) -> np.ndarray:
    """A 0-d unicode array holding compact JSON: readable with np.load(allow_pickle=False)."""
    return np.array(json.dumps(settings, separators=(",", ":")))


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """write(tmp) then rename over `path`: a reader never sees half a file.

    The temporary file has the final name inside a temporary folder beside `path`: torch.save names the zip's
    root folder after the file (nafnet_w8/data.pkl), as in any checkpoint saved under its own name.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.")
    tmp = Path(folder) / path.name
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        os.rmdir(folder)


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed's format (np.load reads it, allow_pickle=False) with fixed timestamps, so that a rerun
    gives the same bytes."""

    def write(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w") as zf:
            for key, value in arrays.items():
                if value.dtype == object:
                    fail(f"{path.name}: {key} would need pickle to load", 1)
                info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                with zf.open(info, "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)

    write_atomic(path, write)


def max_float64_gap(model: torch.nn.Module, images: np.ndarray, output: np.ndarray) -> float:
    """How far the float32 output is from the same model run in float64: the floor of any parity tolerance."""
    twin = copy.deepcopy(model).double()
    with torch.no_grad():
        exact = twin(nchw(images.astype(np.float64))).numpy().transpose(0, 2, 3, 1)
    return float(np.abs(output - exact).max())
