"""Read a PyTorch `.pth`/`.pt` file without PyTorch, and without running anything it holds.

Since PyTorch 1.6, `torch.save` writes a zip: `ARCHIVE/data.pkl` (a pickle of the saved object, whose tensors are
persistent references to storages), `ARCHIVE/data/KEY` (each storage's raw bytes) and `ARCHIVE/byteorder`.
A pickle can name any importable callable and call it; `load` unpickles with a class resolver that knows only the
few names a tensor checkpoint needs (tensor and parameter rebuilders, storage types, OrderedDict) and builds numpy
arrays and plain containers from them. Any other name is refused with one line before anything is called: a
malicious checkpoint is an error, never code run. PyTorch's legacy (pre-zip) format and TorchScript archives are
refused with a line saying what to do.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict
from typing import Any

import numpy as np

from pipeline.errors import DataError

# Storage types as pickled by torch.save (`torch.FloatStorage`, ...) -> numpy dtype ("bfloat16": widened below).
STORAGE_DTYPES = {
    "DoubleStorage": "float64",
    "FloatStorage": "float32",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
}


class _StorageType:
    """Stands for a `torch.<Type>Storage` class: only its dtype is used."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = STORAGE_DTYPES[name]


def _numpy_storage(raw: bytes, dtype: str, little_endian: bool) -> np.ndarray:
    if dtype == "bfloat16":  # numpy has no bfloat16: its bits are the top half of a float32's
        bits = np.frombuffer(raw, "<u2" if little_endian else ">u2").astype(np.uint32) << 16
        return bits.view(np.float32)
    return np.frombuffer(raw, np.dtype(dtype).newbyteorder("<" if little_endian else ">")).astype(dtype)


def _rebuild_tensor(
    storage: np.ndarray, offset: int, size: tuple, stride: tuple, *_ignored: Any
) -> np.ndarray:
    """torch._utils._rebuild_tensor_v2 as numpy: a strided view of the storage, copied out."""
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if not size:
        return np.array(storage[offset], dtype=storage.dtype)
    needed = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) + 1
    if any(n == 0 for n in size):
        return np.zeros(size, storage.dtype)
    if needed > storage.size or offset < 0 or min(stride) < 0:
        raise _Refused(f"a tensor of shape {size} reaches past its storage ({storage.size} elements)")
    flat = storage[offset:]
    item = flat.itemsize
    view = np.lib.stride_tricks.as_strided(flat, size, tuple(s * item for s in stride), writeable=False)
    return np.array(view)


def _rebuild_parameter(data: np.ndarray, *_ignored: Any) -> np.ndarray:
    """torch._utils._rebuild_parameter: a Parameter is its data here."""
    return data


class _Refused(Exception):
    """The pickle asked for something a weights file has no business holding."""


# The only callables a pickle may name: each builds data, none runs code from the file.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _SafeUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, storages: Any) -> None:
        super().__init__(io.BytesIO(data))
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise _Refused(f"it names `{module}.{name}`, which is not tensor data (a pickle can run code)")

    def persistent_load(self, pid: Any) -> Any:
        # ('storage', storage_type, key, location, numel)
        if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage"):
            raise _Refused(f"unknown persistent reference {str(pid)[:60]!r}")
        kind, key = pid[1], str(pid[2])
        if not isinstance(kind, _StorageType):
            raise _Refused(f"storage {key} has an unknown type {kind!r}")
        return self._storages(key, kind.dtype)


def _archive_root(names: list[str], path: str) -> str:
    pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if not pickles:
        if any(n.endswith("/constants.pkl") for n in names):
            raise DataError(
                f"{path}: a TorchScript archive, not a state dict; in PyTorch save "
                "`torch.save(model.state_dict(), FILE)` instead"
            )
        raise DataError(f"{path}: a zip file, but not a PyTorch checkpoint (no data.pkl)")
    return pickles[0].rsplit("/", 1)[0]


def load(path: str, data: bytes) -> Any:
    """The object `torch.save` wrote into `data` (the bytes of `path`), tensors as numpy arrays."""
    if not zipfile.is_zipfile(io.BytesIO(data)):
        if data[:2] == b"\x80\x02" or data[:1] == b"\x80":
            raise DataError(
                f"{path}: PyTorch's legacy (pre-1.6) checkpoint format, which is not read here; re-save it "
                "with PyTorch >= 1.6: `torch.save(torch.load(OLD), NEW)`"
            )
        raise DataError(f"{path}: not a PyTorch checkpoint (neither a zip archive nor a pickle)")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        root = _archive_root(names, path)
        order = f"{root}/byteorder"
        little = order not in names or archive.read(order).strip() != b"big"
        cache: dict[str, np.ndarray] = {}

        def storage(key: str, dtype: str) -> np.ndarray:
            if key not in cache:
                member = f"{root}/data/{key}"
                if member not in names:
                    raise _Refused(f"storage {key} is missing from the archive")
                cache[key] = _numpy_storage(archive.read(member), dtype, little)
            return cache[key]

        try:
            return _SafeUnpickler(archive.read(f"{root}/data.pkl"), storage).load()
        except _Refused as exc:
            raise DataError(f"{path}: refused: {exc}") from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError) as exc:
            raise DataError(f"{path}: unreadable checkpoint ({exc.__class__.__name__}: {exc})") from None
